"""The whole frontier for the CLI (`python -m minidpo frontier`): every stage of notebook 08 in order -- SFT, the pairs,
the reward models (learning rate and epochs chosen on validation pairs) and the calibrated one, the SFT point,
PPO's learning-rate pilot (validation prompts), best-of-N, Preferred-FT, then the curves: DPO at every beta and
PPO and PPO-GT at every kl_coef, every seed, each scored at its checkpoints -- and the results file
`results/frontier_<profile>.json` with its matched-KL verdicts, budgets and figures. Notebook 10 (`family`) reads
the same stages."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from ..models import model_note
from ..stats import bootstrap_interval
from .frontier import pairs_stage, preferred_ft_run, prepare_task, reference_stage, sft_point, sft_stage
from .frontier_plots import frontier_figures
from .frontier_rlhf import best_of_n_stage, chosen_reward_model, reward_model_key, reward_model_runs
from .frontier_seeds import dpo_curve_run, is_stable, ppo_curve_run, ppo_pilot
from .frontier_verdicts import PLAN, curve_from_runs, matched_kl_verdicts
from .measure import environment, peak_rss_gib
from .profiles import Profile
from .runs import to_json, write_results_and_figures


def frontier_stages(profile: Profile, run_dir=None, show_progress: bool = True) -> dict:
    """Every stage of notebook 08, in the order they run (each cached: a second call reads them back)."""
    task = prepare_task(profile, run_dir, show_progress)
    plan = task.plan
    sft_model, sft_history = sft_stage(task)
    pairs = pairs_stage(task, sft_model)
    ref_data = reference_stage(task, sft_model, pairs)
    rm_runs = reward_model_runs(task, sft_model, pairs)
    reward_model, rm = chosen_reward_model(task, sft_model, pairs, rm_runs)
    reward_key = reward_model_key(task, rm_runs, rm)
    sft = sft_point(task, sft_model, reward_model, reward_key)
    pilot = ppo_pilot(task, sft_model, reward_model, reward_key)
    best = best_of_n_stage(task, sft_model, reward_model, reward_key)
    preferred = preferred_ft_run(task, sft_model, pairs)
    dpo = [dpo_curve_run(task, sft_model, ref_data, b, s) for b in plan.dpo_betas for s in plan.seeds]
    lr = pilot["learning_rate"]
    ppo_gt = [ppo_curve_run(task, sft_model, reward_model, reward_key, c, s, lr, ground_truth=True)
              for c in plan.kl_coefs for s in plan.rl_seeds]
    ppo = [ppo_curve_run(task, sft_model, reward_model, reward_key, c, s, lr)
           for c in plan.kl_coefs for s in plan.rl_seeds]
    return {"task": task, "sft_history": sft_history, "pairs": pairs, "rm_runs": rm_runs, "reward_model": rm,
            "sft": sft, "pilot": pilot, "best_of_n": best, "preferred_ft": preferred,
            "runs": {"DPO": dpo, "PPO": ppo, "PPO-GT": ppo_gt}}


# ----------------------------------------------------------------------------- summaries of the stages


def _rm_accuracy_vs_sft(point: dict, sft: dict) -> tuple[float, int]:
    """How often the reward model orders a checkpoint's reply and the SFT model's reply to the same test prompt as
    the true reward does (prompts where the true rewards differ; a tie in r_phi counts half): its accuracy on the
    policy's own samples. Falling as the policy trains is over-optimisation made visible."""
    dt = torch.tensor(point["rewards"]) - torch.tensor(sft["rewards"])
    ds = torch.tensor(point["rm_scores"]) - torch.tensor(sft["rm_scores"])
    keep = dt != 0
    agree = (torch.sign(ds) == torch.sign(dt)).double() + 0.5 * (ds == 0).double()
    n = int(keep.sum())
    return (agree[keep].mean().item() if n else 0.0), n


def runs_by_knob(runs: list[dict], knob: str) -> list[list[dict]]:
    """A method's runs grouped by `knob` ("beta", "kl_coef"), in increasing order of it: each group is one curve's
    seeds."""
    return [[r for r in runs if r[knob] == value] for value in sorted({r[knob] for r in runs})]


def curve_summaries(runs: list[dict], knob: str, sft: dict, seed: int) -> list[dict]:
    """Each knob's curve as the seeds' means at every checkpoint: reward (bootstrap interval over prompts of the
    seed-mean reward), KL, each seed's reading, training seconds, and for PPO the reward model's calibrated score
    and its accuracy on the run's own samples against the SFT replies."""
    out = []
    for group in runs_by_knob(runs, knob):
        value = group[0][knob]
        curve = curve_from_runs(group, knob)
        points = []
        for c, budget in enumerate(curve.budgets):
            at = [r["points"][c] for r in group]
            ci = bootstrap_interval(curve.rewards[c].mean(0), seed=seed, seeds=len(group))
            kl_prompt = curve.log_ratios[c].mean(0)
            point = {"budget": budget, "reward": ci.estimate, "reward_ci": [ci.low, ci.high],
                     "kl": kl_prompt.mean().item(), "kl_se": (kl_prompt.std() / len(kl_prompt) ** 0.5).item(),
                     "seed_rewards": [p["reward"] for p in at], "seed_kls": [p["kl"] for p in at],
                     "reply_tokens": statistics.fmean(p["reply_tokens"] for p in at),
                     "train_seconds": statistics.fmean(p["train_seconds"] for p in at), "n": len(kl_prompt)}
            if "steps" in at[0]:
                point["steps"], point["pairs_seen"] = at[0]["steps"], at[0]["pairs_seen"]
            if "rm_scores" in at[0]:
                accuracies = [_rm_accuracy_vs_sft(p, sft) for p in at]
                n = sum(k for _, k in accuracies)  # pooled over the seeds' ranked pairs
                point["rm_score"] = statistics.fmean(p["rm_score"] for p in at)
                point["rm_accuracy_vs_sft"] = sum(a * k for a, k in accuracies if k) / n if n else None
                point["rm_pairs_vs_sft"] = n
            points.append(point)
        out.append({"method": group[0]["method"], "knob": knob, knob: value, "seeds": [r["seed"] for r in group],
                    "budget_unit": group[0]["budget_unit"], "points": points})
    return out


def ppo_stability(runs: list[dict], pilot: dict, threshold: float) -> dict:
    """What "stable" means and whether it held: every iteration's mean approxkl below `threshold`, in every run of
    PPO and PPO-GT; with the first iteration's approxkl and the largest ratio, clip fraction and approxkl seen."""
    rows = []
    for r in runs:
        h = r["history"]
        max_approxkl = max(x["policy/approxkl_avg"] for x in h)
        rows.append({"method": r["method"], "kl_coef": r["kl_coef"], "seed": r["seed"],
                     "first_approxkl": h[0]["policy/approxkl_avg"], "max_approxkl": max_approxkl,
                     "max_clipfrac": max(x["policy/clipfrac_avg"] for x in h),
                     "max_ratio": max(x["val/ratio_max"] for x in h), "stable": is_stable(max_approxkl, threshold)})
    return {"definition": f"every iteration's mean approxkl < {threshold:g}", "threshold": threshold,
            "learning_rate": pilot["learning_rate"], "runs": rows, "all_stable": all(r["stable"] for r in rows),
            "max_first_approxkl": max(r["first_approxkl"] for r in rows),
            "max_approxkl": max(r["max_approxkl"] for r in rows)}


def budgets_table(stages: dict, timing: dict) -> list[dict]:
    """Label and compute budgets per method: the preference pairs it learns from, the true-reward calls that are its
    training signal, the true-reward calls spent choosing its hyperparameters on validation, policy samples during
    training, and measured seconds (mean per training run, to its last checkpoint), with what it shares with other
    methods and the seconds that took."""
    plan, pairs = stages["task"].plan, stages["pairs"]["stats"]
    n_pairs = pairs["train"]["pairs"]
    pair_samples = pairs["train"]["prompts"] * pairs["train"]["draws_per_prompt"]
    seconds = lambda prefix: sum(t["seconds"] for n, t in timing.items() if n.startswith(prefix))  # noqa: E731
    pairs_s, rm_s, pilot_s = seconds("pairs"), seconds("reward_model_lr"), seconds("ppo_pilot_lr")
    last = lambda runs: statistics.fmean(r["points"][-1]["train_seconds"] for r in runs)  # noqa: E731
    rollouts = (plan.ppo_checkpoints or (plan.ppo.iterations,))[-1] * plan.ppo.rollout_batch_size
    validation_labels = pairs["validation"]["prompts"] * pairs["validation"]["draws_per_prompt"]
    pilot_calls = len(plan.ppo_pilot_lrs) * plan.n_pairs_val  # each pilot run scored on the validation prompts
    shared = (f"the pairs: {pair_samples} SFT samples labelled by as many true-reward calls ({n_pairs} pairs after "
              f"ties)")
    runs = stages["runs"]

    def row(method, pairs_used, calls, choice_calls, samples, train_s, what, shared_s):
        return {"method": method, "preference_pairs": pairs_used, "true_reward_calls": calls,
                "choice_true_reward_calls": choice_calls, "policy_samples": samples, "train_seconds": train_s,
                "shared": what, "shared_seconds": shared_s}

    return [
        row("DPO", n_pairs, 0, 0, 0, last(runs["DPO"]), shared, pairs_s),
        row("Preferred-FT", n_pairs, 0, 0, 0, stages["preferred_ft"]["train"]["seconds"], shared, pairs_s),
        row("PPO", n_pairs, 0, validation_labels + pilot_calls, rollouts, last(runs["PPO"]),
            f"{shared}; the reward models, chosen on {validation_labels} labelled validation replies; the "
            "learning-rate pilot (its rollouts' true reward is logged, never trained on)", pairs_s + rm_s + pilot_s),
        row("PPO-GT", 0, rollouts, pilot_calls, rollouts, last(runs["PPO-GT"]), "the learning-rate pilot", pilot_s),
        row("Best-of-N", n_pairs, 0, validation_labels, max(plan.best_of) * plan.n_test, 0.0,
            f"{shared}; the reward models; N samples per prompt at inference", pairs_s + rm_s),
    ]


def _drop_arrays(point: dict) -> dict:
    return {k: v for k, v in point.items() if k not in ("rewards", "log_ratios", "rm_scores", "examples")}


def run_frontier(profile: Profile, run_dir=None, results_dir="results", figures_dir="figures",
                 show_progress: bool = True) -> dict:
    """Every stage of notebook 08; saves results/frontier_<profile>.json and the figures, and returns the results
    as saved."""
    return write_results_and_figures(Path(results_dir) / f"frontier_{profile.name}.json",
                                     frontier_results(profile, run_dir, show_progress),
                                     lambda r: frontier_figures(r, figures_dir))


def frontier_results(profile: Profile, run_dir=None, show_progress: bool = True) -> dict:
    """Every stage of notebook 08 (computed, or read back from the cache) and the results they make, as the JSON
    values `run_frontier` saves (notebook 08 reads them without writing any file)."""
    t0 = time.time()
    stages = frontier_stages(profile, run_dir, show_progress)
    task, plan, runs, sft = stages["task"], stages["task"].plan, stages["runs"], stages["sft"]
    curves = {"DPO": curve_summaries(runs["DPO"], "beta", sft, profile.seed),
              "PPO": curve_summaries(runs["PPO"], "kl_coef", sft, profile.seed),
              "PPO-GT": curve_summaries(runs["PPO-GT"], "kl_coef", sft, profile.seed)}
    by_knob = lambda rs, knob: [curve_from_runs(group, knob) for group in runs_by_knob(rs, knob)]  # noqa: E731
    verdicts = matched_kl_verdicts(by_knob(runs["DPO"], "beta"),
                                   {name: by_knob(runs[name], "kl_coef") for name in ("PPO", "PPO-GT")},
                                   seed=profile.seed)
    timing = task.run.timing()
    pilot = stages["pilot"]
    best = stages["best_of_n"]
    results = {
        "profile": profile.name,
        "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo frontier",
        "model": profile.model, "model_note": model_note(profile.model), "seed": profile.seed, "plan": to_json(plan),
        "analysis_plan": PLAN, "data": task.info, "pairs": stages["pairs"]["stats"],
        "sft": {"history": stages["sft_history"], **_drop_arrays(sft)},
        "reward_model": {**stages["reward_model"], "test_correlation": best["test_correlation"],
                         "test_pair_accuracy": best["test_pair_accuracy"], "test_pairs": best["test_pairs"],
                         "candidates": stages["rm_runs"]},
        "ppo_pilot": {k: v for k, v in pilot.items() if k != "runs"}
        | {"runs": [{**to_json(r["run"]), "stable": r["run"].stable(plan.ppo_stable_approxkl),
                     "eligible": r["run"].stable(pilot["pilot_threshold"]), "diagnostics": r["diagnostics"]}
                    for r in pilot["runs"]]},
        "ppo_stability": ppo_stability([*runs["PPO"], *runs["PPO-GT"]], pilot, plan.ppo_stable_approxkl),
        "curves": curves,
        # per prompt (rewards, log-ratios, r_phi scores) for every scored point, so any comparison can be paired
        "reference_points": {"SFT": sft, "Preferred-FT": {k: v for k, v in stages["preferred_ft"].items()
                                                          if k != "history"}, "Best-of-N": best["rows"]},
        "matched_kl": verdicts,
        "budgets": budgets_table(stages, timing),
        "runs": [{k: r[k] for k in ("method", "beta", "kl_coef", "seed", "budget_unit", "history") if k in r}
                 | {"points": r["points"]} for rs in runs.values() for r in rs],
        # every stage measured its own time and memory when it computed (a cached stage is read back, not re-timed):
        # their sum is the experiment's compute, whatever this invocation found in the cache
        "timing_s": timing, "compute_s": task.run.compute_s(), "peak_rss_gib": task.run.peak_stage_rss_gib(),
        "wall_s_this_invocation": time.time() - t0, "peak_rss_gib_this_invocation": peak_rss_gib(),
        "environment": environment(),
    }
    return to_json(results)
