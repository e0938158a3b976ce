"""Figures of notebook 10: each arm of DPO's family on its own reward-KL curve beside DPO's curves (raw and
length-adjusted reward), and the loss shapes."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..losses import LOSSES, PairLogps
from ..plots import finish_figure


def plot_family_curves(results: dict, path: str | Path | None = None, title: str = "", adjusted: bool = False):
    """One panel per arm: its curve (seeds' mean at each checkpoint, 95% interval over prompts) and DPO's curves at
    each beta (grey), mean true reward (or, with `adjusted`, the length-adjusted reward) against KL(pi || pi_SFT);
    the SFT model at KL 0. Each panel is titled with the arm's verdict against DPO."""
    arms = list(results["arms"])
    cols = 3
    rows = math.ceil(len(arms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.1 * rows), sharex=True, sharey=True, squeeze=False)
    key = "length_adjusted_reward" if adjusted else "reward"
    kind = "length-adjusted" if adjusted else "raw"
    sft = results["sft"]

    def draw(ax, curve, **style):
        pts = curve["points"]
        y = [p[key] for p in pts]
        shift = [p[key] - p["reward"] for p in pts]  # the interval of the raw reward, moved with the adjustment
        yerr = [[p[key] - (p["reward_ci"][0] + d) for p, d in zip(pts, shift)],
                [(p["reward_ci"][1] + d) - p[key] for p, d in zip(pts, shift)]]
        ax.errorbar([p["kl"] for p in pts], y, yerr=yerr, capsize=2, **style)

    for ax, method in zip(axes.flat, arms):
        for c, ls in zip(results["curves"]["DPO"], ("-", "--", ":", "-.") * 4):
            draw(ax, c, color="grey", marker="o", ms=3, lw=1, ls=ls, alpha=0.8, label=f"DPO beta={c['beta']:g}")
        for c in results["curves"][method]:
            draw(ax, c, color="C3", marker="s", ms=4, lw=1.5, label=method)
        ax.plot([0], [sft["reward"]], "k*", ms=8, label="SFT")
        verdict = results["arms"][method]["verdicts"][kind]["verdict"]
        ax.set_title(f"{method}\n{kind}: {verdict}", fontsize=8.5)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(arms):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("KL(pi || pi_SFT), nats")
    for ax in axes[:, 0]:
        ax.set_ylabel(("length-adjusted " if adjusted else "") + "true reward")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    by_label = dict(zip(labels, handles))  # DPO's curves and the SFT star, by label (the arm's own differs by panel)
    keep = [f"DPO beta={c['beta']:g}" for c in results["curves"]["DPO"]] + ["SFT"]
    fig.legend([by_label[k] for k in keep] + [plt.Line2D([], [], color="C3", marker="s")], keep + ["the arm"],
               loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.03))
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
    paths = {"curves": figures_dir / f"10_family_curves_{p}.png",
             "curves_adjusted": figures_dir / f"10_family_curves_length_adjusted_{p}.png"}
    title = f"DPO's family against DPO's curves, {model}, n={n} test prompts"
    plot_family_curves(results, paths["curves"], title=title)
    plot_family_curves(results, paths["curves_adjusted"], adjusted=True,
                       title=f"the same, reward adjusted for reply length, {model}, n={n} test prompts")
    for fig in plt.get_fignums():
        plt.close(fig)
    return paths
