"""Figures from metrics histories and win-rate results; each function saves a PNG and returns the figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt


def _save(fig, path: str | Path | None):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130, bbox_inches="tight")
    return fig


def plot_history(history: list[dict], keys: list[str], path: str | Path | None = None, title: str = ""):
    """One panel per metric: the training curve and, where logged, the validation points (`eval_<key>`)."""
    cols = min(len(keys), 3)
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, key in zip(axes.flat, keys):
        train = [(h["step"], h[key]) for h in history if key in h]
        evals = [(h["step"], h[f"eval_{key}"]) for h in history if f"eval_{key}" in h]
        if train:
            ax.plot(*zip(*train), lw=1, label="train")
        if evals:
            ax.plot(*zip(*evals), "o-", ms=4, label="validation")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_win_rates(win_rates: dict, head_to_head: dict | None = None, path: str | Path | None = None, title: str = ""):
    """Win rate against the data (closer to chosen than rejected) vs temperature, one line per model,
    with 95% bootstrap intervals; head-to-head rates dashed."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for name, by_temp in win_rates.items():
        temps = sorted(by_temp, key=float)
        rates = [by_temp[t]["rate"] for t in temps]
        err = [[by_temp[t]["rate"] - by_temp[t]["ci_low"] for t in temps], [by_temp[t]["ci_high"] - by_temp[t]["rate"] for t in temps]]
        ax.errorbar([float(t) for t in temps], rates, yerr=err, marker="o", capsize=3, label=f"{name} vs data")
    for name, by_temp in (head_to_head or {}).items():
        temps = sorted(by_temp, key=float)
        rates = [by_temp[t]["rate"] for t in temps]
        err = [[by_temp[t]["rate"] - by_temp[t]["ci_low"] for t in temps], [by_temp[t]["ci_high"] - by_temp[t]["rate"] for t in temps]]
        ax.errorbar([float(t) for t in temps], rates, yerr=err, fmt="k--", marker="s", capsize=3, label=name.replace("_", " "))
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_xlabel("sampling temperature")
    ax.set_ylabel("win rate (Sentence-BERT judge)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def figures_dir() -> Path:
    """`$MINIDPO_FIGURES_DIR`, else the nearest `figures/` folder at or above the working directory
    (notebooks run from notebooks/), else ./figures."""
    import os

    if os.environ.get("MINIDPO_FIGURES_DIR"):
        return Path(os.environ["MINIDPO_FIGURES_DIR"])
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "figures").is_dir() and (d / "minidpo").is_dir():
            return d / "figures"
    return here / "figures"


def save_figure(fig, name: str) -> Path:
    """Save `fig` as figures/<name>.png (for the report) and return the path."""
    path = figures_dir() / f"{name}.png"
    _save(fig, path)
    return path
