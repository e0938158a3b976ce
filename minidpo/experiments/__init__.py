"""The experiments built on the library: what `python -m minidpo run|frontier|family|variants|figures|report` and
notebooks
04-10 run.

- `profiles`: smoke / cpu / gpu, each a model and one typed plan per experiment (`InstructionPlan`, `FrontierPlan`,
  `FamilyPlan`) whose training knobs are config objects (`SFTConfig`, `DPOConfig`, `RewardConfig`, `PPOConfig`);
- `settings`: `--set field=value` on a plan (`python -m minidpo run --set dpo.learning_rate=1e-6`);
- `runs`: the one stage cache (`Run.stage`: keyed by the plan entries a stage depends on, atomic, timed,
  resumable; `Run.phases` for a run scored at checkpoints), the one compute rule (`Run.compute_s`) and the one
  results serialiser (`to_json`); `measure`: time and memory of a stage;
- `instruction_plan`, `instruction`, `instruction_arms`, `instruction_eval`, `instruction_results`,
  `instruction_plots`: the instruction experiment of notebooks 04-07 (a reference on both replies, DPO at a beta
  grid and Preferred-FT followed through training on validation, seeds; a plan written before the run, instruments
  checked on model replies, the primary comparisons with Holm's correction, DPO vs Preferred-FT at matched KL);
- `sentiment`, `frontier`, `frontier_rlhf`, `frontier_seeds`, `frontier_run`: the controlled-sentiment reward-KL
  frontier of notebook 08 (DPO against a reward model + PPO, PPO on the true reward, best-of-N; seeds, budgets
  chosen on validation, matched-KL verdicts);
- `variants`: notebook 09's losses and long runs on a one-seed sentiment base;
- `family`, `family_length`, `family_run`, `family_plots`: DPO's family at matched KL on the frontier's stages
  (notebook 10);
- `report`, `report_tables`, `cli`: the report's numbers, verdicts and tables; the command line.

Claims about results are verdicts of `minidpo.stats` comparisons (an interval and its rule), never typed words.
The library (`minidpo/*.py`, `minidpo/rlhf/`) never imports from here.
"""
