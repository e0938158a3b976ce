"""Figures of notebook 08 (and the frontier plot notebook 09 reuses): the reward-KL curves, PPO's stability
diagnostics and learning curves, the reward model's learning curves and over-optimisation, the matched-KL readings."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..plots import BARS, errorbar_points, finish_figure, interval_err


def frontier_points(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs (or seed-averaged points) grouped by method into (kl, reward) points sorted by KL, for the frontier plot."""
    keys = ("kl", "kl_se", "reward", "reward_ci", "beta", "kl_coef", "best_of", "n", "budget", "seeds", "seed_rewards",
            "seed_kls")
    out: dict[str, list[dict]] = {}
    for r in runs:
        out.setdefault(r["method"], []).append({k: r[k] for k in keys if r.get(k) is not None})
    return {m: sorted(v, key=lambda p: p["kl"]) for m, v in out.items()}



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


def plot_over_optimisation(long_runs: list[dict], path: str | Path | None = None, title: str = ""):
    """Long training: true reward (left) and KL (middle) against epochs, and true reward against KL (right); the
    reward with its 95% interval over prompts, the KL +-1 standard error (a fall is read against these)."""
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 2.8))
    for run in long_runs:
        pts = run["points"]
        label = f"{run['loss_type']}, beta={run['beta']:g}"
        ep = [p["epochs"] for p in pts]
        axes[0].errorbar(ep, [p["reward"] for p in pts], yerr=interval_err(pts), fmt="o-", label=label, **BARS)
        axes[1].errorbar(ep, [p["kl"] for p in pts], yerr=[p.get("kl_se") or 0.0 for p in pts], fmt="o-",
                         label=label, **BARS)
        errorbar_points(axes[2], pts, fmt="o-", label=label)
    for ax, (x, y) in zip(axes, [("epochs", "mean true reward"), ("epochs", "KL(pi || pi_SFT), nats"),
                                 ("KL(pi || pi_SFT), nats", "mean true reward")]):
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return finish_figure(fig, path, title)


_STYLE = {"DPO": ("C0", "o", "-"), "PPO": ("C3", "s", "--"), "PPO-GT": ("C2", "^", ":")}


def _knob_label(curve: dict) -> str:
    return f"{curve['method']}, {'beta' if curve['knob'] == 'beta' else 'kl_coef'}={curve[curve['knob']]:g}"


def _draw_curves(ax, results: dict):
    """Every curve and reference point of `plot_curves` on one panel; a checkpoint's budget is in the legend, not
    beside its point, where labels would cover each other at low KL."""
    for method, curves in results["curves"].items():
        color, marker, ls = _STYLE.get(method, ("C7", "o", "-"))
        for i, curve in enumerate(curves):
            pts = curve["points"]
            budgets = ", ".join(f"{p['budget']:g}" for p in pts)
            errorbar_points(ax, pts, color=color, marker=marker, ls=ls, ms=5 - i, lw=1.3, alpha=1.0 if i == 0 else 0.55,
                      label=f"{_knob_label(curve)} ({len(curve['seeds'])} seeds; {budgets} {curve['budget_unit']})")
            for p in pts:
                ax.plot(p.get("seed_kls", []), p.get("seed_rewards", []), ".", ms=3, color=color, alpha=0.35)
    ref = results["reference_points"]
    errorbar_points(ax, [{**ref["SFT"], "kl": 0.0}], fmt="k*", ms=9, label="SFT")
    errorbar_points(ax, [ref["Preferred-FT"]], fmt="P", color="C4", ms=7, label="Preferred-FT (1 seed)")
    bon = ref["Best-of-N"]
    errorbar_points(ax, bon, fmt="D-", color="C5", ms=4, lw=1,
              label=f"best-of-N on r_phi at its KL bound (N={', '.join(str(b['best_of']) for b in bon)})")


def _zoom(results: dict) -> tuple[float, tuple[float, float]]:
    """The zoomed panel's KL limit, a quarter of the largest KL of any point (the low-KL crowd lies below it), and
    its reward range: the 95% intervals of the points inside, a little padded."""
    ref = results["reference_points"]
    pts = ([p for curves in results["curves"].values() for c in curves for p in c["points"]]
           + [ref["SFT"], ref["Preferred-FT"], *ref["Best-of-N"]])
    zoom = 0.25 * max(p.get("kl", 0.0) for p in pts) or 1.0
    inside = [p for p in pts if p.get("kl", 0.0) <= zoom]
    low, high = min(p["reward_ci"][0] for p in inside), max(p["reward_ci"][1] for p in inside)
    pad = 0.05 * (high - low) or 0.01
    return zoom, (low - pad, high + pad)


def plot_curves(results: dict, path: str | Path | None = None, title: str = ""):
    """The DPO paper's figure 2 (left) as curves: each method at each knob along its checkpoints (seed means, with
    95% intervals on the reward, +-1 standard error on the KL and each seed's reading as a small dot), the SFT model
    at KL 0, Preferred-FT and best-of-N as reference points. Left every point, right the low-KL corner (a quarter of
    the largest KL) zoomed, where SFT, PPO and DPO's first checkpoints crowd; the legend sits below the panels,
    where it covers none of them."""
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.5))
    for ax in axes:
        _draw_curves(ax, results)
        ax.set_xlabel("KL(pi || pi_SFT) per prompt, nats")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean ground-truth reward (test prompts)")
    zoom, rewards = _zoom(results)
    axes[0].axvspan(0.0, zoom, color="grey", alpha=0.12, lw=0)
    axes[0].set_title("all points (shaded: zoomed at right)", fontsize=9)
    axes[1].set_xlim(-0.04 * zoom, zoom)
    axes[1].set_ylim(*rewards)
    axes[1].set_title(f"KL up to {zoom:.2g} nats", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=8)
    return finish_figure(fig, path, title)


def _ppo_groups(results: dict) -> dict[tuple, list[dict]]:
    """PPO's and PPO-GT's runs grouped by (method, kl_coef): the seeds of one curve."""
    groups: dict[tuple, list[dict]] = {}
    for run in results["runs"]:
        if run["method"] in ("PPO", "PPO-GT"):
            groups.setdefault((run["method"], run["kl_coef"]), []).append(run)
    return groups


def plot_ppo_diagnostics(results: dict, path: str | Path | None = None, title: str = ""):
    """PPO's stability per iteration: approxkl of the pilot's learning rates (with the stability threshold and the
    pilot's, a fraction of it), then for the runs (mean over seeds, band from lowest to highest seed) approxkl,
    clip fraction, largest ratio, entropy per reply token and value loss."""
    threshold = results["ppo_stability"]["threshold"]
    fig, axes = plt.subplots(2, 3, figsize=(11.5, 6.2))
    ax = axes[0, 0]
    for r in results["ppo_pilot"]["runs"]:
        d = r["diagnostics"]["policy/approxkl_avg"]
        ax.plot(range(1, len(d) + 1), d, "o-", ms=3, label=f"lr {r['learning_rate']:g}"
                + (" (chosen)" if r["learning_rate"] == results["ppo_pilot"]["learning_rate"] else ""))
    ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"stable below {threshold:g}")
    pilot_threshold = results["ppo_pilot"]["pilot_threshold"]
    if pilot_threshold != threshold:  # the rule's fraction of the definition's threshold
        ax.axhline(pilot_threshold, color="grey", ls=":", lw=1, label=f"the pilot's rule: below {pilot_threshold:g}")
    ax.set_yscale("log")
    ax.set_title("pilot: approxkl per learning rate", fontsize=9)
    ax.legend(fontsize=7)
    keys = [("policy/approxkl_avg", "runs: approxkl"), ("policy/clipfrac_avg", "clip fraction"),
            ("val/ratio_max", "largest probability ratio"), ("policy/entropy_avg", "entropy per reply token, nats"),
            ("loss/value_avg", "value loss")]
    groups = _ppo_groups(results)
    for ax, (key, name) in zip(axes.flat[1:], keys):
        for (method, kl_coef), group in groups.items():
            its = [x["iteration"] for x in group[0]["history"]]
            values = torch.tensor([[x[key] for x in run["history"]] for run in group])
            _, _, ls = _STYLE.get(method, ("C7", "o", "-"))
            line, = ax.plot(its, values.mean(0), ls=ls, lw=1.2, label=f"{method}, kl_coef={kl_coef:g}")
            ax.fill_between(its, values.min(0).values, values.max(0).values, color=line.get_color(), alpha=0.15, lw=0)
        if key == "policy/approxkl_avg":
            ax.axhline(threshold, color="grey", ls="--", lw=1)
        ax.set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_xlabel("PPO iteration", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=7)
    return finish_figure(fig, path, title)


def plot_ppo_learning(results: dict, path: str | Path | None = None, title: str = ""):
    """PPO per iteration (mean over seeds, band from lowest to highest seed): the score it maximises (the calibrated
    r_phi; PPO-GT: r*), the true reward of its rollouts, and KL to the SFT model."""
    keys = [("objective/scores", "score maximised (r_phi calibrated; PPO-GT: r*)"),
            ("ground_truth_reward", "true reward r* of rollouts"), ("objective/kl", "KL(pi || pi_SFT), nats")]
    groups = _ppo_groups(results)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for (method, kl_coef), group in groups.items():
        for ax, (key, name) in zip(axes, keys):
            its = [x["iteration"] for x in group[0]["history"]]
            values = torch.tensor([[x[key] for x in run["history"]] for run in group])
            _, _, ls = _STYLE.get(method, ("C7", "o", "-"))
            line, = ax.plot(its, values.mean(0), ls=ls, lw=1.2, label=f"{method}, kl_coef={kl_coef:g} "
                                                                       f"({len(group)} seeds)")
            ax.fill_between(its, values.min(0).values, values.max(0).values, color=line.get_color(), alpha=0.15, lw=0)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("PPO iteration")
            ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.1))
    return finish_figure(fig, path, title)


def plot_reward_model(results: dict, path: str | Path | None = None, title: str = ""):
    """Left: the reward model's held-out (validation) pair accuracy over training, per learning rate, against epochs
    (pairs seen / training pairs), the chosen run and epoch marked. Right: on PPO's own test samples at each
    checkpoint, the reward model's accuracy in ordering the policy's reply against the SFT reply (over-optimisation
    shows as a fall), per method and kl_coef."""
    rm = results["reward_model"]
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6))
    ax = axes[0]
    for cand in rm["candidates"]:
        curve = cand["learning_curve"]
        line, = ax.plot([c["epochs"] for c in curve], [c["accuracy"] for c in curve], "o-", ms=3,
                        label=f"lr {cand['learning_rate']:g}")
        for p in cand["points"]:
            chosen = p["learning_rate"] == rm["learning_rate"] and p["epochs"] == rm["epochs"]
            ax.plot([p["epochs"]], [p["validation_accuracy"]], "*" if chosen else "x", ms=11 if chosen else 6,
                    color=line.get_color())
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax.set_xlabel("epochs over the training pairs")
    ax.set_ylabel(f"validation pair accuracy (n={rm['n_validation_pairs']})")
    ax.set_ylim(0.3, 1.0)
    ax.legend(fontsize=7)
    ax.set_title("reward model: learning curves (star: chosen)", fontsize=9)
    ax = axes[1]
    for method in ("PPO", "PPO-GT"):
        for curve in results["curves"].get(method, []):
            pts = curve["points"]
            _, marker, ls = _STYLE[method]
            ax.plot([p["budget"] for p in pts], [p["rm_accuracy_vs_sft"] if p["rm_pairs_vs_sft"] else float("nan")
                                                 for p in pts], marker=marker, ls=ls,
                    label=_knob_label(curve))
    ax.axhline(results["reward_model"]["test_pair_accuracy"], color="C5", lw=1,
               label="on SFT samples (best-of-N draws)")
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xlabel("PPO iteration")
    ax.set_ylabel("r_phi accuracy: policy reply vs SFT reply")
    ax.set_ylim(0.3, 1.0)
    ax.legend(fontsize=7)
    ax.set_title("reward model on PPO's own samples (test prompts)", fontsize=9)
    for a in axes:
        a.grid(alpha=0.3)
    return finish_figure(fig, path, title)


def plot_matched_kl(results: dict, path: str | Path | None = None, title: str = ""):
    """Every matched-KL reading: DPO minus the other method's curve at one KL, with its 95% interval; filled when
    Holm's correction calls it, hollow when not, grey when inconclusive (its replicates left a curve's range)."""
    rows = [(name, r) for name, v in results["matched_kl"].items() for r in v["readings"]]
    fig, ax = plt.subplots(figsize=(7.2, 0.32 * max(1, len(rows)) + 1.4))
    for y, (name, r) in enumerate(rows):
        i = r["comparison"]["interval"]
        color = "C3" if name == "PPO" else "C2"
        called = r["holm_verdict"] not in (None, "no clear difference")
        ax.errorbar([i["estimate"]], [y], xerr=[[i["estimate"] - i["low"]], [i["high"] - i["estimate"]]], fmt="o",
                    capsize=2, color=color if r["conclusive"] else "grey",
                    mfc=color if called else "white")
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(rows)), [f"{r['dpo']} vs {r['other']} at KL {r['kl']:.2f}" for _, r in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("DPO minus other: mean true reward at matched KL (each along its own curve)")
    ax.grid(alpha=0.3, axis="x")
    return finish_figure(fig, path, title, ax)


def frontier_figures(results: dict, figures_dir="figures") -> dict[str, Path]:
    """The frontier figures of a results dictionary, with the titles notebook 08 gives them."""
    figures_dir = Path(figures_dir)
    p, model = results["profile"], results["model"]
    n = results["sft"]["n"]
    paths = {k: figures_dir / f"08_{k}_{p}.png"
             for k in ("frontier", "ppo_diagnostics", "ppo_curves", "reward_model", "matched_kl")}
    plot_curves(results, paths["frontier"], title=f"controlled sentiment, {model}: n={n} test prompts")
    plot_ppo_diagnostics(results, paths["ppo_diagnostics"],
                         title=f"PPO's stability ({results['plan']['ppo']['rollout_batch_size']} rollouts per "
                               f"iteration, lr {results['ppo_pilot']['learning_rate']:g})")
    plot_ppo_learning(results, paths["ppo_curves"], title=f"PPO and PPO-GT from the SFT model ({model})")
    plot_reward_model(results, paths["reward_model"], title=f"reward model r_phi ({model} trunk)")
    plot_matched_kl(results, paths["matched_kl"], title=f"DPO against PPO and PPO-GT at matched KL (n={n} prompts)")
    for fig in plt.get_fignums():
        plt.close(fig)
    return paths
