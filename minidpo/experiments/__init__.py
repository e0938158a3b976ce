"""The experiments built on the library: what `python -m minidpo run|frontier` and notebooks 04-09 run.

- `runs`: shared run infrastructure (run folders, stage cache, timing and memory, seeds, base-model loading,
  portable results files);
- `instruction`: the instruction experiment of notebooks 04-07 (reference, Preferred-FT and DPO at a beta grid,
  measured by a validated preference judge and guard metrics).

The library (`minidpo/*.py`) never imports from here.
"""
