"""Figures: training curves from a metrics history, and where figures are saved (`figures/`). The experiments' own
plots live beside them in `minidpo.experiments`."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt


def _save(fig, path: str | Path | None):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130, bbox_inches="tight")
    return fig


def finish_figure(fig, path: str | Path | None, title: str = "", ax=None):
    """Title (on `ax`, or over the whole figure), tight layout, save: the last lines of every plot."""
    if title:
        (ax.set_title if ax is not None else fig.suptitle)(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


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
    return finish_figure(fig, path, title)


def repository_root() -> Path | None:
    """The minidpo checkout at or above the working directory (notebooks run from notebooks/), if any."""
    here = Path.cwd().resolve()
    return next((d for d in (here, *here.parents) if (d / "minidpo").is_dir() and (d / "pyproject.toml").is_file()),
                None)


def figures_dir() -> Path:
    """`$MINIDPO_FIGURES_DIR`, else the repository's `figures/` when inside the repository, else ./figures."""
    import os

    if os.environ.get("MINIDPO_FIGURES_DIR"):
        return Path(os.environ["MINIDPO_FIGURES_DIR"])
    return (repository_root() or Path.cwd().resolve()) / "figures"


def save_figure(fig, name: str) -> Path:
    """Save `fig` as figures/<name>.png (for the report) and return the path."""
    path = figures_dir() / f"{name}.png"
    _save(fig, path)
    return path


BARS = {"capsize": 2, "elinewidth": 0.8}  # thin error bars, so crowded points' markers stay visible


def interval_err(pts: list[dict], key: str = "reward", ci: str = "reward_ci") -> list[list[float]]:
    """matplotlib's asymmetric `yerr` from each point's estimate `key` and its 95% interval `ci` = [low, high]."""
    return [[p[key] - p[ci][0] for p in pts], [p[ci][1] - p[key] for p in pts]]


def errorbar_points(ax, pts: list[dict], **kw):
    """Points at (KL, mean reward) with the reward's 95% interval (`reward_ci`) and +-1 standard error on the KL
    (`kl_se`; none where the KL is exact, as best-of-N's bound)."""
    return ax.errorbar([p["kl"] for p in pts], [p["reward"] for p in pts], yerr=interval_err(pts),
                       xerr=[p.get("kl_se") or 0.0 for p in pts], **BARS, **kw)
