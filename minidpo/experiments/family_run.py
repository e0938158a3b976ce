"""The whole of notebook 10 for the CLI (`python -m minidpo family`): the stages of `family`, the matched-KL verdicts of
every arm against DPO's curves (raw and length-adjusted, one Holm family each), and `results/family_<profile>.json`
with its figures."""

from __future__ import annotations

import math
import time
from pathlib import Path


from ..models import model_note
from .family import PLAN, family_stages
from .family_length import length_adjusted
from .frontier_run import curve_summaries, runs_by_knob
from .frontier_verdicts import N_BOOT, curve_from_runs, joint_verdicts, matched_kl_readings
from .measure import environment, peak_rss_gib
from .profiles import Profile
from .runs import to_json, write_results_and_figures


def family_verdicts(stages: dict, seed: int) -> dict:
    """Each arm against DPO's curves at matched KL, raw and length-adjusted; the primary reading of every arm in one
    Holm family, the secondary in another."""
    length, sft = stages["length"], stages["sft"]
    dpo_groups = runs_by_knob(stages["dpo"], "beta")
    dpo_raw = [curve_from_runs(g, "beta") for g in dpo_groups]
    dpo_adj = [length_adjusted(c, g, length.slope.estimate, sft["reply_tokens"]) for c, g in zip(dpo_raw, dpo_groups)]
    # a p-value must be able to reach Holm's first threshold: at most every checkpoint of both curves, per DPO curve
    most = sum(len(d.budgets) + len(a["runs"][0]["points"]) for d in dpo_raw for a in stages["arms"].values())
    n_boot = max(N_BOOT, math.ceil(10 * most / (1 - PLAN["level"])))
    primary, secondary, kinds = {}, {}, {}
    for method, a in stages["arms"].items():
        raw = curve_from_runs(a["runs"], "beta")
        adj = length_adjusted(raw, a["runs"], length.slope.estimate, sft["reply_tokens"])
        readings = {"raw": matched_kl_readings(dpo_raw, [raw], n_boot, seed),
                    "length-adjusted": matched_kl_readings(dpo_adj, [adj], n_boot, seed,
                                                           metric="length-adjusted true reward")}
        first = "length-adjusted" if a["arm"].length_adjusted_primary else "raw"
        second = "raw" if first == "length-adjusted" else "length-adjusted"
        primary[method], secondary[method], kinds[method] = readings[first], readings[second], (first, second)
    p, s = joint_verdicts(primary), joint_verdicts(secondary)
    return {m: {"primary": kinds[m][0], "secondary": kinds[m][1], kinds[m][0]: p[m], kinds[m][1]: s[m]}
            for m in stages["arms"]}


def family_results(profile: Profile, run_dir=None, show_progress: bool = True) -> dict:
    """Every stage of notebook 10 (computed or read back) and the results they make, as `run_family` saves them."""
    t0 = time.time()
    stages = family_stages(profile, run_dir, show_progress)
    task, sft, length = stages["task"], stages["sft"], stages["length"]
    verdicts = family_verdicts(stages, profile.seed)
    adjust = lambda p: p["reward"] - length.slope.estimate * (p["reply_tokens"] - sft["reply_tokens"])  # noqa: E731
    curves = {"DPO": curve_summaries(stages["dpo"], "beta", sft, profile.seed)}
    arms = {}
    for method, a in stages["arms"].items():
        curves[method] = curve_summaries(a["runs"], "beta", sft, profile.seed)
        for c in curves[method]:
            for p in c["points"]:
                p["length_adjusted_reward"] = adjust(p)
        arms[method] = {"arm": a["arm"], "grid": a["choice"], "value": a["runs"][0]["value"],
                        "verdicts": verdicts[method]}
    for c in curves["DPO"]:
        for p in c["points"]:
            p["length_adjusted_reward"] = adjust(p)
    mine = ("family_", "rankings_", "length_regression", "sft_eval_plain")
    own = [n for n in task.run.timing() if n.startswith(mine)]
    shared = [n for n in task.run.timing() if n not in own]
    arm_points = [p for a in stages["arms"].values() for r in a["runs"] for p in r["points"]]
    results = {
        "profile": profile.name, "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo family",
        "model": profile.model, "model_note": model_note(profile.model), "seed": profile.seed,
        "plan": to_json(profile.family), "frontier_plan": to_json(task.plan), "analysis_plan": PLAN,
        "data": task.info, "pairs": stages["pairs"]["stats"], "rankings": stages["rankings"],
        "sft": {k: v for k, v in sft.items() if k not in ("rewards", "log_ratios", "examples")},
        "length_regression": length, "curves": curves, "arms": arms,
        "runs": [{k: r[k] for k in ("method", "beta", "value", "seed", "budget_unit", "history", "points")}
                 for a in stages["arms"].values() for r in a["runs"]],
        "timing_s": task.run.timing(),
        # the family's own stages (grids, curves, rankings, the length regression, the SFT point); the frontier's
        # stages it reads (SFT, pairs, DPO's curves) are `shared_compute_s`, already spent when the frontier ran
        "compute_s": task.run.compute_s(own), "shared_compute_s": task.run.compute_s(shared),
        "peak_rss_gib": max([p.get("peak_rss_gib") or 0.0 for p in arm_points] + [peak_rss_gib()]),
        "wall_s_this_invocation": time.time() - t0,
        "environment": environment(),
    }
    return to_json(results)


def run_family(profile: Profile, run_dir=None, results_dir="results", figures_dir="figures",
               show_progress: bool = True) -> dict:
    """Every stage of notebook 10; saves results/family_<profile>.json and the figures, and returns the results."""
    from .family_plots import family_figures

    return write_results_and_figures(Path(results_dir) / f"family_{profile.name}.json",
                                     family_results(profile, run_dir, show_progress),
                                     lambda r: family_figures(r, figures_dir))
