"""Figures of notebook 08 (and the frontier plot notebook 09 reuses): the reward-KL curves, PPO's stability
diagnostics and learning curves, the reward model's learning curves and over-optimisation, the matched-KL readings."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from ..plots import finish_figure


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





_STYLE = {"DPO": ("C0", "o", "-"), "PPO": ("C3", "s", "--"), "PPO-GT": ("C2", "^", ":")}


def _knob_label(curve: dict) -> str:
    return f"{curve['method']}, {'beta' if curve['knob'] == 'beta' else 'kl_coef'}={curve[curve['knob']]:g}"


def plot_curves(results: dict, path: str | Path | None = None, title: str = ""):
    """The DPO paper's figure 2 (left) as curves: each method at each knob along its checkpoints (seed means, with
    95% intervals on the reward and each seed's reading as a small dot), the SFT model at KL 0, Preferred-FT and
    best-of-N as reference points."""
    fig, ax = plt.subplots(figsize=(7.4, 4.8))
    for method, curves in results["curves"].items():
        color, marker, ls = _STYLE.get(method, ("C7", "o", "-"))
        for i, curve in enumerate(curves):
            pts = curve["points"]
            alpha = 1.0 if i == 0 else 0.55
            ax.errorbar([p["kl"] for p in pts], [p["reward"] for p in pts],
                        yerr=[[p["reward"] - p["reward_ci"][0] for p in pts],
                              [p["reward_ci"][1] - p["reward"] for p in pts]],
                        color=color, marker=marker, ls=ls, ms=5 - i, lw=1.3, capsize=2, alpha=alpha,
                        label=f"{_knob_label(curve)} ({len(curve['seeds'])} seeds)")
            for p in pts:
                ax.plot(p["seed_kls"], p["seed_rewards"], ".", ms=3, color=color, alpha=0.35)
            last = pts[-1]
            ax.annotate(f"{last['budget']:g} {curve['budget_unit']}", (last["kl"], last["reward"]), fontsize=6,
                        xytext=(4, 3), textcoords="offset points", color=color)
    ref = results["reference_points"]
    ax.errorbar([0.0], [ref["SFT"]["reward"]], yerr=[[ref["SFT"]["reward"] - ref["SFT"]["reward_ci"][0]],
                [ref["SFT"]["reward_ci"][1] - ref["SFT"]["reward"]]], fmt="k*", ms=9, capsize=2, label="SFT")
    pft = ref["Preferred-FT"]
    ax.errorbar([pft["kl"]], [pft["reward"]], yerr=[[pft["reward"] - pft["reward_ci"][0]],
                [pft["reward_ci"][1] - pft["reward"]]], fmt="P", color="C4", ms=7, capsize=2,
                label="Preferred-FT (1 seed)")
    bon = ref["Best-of-N"]
    ax.plot([b["kl"] for b in bon], [b["reward"] for b in bon], "D-", color="C5", ms=4, lw=1,
            label="best-of-N on r_phi (KL bound)")
    for b in bon:
        ax.annotate(f"N={b['best_of']}", (b["kl"], b["reward"]), fontsize=6, xytext=(3, -9),
                    textcoords="offset points", color="C5")
    ax.set_xlabel("KL(pi || pi_SFT) per prompt, nats (estimated from samples)")
    ax.set_ylabel("mean ground-truth reward (test prompts)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return finish_figure(fig, path, title, ax)


def _ppo_groups(results: dict) -> dict[tuple, list[dict]]:
    """PPO's and PPO-GT's runs grouped by (method, kl_coef): the seeds of one curve."""
    groups: dict[tuple, list[dict]] = {}
    for run in results["runs"]:
        if run["method"] in ("PPO", "PPO-GT"):
            groups.setdefault((run["method"], run["kl_coef"]), []).append(run)
    return groups


def plot_ppo_diagnostics(results: dict, path: str | Path | None = None, title: str = ""):
    """PPO's stability per iteration: approxkl of the pilot's learning rates (with the stability threshold), then
    for the runs (mean over seeds, band from lowest to highest seed) approxkl, clip fraction, largest ratio,
    entropy per reply token and value loss."""
    threshold = results["ppo_stability"]["threshold"]
    fig, axes = plt.subplots(2, 3, figsize=(11.5, 6.2))
    ax = axes[0, 0]
    for r in results["ppo_pilot"]["runs"]:
        d = r["diagnostics"]["policy/approxkl_avg"]
        ax.plot(range(1, len(d) + 1), d, "o-", ms=3, label=f"lr {r['learning_rate']:g}"
                + (" (chosen)" if r["learning_rate"] == results["ppo_pilot"]["learning_rate"] else ""))
    ax.axhline(threshold, color="grey", ls="--", lw=1, label=f"stable below {threshold:g}")
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
