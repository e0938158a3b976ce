"""Figures from metrics histories and win-rate results; each function saves a PNG and returns the figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt


def _save(fig, path: str | Path | None):
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=130, bbox_inches="tight")
    return fig


def _finish(fig, path: str | Path | None, title: str = "", ax=None):
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
    return _finish(fig, path, title)


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
    return _finish(fig, path, title, ax)


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
    return _finish(fig, path, title)


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
    return _finish(fig, path, title)


def repository_root() -> Path | None:
    """The minidpo checkout at or above the working directory (notebooks run from notebooks/), if any."""
    here = Path.cwd().resolve()
    return next((d for d in (here, *here.parents) if (d / "minidpo").is_dir() and (d / "pyproject.toml").is_file()), None)


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
