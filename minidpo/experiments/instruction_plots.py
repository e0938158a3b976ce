"""Figures of the instruction experiment, drawn from its results dictionary (`python -m minidpo figures`
redraws them from results/instruction_<profile>.json)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ..plots import finish_figure, plot_history

NAMES = {"base": "base", "reference": "reference (SFT on output)", "preferred_ft": "Preferred-FT (SFT on chosen)"}


def label(arm: str) -> str:
    return NAMES.get(arm, arm.replace("dpo_beta", "DPO beta="))


def plot_beta_frontier(results: dict, path: str | Path | None = None, title: str = ""):
    """Four instruments against the sampled KL to the reference: one point per DPO beta (joined), Preferred-FT
    and the base model beside them; 95% intervals where the instrument has one, +-1 s.e. on the KL."""
    rows = results["results"]
    panels = [("judge_vs_reference", "preference-judge win rate vs reference", 0.5),
              ("rude_rate", "rude-marker rate", None), ("fidelity", "content fidelity (cos to output)", None),
              ("mean_words", "mean words per reply", None)]
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 6.6))
    dpo = [f"dpo_beta{b:g}" for b in results["betas"]]

    def value(arm, key):
        v = rows[arm].get(key, 0.5 if key == "judge_vs_reference" else None)
        if isinstance(v, dict):
            m = v.get("rate", v.get("mean"))
            return m, (m - v["ci_low"], v["ci_high"] - m)
        return v, (0, 0)

    for ax, (key, name, parity) in zip(axes.flat, panels):
        for arms, style, lab in ((dpo, "o-", "DPO (beta grid)"), (["preferred_ft"], "s", "Preferred-FT"),
                                 (["base"], "^", "base"), (["reference"], "D", "reference")):
            xs = [rows[a]["kl"]["kl"] for a in arms]
            xe = [rows[a]["kl"]["se"] for a in arms]
            vals = [value(a, key) for a in arms]
            ys = [v[0] for v in vals]
            ye = [[v[1][0] for v in vals], [v[1][1] for v in vals]]
            ax.errorbar(xs, ys, xerr=xe, yerr=ye, fmt=style, ms=5, capsize=2, lw=1.2, label=lab)
        # labels alternate below/above: close points stay legible
        for i, (a, b) in enumerate(zip(dpo, results["betas"])):
            ax.annotate(f"beta={b:g}", (rows[a]["kl"]["kl"], value(a, key)[0]), fontsize=6.5,
                        xytext=(4, -10 if i % 2 else 5), textcoords="offset points")
        if parity is not None:
            ax.axhline(parity, color="grey", lw=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("KL(pi || pi_ref) per prompt, nats")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    return finish_figure(fig, path, title)


def plot_instrument_rates(results: dict, path: str | Path | None = None, title: str = ""):
    """Per arm: preference-judge win rate vs the reference (plain and length-controlled) and the Sentence-BERT
    similarity win rate against the data, each with its 95% interval."""
    rows = results["results"]
    arms = results["arms"]
    series = [("judge_vs_reference", "judge vs reference"), ("lc_vs_reference", "length-controlled, vs reference"),
              ("similarity_win_rate", "similarity to chosen vs rejected")]
    fig, ax = plt.subplots(figsize=(9.5, 3.8))
    width = 0.8 / len(series)
    for j, (key, name) in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for i, arm in enumerate(arms):
            v = rows[arm].get(key)
            if v is None:
                continue
            xs.append(i + (j - 1) * width)
            ys.append(v["rate"])
            lo.append(v["rate"] - v["ci_low"])
            hi.append(v["ci_high"] - v["rate"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=name)
    ax.set_xticks(range(len(arms)), [label(a) for a in arms], rotation=20, fontsize=8, ha="right")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("win rate")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left")
    return finish_figure(fig, path, title)


def plot_dpo_curves(results: dict, path: str | Path | None = None, title: str = ""):
    """Validation metrics of every DPO run against the optimizer step: reward accuracy, margin, and the
    chosen and rejected log-probs (likelihood displacement: both can fall while the margin grows)."""
    keys = ["eval_rewards/accuracies", "eval_rewards/margins", "eval_logps/chosen", "eval_logps/rejected"]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.0))
    for b in results["betas"]:
        hist = results["training"][f"dpo_beta{b:g}"]["history"]
        for ax, key in zip(axes, keys):
            pts = [(h["step"], h[key]) for h in hist if key in h]
            if pts:
                ax.plot(*zip(*pts), "o-", ms=3, label=f"beta={b:g}")
    for ax, key in zip(axes, keys):
        ax.set_title(key.replace("eval_", "validation "), fontsize=9)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return finish_figure(fig, path, title)


def figure_paths(figures_dir: str | Path, profile: str) -> dict[str, Path]:
    names = {"sft_loss": "05_sft_loss", "dpo_curves": "06_dpo_curves", "beta_frontier": "07_beta_frontier",
             "instrument_rates": "07_instrument_rates"}
    return {k: Path(figures_dir) / f"{v}_{profile}.png" for k, v in names.items()}


def instruction_figures(results: dict, figures_dir: str | Path = "figures") -> dict[str, Path]:
    """Draw every figure of the experiment; returns their paths."""
    paths = figure_paths(figures_dir, results["profile"])
    model = results["model"]
    fig = plot_history(results["training"]["reference"]["history"], ["loss"], None, "")
    ax = fig.axes[0]
    pft = results["training"]["preferred_ft"]["history"]
    ax.plot([h["step"] for h in pft if "loss" in h], [h["loss"] for h in pft if "loss" in h], lw=1,
            label="Preferred-FT train")
    ax.lines[0].set_label("reference train")
    if len(ax.lines) > 2:
        ax.lines[1].set_label("reference validation")
    ax.legend(fontsize=8)
    finish_figure(fig, paths["sft_loss"], f"SFT: reference on output, Preferred-FT on chosen ({model})")
    plt.close(fig)
    for key, fn, title in (
        ("dpo_curves", plot_dpo_curves, f"DPO from the reference ({model})"),
        ("beta_frontier", plot_beta_frontier, (f"what DPO changes, per beta, against KL "
                                               f"({model}, n={results['data']['split_sizes']['test']} test prompts)")),
        ("instrument_rates", plot_instrument_rates, f"win rates with 95% intervals ({model})"),
    ):
        plt.close(fn(results, paths[key], title))
    return paths
