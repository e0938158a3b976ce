"""The whole frontier for the CLI (`python -m minidpo frontier`): every stage of notebook 08 (SFT, pairs, the reward
model, best-of-N, Preferred-FT, DPO and PPO and PPO-GT at every seed), the seed-averaged points with budgets
chosen on validation, the matched-KL verdicts, the results file `results/frontier_<profile>.json` and its figures.
`shared_stages` is the one-seed sentiment base that notebooks 09-10 build on."""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .. import __version__
from ..models import model_note
from ..plots import finish_figure
from .frontier import dpo_run, pairs_stage, preferred_ft_run, prepare_task, reference_stage, sft_point, sft_stage
from .frontier_rlhf import best_of_n_stage, reward_models_stage
from .frontier_seeds import dpo_seeded_run, matched_kl_verdicts, ppo_seeded_run, seeded_points
from .profiles import Profile
from .measure import peak_rss_gib
from .runs import to_json, write_results_and_figures


def frontier_points(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs (or seed-averaged points) grouped by method into (kl, reward) points sorted by KL, for the frontier plot."""
    keys = ("kl", "kl_se", "reward", "reward_ci", "beta", "kl_coef", "best_of", "n", "budget", "seeds", "seed_rewards",
            "seed_kls")
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(r["method"], []).append({k: r[k] for k in keys if r.get(k) is not None})
    return {m: sorted(v, key=lambda p: p["kl"]) for m, v in out.items()}


def shared_stages(profile: Profile, run_dir=None, show_progress: bool = True) -> tuple:
    """What notebooks 09-10 start from, on the one-seed sentiment base (`profile.sentiment`, cached in
    `runs/<profile>/sentiment/`): (task, SFT model, its history, pairs, pairs with reference log-probs, the SFT
    point, the DPO runs at the plan's betas)."""
    task = prepare_task(profile, run_dir, show_progress, plan=profile.sentiment, subdir="sentiment")
    sft_model, sft_history = sft_stage(task)
    pairs = pairs_stage(task, sft_model)
    ref_data = reference_stage(task, sft_model, pairs)
    dpo = [dpo_run(task, sft_model, ref_data, beta) for beta in task.plan.dpo_betas]
    return task, sft_model, sft_history, pairs, ref_data, sft_point(task, sft_model), dpo


def run_frontier(profile: Profile, run_dir=None, results_dir="results", figures_dir="figures",
                 show_progress: bool = True) -> dict:
    """Every stage of notebook 08; saves results/frontier_<profile>.json and the figures."""
    t0 = time.time()
    task = prepare_task(profile, run_dir, show_progress)
    plan = task.plan
    sft_model, sft_history = sft_stage(task)
    pairs = pairs_stage(task, sft_model)
    ref_data = reference_stage(task, sft_model, pairs)
    sft = sft_point(task, sft_model)
    reward_models, use = reward_models_stage(task, sft_model, pairs)  # RLHF uses the best readout on validation pairs
    reward_model, rm_result = reward_models[use]
    best = best_of_n_stage(task, sft_model, {k: m for k, (m, _) in reward_models.items()}, use)
    preferred = preferred_ft_run(task, sft_model, pairs)
    dpo_runs = [dpo_seeded_run(task, sft_model, ref_data, b, s) for b in plan.dpo_betas for s in plan.seeds]
    gt_runs = [ppo_seeded_run(task, sft_model, None, c, s, ground_truth=True)
               for c in plan.ppo_gt_kl_coefs for s in plan.seeds]
    ppo_runs = [ppo_seeded_run(task, sft_model, reward_model, c, s) for c in plan.kl_coefs for s in plan.seeds]
    dpo, ppo, ppo_gt = (seeded_points(runs, knob, profile.seed)
                        for runs, knob in ((dpo_runs, "beta"), (ppo_runs, "kl_coef"), (gt_runs, "kl_coef")))
    runs = [*dpo_runs, *gt_runs, *ppo_runs]
    results = {
        "profile": profile.name,
        "command": f"MINIDPO_PROFILE={profile.name} python -m minidpo frontier",
        "model": profile.model, "model_note": model_note(profile.model), "seed": profile.seed, "plan": to_json(plan),
        "data": task.info,
        "pairs": pairs["stats"], "sft": {"history": sft_history, **sft},
        "reward_model": {**rm_result, **best["reward_models"][use], "test_samples": best["n_samples"]},
        "reward_models": {k: {**{f: v for f, v in r.items() if f != "history"}, **best["reward_models"][k]}
                          for k, (_, r) in reward_models.items()},
        "frontier": frontier_points([sft, *dpo, preferred, *ppo, *ppo_gt, *best["rows"]]),
        "dpo": dpo, "ppo": ppo, "ppo_gt": ppo_gt, "preferred_ft": preferred, "best_of_n": best,
        "matched_kl": matched_kl_verdicts(sft, dpo, {"PPO": ppo, "PPO-GT": ppo_gt}, seed=profile.seed),
        "runs": [{k: r[k] for k in ("method", "beta", "kl_coef", "seed", "budget_unit", "history") if k in r}
                 | {"points": [{k: v for k, v in p.items() if k not in ("validation", "test")}
                               | {split: {k: v for k, v in p[split].items() if k not in ("rewards", "log_ratios")}
                                  for split in ("validation", "test")}
                               for p in r["points"]]} for r in runs],
        # every stage measured its own time and memory when it computed (a cached stage is read back, not re-timed):
        # their sum is the experiment's compute, whatever this invocation found in the cache
        "timing_s": task.run.timing(), "compute_s": task.run.compute_s(), "peak_rss_gib": task.run.peak_stage_rss_gib(),
        "wall_s_this_invocation": time.time() - t0, "peak_rss_gib_this_invocation": peak_rss_gib(),
        "environment": {"minidpo": __version__, "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    return write_results_and_figures(Path(results_dir) / f"frontier_{profile.name}.json", results,
                                     lambda r: frontier_figures(r, figures_dir))


# ----------------------------------------------------------------------------- figures


# each method's knob labels sit in their own direction from the point, so two methods' labels never print over
# each other
_LABEL_OFFSETS = [(5, 5, "left"), (5, -11, "left"), (-5, 5, "right"), (-5, -11, "right"), (0, 9, "center"),
                  (0, -15, "center")]


def plot_frontier(frontier: dict[str, list[dict]], path: str | Path | None = None, title: str = ""):
    """Mean true reward against sequence KL(pi || pi_ref), one curve per method (the DPO paper's figure 2,
    left), with 95% intervals on the reward and +-1 standard error on the KL; where a point averages several
    training seeds, each seed's reading is a small dot. Points are labelled by their knob (beta, kl_coef, N)."""
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    for i, (method, points) in enumerate(frontier.items()):
        kl = [p["kl"] for p in points]
        reward = [p["reward"] for p in points]
        yerr = [[p["reward"] - p["reward_ci"][0] for p in points], [p["reward_ci"][1] - p["reward"] for p in points]]
        xerr = [p.get("kl_se") or 0.0 for p in points]
        seeds = len(points[0].get("seeds", [])) or 1
        bars = ax.errorbar(kl, reward, yerr=yerr, xerr=xerr, marker="o", ms=5, capsize=2, lw=1.2,
                           label=method + (f" ({seeds} seeds)" if seeds > 1 else ""))
        color = bars[0].get_color()
        for p in points:
            if p.get("seed_kls"):
                ax.plot(p["seed_kls"], p["seed_rewards"], ".", ms=4, color=color, alpha=0.5)
        dx, dy, ha = _LABEL_OFFSETS[i % len(_LABEL_OFFSETS)]
        for p in points:
            knob = next((f"{label}={p[k]:g}"
                         for k, label in (("beta", "beta"), ("kl_coef", "kl_coef"), ("best_of", "N"))
                         if p.get(k) is not None), "")
            if knob:
                ax.annotate(knob, (p["kl"], p["reward"]), fontsize=6.5, xytext=(dx, dy), textcoords="offset points",
                            ha=ha, color=color)
    ax.set_xlabel("KL(pi || pi_SFT) per prompt, nats (estimated from samples)")
    ax.set_ylabel("mean ground-truth reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return finish_figure(fig, path, title, ax)


def plot_ppo_curves(runs: list[dict], path: str | Path | None = None, title: str = ""):
    """PPO per iteration: reward-model score, true reward of the rollouts, and KL to the reference; runs of the
    same method and kl_coef (training seeds) drawn as their mean with the band between the lowest and highest seed."""
    keys = [("objective/scores", "score maximised (r_phi; PPO-GT: r*)"),
            ("ground_truth_reward", "true reward r* of rollouts"), ("objective/kl", "KL(pi || pi_ref), nats")]
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run.get("method", "PPO"), run["kl_coef"]), []).append(run)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for (method, kl_coef), group in groups.items():
        label = f"{method}, kl_coef={kl_coef:g}" + (f" ({len(group)} seeds)" if len(group) > 1 else "")
        for ax, (key, name) in zip(axes, keys):
            its = [x["iteration"] for x in group[0]["history"] if key in x]
            values = torch.tensor([[x[key] for x in run["history"] if key in x][: len(its)] for run in group])
            line, = ax.plot(its, values.mean(0), lw=1.2, label=label)
            if len(group) > 1:
                ax.fill_between(its, values.min(0).values, values.max(0).values, color=line.get_color(), alpha=0.2,
                                lw=0)
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("PPO iteration")
            ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.12))
    return finish_figure(fig, path, title)


def plot_reward_model(rm: dict, path: str | Path | None = None, title: str = ""):
    """The reward model's learning curve: held-out pair accuracy (against the true reward's labels) after each
    number of training pairs seen, with chance."""
    curve = rm["learning_curve"]
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    ax.plot([c["pairs_seen"] for c in curve], [c["accuracy"] for c in curve], "o-", label="r_phi, held-out pairs")
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax.set_xlabel("training pairs seen (one pass)")
    ax.set_ylabel(f"held-out pair accuracy (n={rm['n_validation_pairs']})")
    ax.set_ylim(0.3, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return finish_figure(fig, path, title, ax)


def plot_matched_kl(matched: dict[str, dict], path: str | Path | None = None, title: str = ""):
    """DPO's true reward minus each other method's at matched KL, with paired-bootstrap 95% intervals (one row per
    comparison; rows outside the other curve's KL range are left out)."""
    rows = [(f"vs {name} at {r['at']} (KL {r['kl']:.2f})", r) for name, m in matched.items() for r in m["comparisons"]
            if r["difference"] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(rows) + 1.2))
    for y, (label, r) in enumerate(rows):
        ax.errorbar([r["difference"]], [y], xerr=[[r["difference"] - r["ci_low"]], [r["ci_high"] - r["difference"]]],
                    fmt="o", capsize=3, color="C0" if label.startswith("vs PPO ") else "C3")
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("DPO minus other, mean true reward at matched KL")
    ax.grid(alpha=0.3, axis="x")
    return finish_figure(fig, path, title, ax)


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
    for ax, (x, y) in zip(axes, [("epochs", "mean true reward"), ("epochs", "KL(pi || pi_SFT), nats"),
                                 ("KL(pi || pi_SFT), nats", "mean true reward")]):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return finish_figure(fig, path, title)



def frontier_figures(results: dict, figures_dir="figures") -> dict[str, Path]:
    """The frontier figures of a results dictionary, with the titles notebook 08 gives them."""
    figures_dir = Path(figures_dir)
    p, model = results["profile"], results["model"]
    n, seeds = results["sft"]["n"], len(results["plan"]["seeds"])
    paths = {k: figures_dir / f"08_{k}_{p}.png" for k in ("frontier", "ppo_curves", "reward_model", "matched_kl")}
    plot_frontier(results["frontier"], paths["frontier"],
                  title=f"controlled sentiment, {model}: n={n} held-out prompts, {seeds} seeds")
    runs = [r for r in results["runs"] if r["method"] != "DPO"]
    plot_ppo_curves(runs, paths["ppo_curves"],
                    title=f"PPO from the SFT model ({model}); "
                          f"{results['plan']['ppo']['rollout_batch_size']} rollouts per iteration")
    plot_reward_model(results["reward_model"], paths["reward_model"], title=f"reward model r_phi ({model} trunk)")
    plot_matched_kl(results["matched_kl"], paths["matched_kl"],
                    title=f"DPO against PPO at matched KL (n={n} prompts, {seeds} seeds)")
    for fig in plt.get_fignums():
        plt.close(fig)
    return paths
