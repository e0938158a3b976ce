"""The experiments built on the library: what `python -m minidpo run|frontier|report` and notebooks 04-09 run.

- `profiles`: smoke / cpu / gpu, each a model and one typed plan per experiment;
- `runs`: shared run infrastructure (run folders stamped with their plan, one stage cache, timing and memory,
  portable results files);
- `instruction`, `instruction_eval`, `instruction_plots`: the instruction experiment of notebooks 04-07
  (reference, Preferred-FT and DPO at a beta grid, measured by a validated preference judge and guard metrics);
- `sentiment`, `frontier`, `frontier_rlhf`, `frontier_run`: the controlled-sentiment reward-KL frontier of
  notebooks 08-09 (DPO and its variants, reward model + PPO, best-of-N);
- `report`, `cli`: the report's numbers and tables; the command line.

The library (`minidpo/*.py`, `minidpo/rlhf/`) never imports from here.
"""
