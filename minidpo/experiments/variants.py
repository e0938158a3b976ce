"""Notebook 09's experiment (`python -m minidpo variants`): DPO's sigmoid loss beside cDPO, IPO and hinge, and the long
runs that show over-optimisation, on the one-seed *sentiment base* (`profile.sentiment`: notebook 08's task at its own
sizes, cached in `runs/<profile>/sentiment/`). One seed and one point per loss: a look at what each loss does, not a
comparison of methods (notebook 10 compares DPO's family at matched KL, with seeds)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


from ..models import model_note
from ..stats import Comparison, Verdict, combine, holm, paired_difference
from .frontier import (dpo_run, dpo_run_name, over_optimisation_run, pairs_stage, prepare_task, reference_stage,
                       sft_point, sft_stage)
from .measure import environment, peak_rss_gib
from .profiles import Profile
from .runs import to_json, write_results_and_figures


def variants_stages(profile: Profile, run_dir=None, show_progress: bool = True) -> dict:
    """Every stage of notebook 09 on the sentiment base, in order (each cached): SFT, the pairs, their reference
    log-probs, the SFT point, DPO at the base's betas, each variant of `plan.variants`, each long run."""
    task = prepare_task(profile, run_dir, show_progress, plan=profile.sentiment, subdir="sentiment")
    sft_model, sft_history = sft_stage(task)
    pairs = pairs_stage(task, sft_model)
    ref_data = reference_stage(task, sft_model, pairs)
    plan = task.plan
    return {"task": task, "sft_model": sft_model, "sft_history": sft_history, "pairs": pairs, "ref_data": ref_data,
            "sft": sft_point(task, sft_model),
            "dpo": [dpo_run(task, sft_model, ref_data, beta) for beta in plan.dpo_betas],
            "variant_runs": [dpo_run(task, sft_model, ref_data, v.beta, v.loss_type, v.label_smoothing, method=v.method)
                             for v in plan.variants],
            "long_runs": [over_optimisation_run(task, sft_model, ref_data, lt, b) for lt, b in plan.long_runs]}


@dataclass(frozen=True)
class LongRunFall:
    """Did the true reward fall by the end of a long run? The last checkpoint against *every* earlier one (no
    checkpoint picked by its reward), paired over the prompts (every checkpoint draws with the same seed on the same
    prompts), with Holm's correction over them; the verdict is "lower" only if the last is called lower than some
    earlier checkpoint and higher than none."""

    comparisons: tuple[Comparison, ...]
    holm: tuple[Verdict, ...]

    @property
    def verdict(self) -> Verdict:
        return combine(self.holm)

    def as_dict(self) -> dict:
        return {"comparisons": list(self.comparisons), "holm": [v.value for v in self.holm],
                "verdict": self.verdict.value}


def long_run_fall(run: dict, seed: int = 0) -> LongRunFall:
    """The plan's test of a fall on one long run (`LongRunFall`)."""
    last = run["points"][-1]
    comparisons = tuple(Comparison("mean true reward", f"{last['epochs']:g} epochs", f"{p['epochs']:g} epochs",
                                   paired_difference(last["rewards"], p["rewards"], seed=seed))
                        for p in run["points"][:-1])
    return LongRunFall(comparisons, tuple(holm(list(comparisons))))


def variants_results(profile: Profile, run_dir=None, show_progress: bool = True) -> dict:
    """Notebook 09's numbers as `run_variants` saves them."""
    t0 = time.time()
    stages = variants_stages(profile, run_dir, show_progress)
    task, plan = stages["task"], stages["task"].plan
    keep = lambda r: {k: v for k, v in r.items() if k not in ("examples", "rewards", "log_ratios")}  # noqa: E731
    names = [*(dpo_run_name(b) for b in plan.dpo_betas),
             *(dpo_run_name(v.beta, v.loss_type, v.label_smoothing) for v in plan.variants),
             *(f"long_{lt}_beta{b:g}/{e:g}" for lt, b in plan.long_runs for e in plan.long_epochs)]
    return to_json({
        "profile": profile.name, "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo variants",
        "model": profile.model, "model_note": model_note(profile.model), "seed": profile.seed, "plan": plan,
        "data": task.info, "pairs": stages["pairs"]["stats"], "sft": keep(stages["sft"]),
        "dpo": [keep(r) for r in stages["dpo"]], "variant_runs": [keep(r) for r in stages["variant_runs"]],
        "long_runs": [{**r, "points": [keep(p) for p in r["points"]]} for r in stages["long_runs"]],
        "long_run_falls": [long_run_fall(r, profile.seed) for r in stages["long_runs"]],
        # the runs' own training and scoring (the base's SFT and pairs are in `timing_s`)
        "compute_s": task.run.compute_s(names), "timing_s": task.run.timing(),
        "peak_rss_gib": peak_rss_gib(), "wall_s_this_invocation": time.time() - t0,
        "environment": environment(),
    })


def variants_figures(results: dict, figures_dir="figures") -> dict[str, Path]:
    """Notebook 09's figures from its results: the variants' frontier points and the long runs."""
    import matplotlib.pyplot as plt

    from .frontier_plots import frontier_points, plot_frontier, plot_over_optimisation

    figures_dir, p, model = Path(figures_dir), results["profile"], results["model"]
    paths = {"variants": figures_dir / f"09_variants_frontier_{p}.png",
             "over_optimisation": figures_dir / f"09_over_optimisation_{p}.png"}
    plot_frontier(frontier_points([results["sft"], *results["dpo"], *results["variant_runs"]]), paths["variants"],
                  title=f"DPO variants, {model}, n={results['sft']['n']} held-out prompts")
    plot_over_optimisation(results["long_runs"], paths["over_optimisation"], title=f"training long ({model})")
    for fig in plt.get_fignums():
        plt.close(fig)
    return paths


def run_variants(profile: Profile, run_dir=None, results_dir="results", figures_dir="figures",
                 show_progress: bool = True) -> dict:
    """Every stage of notebook 09; saves results/variants_<profile>.json and its figures."""
    return write_results_and_figures(Path(results_dir) / f"variants_{profile.name}.json",
                                     variants_results(profile, run_dir, show_progress),
                                     lambda r: variants_figures(r, figures_dir))
