"""Figures of notebook 10: the family's sentiment frontier (true reward and reply length against KL), the loss
shapes, and the instruction variants' judge win rate against reply length and content fidelity."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..losses import LOSSES, PairLogps
from ..plots import finish_figure

MARKERS = "osD^v<>pXh*P"


def _ci(p: dict, key: str, lo: str, hi: str) -> list[float]:
    return [p[key] - p[lo], p[hi] - p[key]]


def plot_family_frontier(points: list[dict], path: str | Path | None = None, title: str = "", reward: str = "vader"):
    """Left: mean true reward (95% interval) against KL(pi || pi_SFT) (+-1 s.e.), one marker per method (DPO and
    online DPO joined across beta). Right: mean reply length against the same KL."""
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4))
    methods = list(dict.fromkeys(p["method"] for p in points))
    for i, method in enumerate(methods):
        pts = sorted((p for p in points if p["method"] == method), key=lambda p: p["kl"])
        style = dict(marker=MARKERS[i % len(MARKERS)], ms=6, capsize=2, lw=1.1 if len(pts) > 1 else 0, label=method)
        kl, kl_se = [p["kl"] for p in pts], [p.get("kl_se") or 0.0 for p in pts]
        yerr = list(zip(*[[p["reward"] - p["reward_ci"][0], p["reward_ci"][1] - p["reward"]] for p in pts]))
        axes[0].errorbar(kl, [p["reward"] for p in pts], yerr=yerr, xerr=kl_se, **style)
        axes[1].errorbar(kl, [p["reply_tokens"] for p in pts], xerr=kl_se, **style)
        for p in pts:
            if len(pts) > 1:
                label = f"{p['epochs']:g} ep" if "epochs" in p else f"beta={p['beta']:g}"
                axes[0].annotate(label, (p["kl"], p["reward"]), fontsize=6.5, xytext=(3, 3), textcoords="offset points")
    axes[0].set_ylabel("mean ground-truth reward" + (" (VADER compound)" if reward == "vader" else f" ({reward})"))
    axes[1].set_ylabel("mean reply length, tokens")
    for ax in axes:
        ax.set_xlabel("KL(pi || pi_SFT) per prompt, nats (from samples)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.1))
    return finish_figure(fig, path, title)


def plot_instruction_family(rows: dict, path: str | Path | None = None, title: str = ""):
    """The preference judge's win rate against the reference (95% bootstrap interval over prompts) against mean
    words per reply (left) and the rude rate (right); the reference's own as a dashed line."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    ref = rows["reference"]
    for i, (method, r) in enumerate((m, r) for m, r in rows.items() if m != "reference"):
        win = r["judge_vs_reference"]["interval"]
        yerr = [[win["estimate"] - win["low"]], [win["high"] - win["estimate"]]]
        rude = r["rude_rate"]
        for ax, x, xerr in ((axes[0], r["mean_words"], None),
                            (axes[1], rude["estimate"], [[rude["estimate"] - rude["low"]],
                                                         [rude["high"] - rude["estimate"]]])):
            ax.errorbar([x], [win["estimate"]], yerr=yerr, xerr=xerr, marker=MARKERS[i], ms=7, capsize=2, lw=0,
                        label=f"{method} (beta={r['beta']:g})")
    for ax, x, label in ((axes[0], ref["mean_words"], "mean words per reply"),
                         (axes[1], ref["rude_rate"]["estimate"], "rude rate (high-precision lexicon)")):
        ax.axvline(x, ls="--", c="grey", lw=1)
        ax.axhline(0.5, ls=":", c="grey", lw=1)
        ax.set_xlabel(label + " (dashed: reference)")
        ax.set_ylabel("judge win rate vs reference")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7.5)
    return finish_figure(fig, path, title)


def plot_loss_shapes(path: str | Path | None = None, title: str = "", beta: float = 1.0):
    """Each pair loss of the registry as a function of the margin, and its gradient weight -dL/dmargin, for one
    pair with equal reply lengths (|y| = 1) and, for KTO, a KL estimate z = 0. The margin moves the chosen
    reply's log-ratio up by m/2 and the rejected one's down by m/2."""
    m = torch.linspace(-8, 8, 321, dtype=torch.float64, requires_grad=True)
    one = torch.ones(1, dtype=torch.float64)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    for name, spec in LOSSES.items():
        losses = []
        for x in m.unbind():  # each margin its own batch of one pair (RPO's and ORPO's NLL is a batch mean)
            x = x.view(1)
            lp = (PairLogps(x / 2 - 1, -x / 2 - 1, -one, -one, one, one, torch.zeros(2, dtype=torch.float64))
                  if spec.needs_reference
                  else PairLogps(x / 2 - 4.5, -x / 2 - 4.5, None, None, one, one))  # log-probs below 0 for ORPO's odds
            losses.append(spec.fn(lp, beta))
        loss = torch.cat(losses)
        (grad,) = torch.autograd.grad(loss.sum(), m)
        axes[0].plot(m.detach(), loss.detach(), lw=1.2, label=name)
        axes[1].plot(m.detach(), -grad, lw=1.2, label=name)
    axes[0].set_ylabel("loss")
    axes[1].set_ylabel("gradient weight  -dL/d(margin)")
    for ax in axes:
        ax.set_xlabel("margin m (chosen minus rejected log-ratio)")
        ax.grid(alpha=0.3)
    axes[0].set_ylim(-0.2, 10)
    axes[1].set_ylim(-1.5, 2.5)  # IPO's weight is linear in the margin and leaves the panel
    axes[0].legend(fontsize=7.5, ncol=2)
    return finish_figure(fig, path, title)


def family_figures(results: dict, figures_dir="figures") -> dict[str, Path]:
    """The figures of a results dictionary (results/family_<profile>.json), titled as in notebook 10."""
    figures_dir = Path(figures_dir)
    p, model = results["profile"], results["model"]
    n = results["frontier_plan"]["n_test"]
    paths = {"frontier": figures_dir / f"10_family_frontier_{p}.png",
             "instruction": figures_dir / f"10_family_instruction_{p}.png"}
    plot_family_frontier(results["sentiment"]["points"] + results["sentiment"]["dpo_long"], paths["frontier"],
                         reward=results["frontier_plan"]["reward"],
                         title=f"DPO's family on controlled sentiment, {model}, n={n} held-out prompts")
    plot_instruction_family(results["instruction"]["rows"], paths["instruction"],
                            title=f"instruction pairs, {model}: judge win rate vs reference (n="
                                  f"{results['instruction']['rows']['DPO']['n_prompts']} test prompts)")
    # notebook 09's figures, from the same sentiment base (the CLI draws them too, not only the notebook)
    from .frontier_plots import frontier_points, plot_frontier, plot_over_optimisation

    base = results["sentiment"]["dpo_variants"]
    sft = next(q for q in results["sentiment"]["points"] if q["method"] == "SFT")
    paths["variants"], paths["over_optimisation"] = (figures_dir / f"09_variants_frontier_{p}.png",
                                                     figures_dir / f"09_over_optimisation_{p}.png")
    plot_frontier(frontier_points([sft, *base["dpo"], *base["variant_runs"]]), paths["variants"],
                  title=f"DPO variants, {model}, n={n} held-out prompts")
    plot_over_optimisation(base["long_runs"], paths["over_optimisation"], title=f"training long ({model})")
    for fig in plt.get_fignums():
        plt.close(fig)
    return paths
