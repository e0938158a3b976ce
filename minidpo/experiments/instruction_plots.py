"""Figures of the instruction experiment, drawn from its results dictionary (`python -m minidpo figures`
redraws them from results/instruction_<profile>.json).

    05_reference     the reference's validation rude and polite rates at each SFT checkpoint (the bar it must reach)
    06_trajectories  DPO at each beta and Preferred-FT on validation, against the optimizer step: rates, KL to the
                     reference, log-ratios of the validation pairs' chosen and rejected replies
    07_matched_kl    the same rates against KL: each method along its own curve, the matched KL marked
    07_primary       every arm's test rude and polite rates with 95% intervals
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ..plots import finish_figure


def label(arm: str) -> str:
    names = {"base": "base", "reference": "reference (SFT on both replies)",
             "preferred_ft": "Preferred-FT (SFT on chosen)"}
    if arm in names:
        return names[arm]
    return (arm.replace("dpo_beta", "DPO beta=").replace("_lr", " lr=").replace("_seed", " seed ")
            .replace("preferred_ft", "Preferred-FT"))


def plot_reference(results: dict, path: str | Path | None = None, title: str = ""):
    ref = results["reference"]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    epochs = [p["epochs"] for p in ref["checkpoints"]]
    for key, name in (("rude_rate", "rude"), ("polite_rate", "polite")):
        ax.plot(epochs, [p[key] for p in ref["checkpoints"]], "o-", label=f"{name} rate (validation)")
    ax.axhline(results["plan"]["min_reference_rude_rate"], color="grey", ls=":", label="the bar for rude")
    ax.axvline(ref["selected_epochs"], color="k", lw=0.8, label="kept")
    ax.set_xlabel("SFT epochs on both replies")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return finish_figure(fig, path, title)


PANELS = (("rude_rate", "rude rate"), ("polite_rate", "polite rate"), ("kl", "KL to reference (nats)"),
          ("logratio/chosen", "log-ratio, chosen"), ("logratio/rejected", "log-ratio, rejected"))


def plot_trajectories(results: dict, path: str | Path | None = None, title: str = ""):
    """Every validation trajectory against the optimizer step (step 0 is the reference)."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.1 * len(PANELS), 3.0))
    for name, t in results["trajectories"].items():
        pts = t["points"]
        for ax, (key, ylabel) in zip(axes, PANELS):
            ax.plot([p["steps"] for p in pts], [p.get(key, float("nan")) for p in pts], "o-", ms=3, label=label(name))
            ax.set_ylabel(ylabel)
            ax.set_xlabel("optimizer step")
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return finish_figure(fig, path, title)


def plot_matched_kl(results: dict, path: str | Path | None = None, title: str = ""):
    """Rude and polite rates against KL, DPO (selected beta) and Preferred-FT each along its own validation curve,
    read on the second validation sample set (the matched-KL reading's replies); the matched KL dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (key, ylabel) in zip(axes, PANELS[:2]):
        for name, t in results["second_validation"].items():
            pts = t["points"]
            ax.plot([p["kl"] for p in pts], [p[key] for p in pts], "o-", ms=3, label=label(name))
        for m in results["matched_kl"]:
            if m["metric"] == ylabel and m["readable"]:
                ax.axvline(m["kl"], color="grey", ls="--", lw=0.8)
        ax.set_xlabel("KL(policy || reference), nats (validation)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return finish_figure(fig, path, title)


def plot_primary(results: dict, path: str | Path | None = None, title: str = ""):
    """Each arm's test rude and polite rates with their 95% bootstrap intervals over prompts."""
    arms = list(results["arms"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.45 * len(arms) + 1.4), sharey=True)
    for ax, key in zip(axes, ("rude_rate", "polite_rate")):
        for y, arm in enumerate(arms):
            i = results["arms"][arm][key]
            ax.errorbar(i["estimate"], y, xerr=[[i["estimate"] - i["low"]], [i["high"] - i["estimate"]]], fmt="o",
                        capsize=3)
        ax.set_xlabel(key.replace("_", " ") + " (test)")
        ax.grid(alpha=0.3)
    axes[0].set_yticks(range(len(arms)), [label(a) for a in arms], fontsize=8)
    return finish_figure(fig, path, title)


def figure_paths(figures_dir: str | Path, profile: str) -> dict[str, Path]:
    names = {"reference": "05_reference", "trajectories": "06_trajectories", "matched_kl": "07_matched_kl",
             "primary": "07_primary"}
    return {k: Path(figures_dir) / f"{v}_{profile}.png" for k, v in names.items()}


def instruction_figures(results: dict, figures_dir: str | Path = "figures") -> dict[str, Path]:
    """Draw every figure of the experiment; returns their paths."""
    paths = figure_paths(figures_dir, results["profile"])
    model, n = results["model"], results["data"]["split_sizes"]
    for key, fn, title in (
        ("reference", plot_reference, f"the reference: SFT on both replies ({model}, n={n['validation']} validation)"),
        ("trajectories", plot_trajectories, f"DPO and Preferred-FT from the reference, on validation ({model})"),
        ("matched_kl", plot_matched_kl, f"rates against KL, each method along its own curve ({model})"),
        ("primary", plot_primary, f"test rates with 95% intervals ({model}, n={n['test']} prompts)"),
    ):
        plt.close(fn(results, paths[key], title))
    return paths
