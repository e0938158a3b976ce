"""The whole frontier for the CLI (`python -m minidpo frontier`): every stage of notebooks 08-09, the results file
`results/frontier_<profile>.json`, and its figures."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .. import __version__
from ..models import model_note
from ..plots import finish_figure
from .frontier import dpo_run, over_optimisation_run, pairs_stage, preferred_ft_run, prepare_task, reference_stage, sft_point, sft_stage
from .frontier_rlhf import best_of_n_stage, ppo_run, reward_model_stage
from .profiles import Profile
from .runs import peak_rss_gib, timings, write_results_and_figures


def frontier_points(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs grouped by method into (kl, reward) points sorted by KL, for the frontier plot."""
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(r["method"], []).append({k: r.get(k) for k in ("kl", "kl_se", "reward", "reward_ci", "beta", "kl_coef", "n")})
    return {m: sorted(v, key=lambda p: p["kl"]) for m, v in out.items()}


def shared_stages(profile: Profile, run_dir=None, show_progress: bool = True) -> tuple:
    """What notebooks 08-10 all start from, cached: (task, SFT model, its history, pairs, pairs with reference
    log-probs, the SFT point, the DPO runs at the plan's betas)."""
    task = prepare_task(profile, run_dir, show_progress)
    sft_model, sft_history = sft_stage(task)
    pairs = pairs_stage(task, sft_model)
    ref_data = reference_stage(task, sft_model, pairs)
    dpo = [dpo_run(task, sft_model, ref_data, beta) for beta in task.plan.dpo_betas]
    return task, sft_model, sft_history, pairs, ref_data, sft_point(task, sft_model), dpo


def run_frontier(profile: Profile, run_dir=None, results_dir="results", figures_dir="figures", show_progress: bool = True) -> dict:
    """Every stage of notebooks 08 and 09; saves results/frontier_<profile>.json and the figures."""
    t0 = time.time()
    task, sft_model, sft_history, pairs, ref_data, sft, dpo = shared_stages(profile, run_dir, show_progress)
    plan = task.plan
    preferred = preferred_ft_run(task, sft_model, pairs)
    reward_model, rm_result = reward_model_stage(task, sft_model, pairs)
    ppo = [ppo_run(task, sft_model, reward_model, c) for c in plan.kl_coefs]
    ppo_gt = [ppo_run(task, sft_model, None, c, ground_truth=True) for c in plan.ppo_gt_kl_coefs]
    best = best_of_n_stage(task, sft_model, reward_model)
    variants = [dpo_run(task, sft_model, ref_data, v.beta, v.loss_type, v.label_smoothing, method=v.method) for v in plan.variants]
    long_runs = [over_optimisation_run(task, sft_model, ref_data, lt, b) for lt, b in plan.long_runs]
    stage_times = timings(task.run_dir)
    results = {
        "profile": profile.name,
        "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo frontier",
        "model": profile.model, "model_note": model_note(profile.model), "seed": profile.seed, "plan": asdict(plan), "data": task.info,
        "pairs": pairs["stats"], "sft": {"history": sft_history, **sft},
        "reward_model": rm_result,
        "frontier": frontier_points([sft, *dpo, preferred, *ppo, *ppo_gt, *best["rows"]]),
        "dpo": dpo, "ppo": ppo, "ppo_gt": ppo_gt, "preferred_ft": preferred, "best_of_n": best,
        "variants": frontier_points([*dpo, *variants]), "variant_runs": variants, "long_runs": long_runs,
        "timing_s": stage_times,
        # stages are cached, so this invocation's wall time says little: the experiment's compute is the sum of
        # what each stage and run measured when it ran
        "compute_s": (sum(v["seconds"] for v in stage_times.values())
                      + rm_result["train"]["seconds"]
                      + sum(r["train"]["seconds"] + r["eval_seconds"] for r in [*dpo, preferred, *ppo, *ppo_gt, *variants])
                      + best["sampling"]["seconds"] + sum(r["points"][-1]["train_seconds"] for r in long_runs)),
        "total_s": time.time() - t0, "peak_rss_gib_this_invocation": peak_rss_gib(),  # cached stages: per-run peaks are in each run
        "environment": {"minidpo": __version__, "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    return write_results_and_figures(Path(results_dir) / f"frontier_{profile.name}.json", results,
                                     lambda r: frontier_figures(r, figures_dir))


# ----------------------------------------------------------------------------- figures


def plot_frontier(frontier: dict[str, list[dict]], path: str | Path | None = None, title: str = ""):
    """Mean true reward against sequence KL(pi || pi_ref), one curve per method (the DPO paper's figure 2,
    left), with 95% intervals on the reward and +-1 standard error on the KL; points labelled by their knob."""
    fig, ax = plt.subplots(figsize=(6.2, 4.2))
    for method, points in frontier.items():
        kl = [p["kl"] for p in points]
        reward = [p["reward"] for p in points]
        yerr = [[p["reward"] - p["reward_ci"][0] for p in points], [p["reward_ci"][1] - p["reward"] for p in points]]
        xerr = [p.get("kl_se") or 0.0 for p in points]
        ax.errorbar(kl, reward, yerr=yerr, xerr=xerr, marker="o", ms=5, capsize=2, lw=1.2, label=method)
        for p in points:
            knob = next((f"{k}={p[k]:g}" for k in ("beta", "kl_coef", "n") if p.get(k) is not None), "")
            if knob:
                ax.annotate(knob, (p["kl"], p["reward"]), fontsize=6.5, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("KL(pi || pi_SFT) per prompt, nats (estimated from samples)")
    ax.set_ylabel("mean ground-truth reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return finish_figure(fig, path, title, ax)


def plot_ppo_curves(runs: list[dict], path: str | Path | None = None, title: str = ""):
    """PPO per iteration: reward-model score, true reward of the rollouts, and KL to the reference."""
    keys = [("objective/scores", "score maximised (r_phi; PPO-GT: r*)"), ("ground_truth_reward", "true reward r* of rollouts"),
            ("objective/kl", "KL(pi || pi_ref), nats")]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for run in runs:
        h = run["history"]
        for ax, (key, label) in zip(axes, keys):
            ax.plot([x["iteration"] for x in h if key in x], [x[key] for x in h if key in x], lw=1.2, label=f"{run.get('method', 'PPO')}, kl_coef={run['kl_coef']:g}")
            ax.set_title(label, fontsize=10)
            ax.set_xlabel("PPO iteration")
            ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.12))
    return finish_figure(fig, path, title)


def plot_over_optimisation(long_runs: list[dict], path: str | Path | None = None, title: str = ""):
    """Long training: true reward (left) and KL (middle) against epochs, and true reward against KL (right)."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for run in long_runs:
        pts = run["points"]
        label = f"{run['loss_type']}, beta={run['beta']:g}"
        ep = [p["epochs"] for p in pts]
        axes[0].plot(ep, [p["reward"] for p in pts], "o-", label=label)
        axes[1].plot(ep, [p["kl"] for p in pts], "o-", label=label)
        axes[2].plot([p["kl"] for p in pts], [p["reward"] for p in pts], "o-", label=label)
    for ax, (x, y) in zip(axes, [("epochs", "mean true reward"), ("epochs", "KL(pi || pi_SFT), nats"), ("KL(pi || pi_SFT), nats", "mean true reward")]):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return finish_figure(fig, path, title)



def frontier_figures(results: dict, figures_dir="figures") -> dict[str, Path]:
    """The four frontier figures of a results dictionary, with the titles notebooks 08-09 give them."""
    figures_dir = Path(figures_dir)
    p, model = results["profile"], results["model"]
    n = results["sft"]["n"]
    paths = {
        "frontier": figures_dir / f"08_frontier_{p}.png",
        "ppo_curves": figures_dir / f"08_ppo_curves_{p}.png",
        "variants": figures_dir / f"09_variants_frontier_{p}.png",
        "over_optimisation": figures_dir / f"09_over_optimisation_{p}.png",
    }
    plot_frontier(results["frontier"], paths["frontier"], title=f"controlled sentiment, {model}, n={n} held-out prompts")
    ppo = results["plan"]["ppo"]
    plot_ppo_curves(results["ppo"] + results.get("ppo_gt", []), paths["ppo_curves"],
                    title=f"PPO from the SFT model ({model}); {ppo['iterations']} iterations x {ppo['rollout_batch_size']} prompts")
    plot_frontier(results["variants"], paths["variants"], title=f"DPO variants, {model}, n={n} held-out prompts")
    plot_over_optimisation(results["long_runs"], paths["over_optimisation"], title=f"training long ({model})")
    for fig in plt.get_fignums():
        plt.close(fig)
    return paths
