"""Seeds, budgets and verdicts for the frontier of notebook 08: every DPO and PPO point is several training runs
(`plan.seeds`), each stopped and scored at checkpoints on validation prompts (where a budget is chosen) and test
prompts (where it is reported); `seeded_points` turns a method's runs into its points, and `matched_kl_verdicts`
compares DPO with PPO and PPO-GT on the same prompts with paired bootstrap intervals."""

from __future__ import annotations

import copy
import time
from typing import Callable

import torch

from ..evaluate import bootstrap_ci, matched_kl_difference, paired_point_difference
from ..rlhf import PolicyWithValue, PPOConfig, train_ppo
from ..train import DPOConfig, train_dpo
from ..utils import read_json, write_json
from .frontier import Task, cached_run, evaluate_policy
from .runs import MemoryMonitor


def phased_run(task: Task, name: str, sft_model, budgets: tuple, train_to: Callable[[object], list[dict]],
               scored_model: Callable[[], torch.nn.Module]) -> tuple[list[dict], list[dict]]:
    """One training run stopped after each budget of `budgets` (epochs, iterations, ...) and scored there on the
    validation prompts (where a budget is chosen) and the test prompts (where it is reported), both per prompt.
    `train_to(budget) -> history` continues the run from its checkpoint. Scored budgets are kept in
    `points.json`, so an interrupted run redoes neither them nor the training before them. Returns (points, history)."""
    points_path = task.run_dir / name / "points.json"
    points = read_json(points_path) if points_path.exists() else []
    seconds, history = (points[-1]["train_seconds"] if points else 0.0), []
    for budget in budgets:
        if any(p["budget"] == budget for p in points):
            continue
        with MemoryMonitor() as mem:  # resumes from the previous phase's checkpoint: one continuous run
            history = train_to(budget)
        seconds += mem.seconds
        model = scored_model().eval()
        t = time.time()
        points.append({"budget": budget, "train_seconds": seconds, "peak_rss_gib": mem.peak_gib,
                       **{split: evaluate_policy(task, model, sft_model, split, per_prompt=True) for split in ("validation", "test")},
                       "eval_seconds": time.time() - t})
        write_json(points_path, points)
    if not history:  # every budget was scored before an interruption: the checkpoint still holds the history
        history = train_to(budgets[-1])
    return points, history


def dpo_seeded_run(task: Task, sft_model, ref_data: dict, beta: float, seed: int) -> dict:
    """DPO at `beta` with training seed `seed` (the order of the pairs), scored after each entry of
    `plan.dpo_checkpoints` epochs on validation and test prompts (`phased_run`)."""
    name = f"dpo_beta{beta:g}_seed{seed}"
    steps_per_epoch = -(-len(ref_data["train"]) // task.plan.dpo["batch_size"])
    steps = lambda epochs: max(1, round(epochs * steps_per_epoch))  # noqa: E731

    def run() -> dict:
        model = copy.deepcopy(sft_model)

        def train_to(epochs: float) -> list[dict]:
            cfg = task.config(DPOConfig, name, seed=seed, beta=beta, max_steps=steps(epochs), **task.plan.dpo)
            return train_dpo(model, ref_data["train"], ref_data["validation"], cfg, task.pad)

        points, history = phased_run(task, name, sft_model, task.plan.dpo_checkpoints, train_to, lambda: model)
        for p in points:  # the implicit reward's last held-out reading up to this budget
            evals = [h for h in history if "eval_loss" in h and h["step"] <= steps(p["budget"])]
            p["steps"], p["eval"] = steps(p["budget"]), (evals[-1] if evals else {})
        return {"method": "DPO", "beta": beta, "seed": seed, "budget_unit": "epochs", "points": points, "history": history}

    return cached_run(task, name, run)


def ppo_seeded_run(task: Task, sft_model, reward_model, kl_coef: float, seed: int, ground_truth: bool = False) -> dict:
    """PPO (or PPO-GT) at `kl_coef` with training seed `seed` (prompt order, rollouts), scored after each entry of
    `plan.ppo_checkpoints` iterations on validation and test prompts (`phased_run`). The learning curves are in
    its history: score maximised, true reward of the rollouts and KL per iteration."""
    name = f"{'ppo_gt' if ground_truth else 'ppo'}_kl{kl_coef:g}_seed{seed}"
    prompts = list(task.splits["pairs_train"]["prompt"])  # the prompts the pairs came from
    checkpoints = task.plan.ppo_checkpoints or (task.plan.ppo["iterations"],)
    ppo_fields = {k: v for k, v in task.plan.ppo.items() if k != "iterations"}

    def run() -> dict:
        policy = PolicyWithValue(copy.deepcopy(sft_model)).to(task.profile.device)

        def train_to(iterations: int) -> list[dict]:
            cfg = task.config(PPOConfig, name, seed=seed, kl_coef=kl_coef, max_new_tokens=task.plan.max_new_tokens, iterations=iterations,
                              **ppo_fields)
            return train_ppo(policy, sft_model, None if ground_truth else reward_model, task.tokenizer, prompts, cfg,
                             ground_truth=task.true_reward, reward_fn=task.true_reward if ground_truth else None)

        points, history = phased_run(task, name, sft_model, checkpoints, train_to, lambda: policy.lm)
        return {"method": "PPO-GT (true reward)" if ground_truth else "PPO", "kl_coef": kl_coef, "seed": seed,
                "budget_unit": "iterations", "points": points, "history": history}

    return cached_run(task, name, run)


def seeded_points(runs: list[dict], knob: str, seed: int = 0) -> list[dict]:
    """The runs of one method grouped by `knob` ("beta", "kl_coef") into one point each. The budget (epochs,
    iterations) is the checkpoint with the highest seed-mean true reward on the *validation* prompts; the point is
    what those checkpoints score on the *test* prompts: reward and KL averaged over seeds and prompts, a bootstrap
    interval over prompts of the seed-mean reward (`reward_ci`; the seeds' spread is `seed_rewards`, and
    `matched_kl_verdicts` resamples both), each seed's reading, and every checkpoint's seed means (the path)."""
    out = []
    for value in sorted({r[knob] for r in runs}):
        group = [r for r in runs if r[knob] == value]
        budgets = [p["budget"] for p in group[0]["points"]]
        if any([p["budget"] for p in r["points"]] != budgets for r in group):
            raise ValueError(f"{group[0]['method']} {knob}={value:g}: the seeds were scored at different budgets")
        validation = [sum(r["points"][i]["validation"]["reward"] for r in group) / len(group) for i in range(len(budgets))]
        best = max(range(len(budgets)), key=validation.__getitem__)
        tests = [r["points"][best]["test"] for r in group]
        rewards = torch.tensor([t["rewards"] for t in tests])
        ratios = torch.tensor([t["log_ratios"] for t in tests])
        lo, hi = bootstrap_ci(rewards.mean(0), seed=seed)
        accuracy = [r["points"][best].get("eval", {}).get("eval_rewards/accuracies") for r in group]
        out.append({
            "method": group[0]["method"], knob: value, "budget": budgets[best], "budget_unit": group[0]["budget_unit"],
            "seeds": [r["seed"] for r in group], "reward": rewards.mean().item(), "reward_ci": [lo, hi],
            "kl": ratios.mean().item(), "kl_se": (ratios.mean(0).std() / len(ratios[0]) ** 0.5).item(), "n": len(ratios[0]),
            "seed_rewards": [t["reward"] for t in tests], "seed_kls": [t["kl"] for t in tests],
            "reply_tokens": sum(t["reply_tokens"] for t in tests) / len(tests),
            **({"implicit_reward_accuracy": accuracy} if None not in accuracy else {}),
            "checkpoints": [{"budget": b, "validation_reward": validation[i],
                             "reward": sum(r["points"][i]["test"]["reward"] for r in group) / len(group),
                             "kl": sum(r["points"][i]["test"]["kl"] for r in group) / len(group)} for i, b in enumerate(budgets)],
            "rewards": rewards.tolist(), "log_ratios": ratios.tolist(),
        })
    return out


def matched_kl_verdicts(sft: dict, dpo: list[dict], others: dict[str, list[dict]], seed: int = 0,
                        max_out_of_range: float = 0.05) -> dict[str, dict]:
    """DPO against each other method, on the same test prompts with paired bootstrap intervals (prompts and seeds
    resampled; `evaluate.matched_kl_difference`, `evaluate.paired_point_difference`). Every difference is DPO
    minus the other.

    - Matched KL: DPO's frontier (the SFT point and its points, joined by straight lines) read at each of the
      other method's KLs, and the other's frontier read at each of DPO's KLs. A straight line lies below a concave
      frontier, so a reading under-credits the method whose line it is: a row counts as evidence only in the
      direction that bias cannot produce (DPO ahead where DPO's line is read, behind where the other's is), and
      only if at most `max_out_of_range` of its bootstrap replicates fell outside the line's KL range.
    - Dominance: each DPO point against each other point; one dominates when it has more reward *and* less KL,
      both intervals clear of zero, which needs no line at all.
    The verdict: "DPO higher" when some evidence favours DPO and none the other, "DPO lower" the reverse,
    "mixed" when both, else "no clear difference"."""
    def arm(p: dict) -> tuple:
        return p["rewards"], p["log_ratios"]

    def knob(p: dict) -> str:
        return next(f"{k}={p[k]:g}" for k in ("beta", "kl_coef") if k in p)

    def as_row(at: str, p: dict, d: dict | None, dpo_is_curve: bool) -> dict:
        if d is None:
            return {"at": at, "kl": p["kl"], "difference": None, "evidence": None}
        diff, lo, hi = (d["difference"], d["ci_low"], d["ci_high"]) if dpo_is_curve else (-d["difference"], -d["ci_high"], -d["ci_low"])
        curve, point = d["curve_reward_at_kl"], d["reward"]
        conclusive = d["out_of_range"] <= max_out_of_range * d["n_boot"]
        evidence = ("DPO" if dpo_is_curve and lo > 0 else "other" if not dpo_is_curve and hi < 0 else None) if conclusive else None
        return {"at": at, "kl": d["kl"], "line": "DPO" if dpo_is_curve else "other",
                "dpo_reward": curve if dpo_is_curve else point, "other_reward": point if dpo_is_curve else curve,
                "difference": diff, "ci_low": lo, "ci_high": hi, "n_prompts": d["n_prompts"], "seeds": d["seeds"],
                "out_of_range": d["out_of_range"], "n_boot": d["n_boot"], "conclusive": conclusive, "evidence": evidence}

    sft_arm = ([sft["rewards"]], [sft["log_ratios"]])
    out = {}
    for name, points in others.items():
        rows = [as_row(f"{name} {knob(p)}", p, matched_kl_difference([sft_arm, *map(arm, dpo)], arm(p), seed=seed), True) for p in points]
        rows += [as_row(f"DPO {knob(q)}", q, matched_kl_difference([sft_arm, *map(arm, points)], arm(q), seed=seed), False) for q in dpo]
        dominance = [{"dpo": knob(q), "other": knob(p), **paired_point_difference(arm(q), arm(p), seed=seed)} for q in dpo for p in points]
        for d in dominance:
            d["dominates"] = {"a": "DPO", "b": "other", None: None}[d["dominates"]]
        evidence = {r["evidence"] for r in rows} | {d["dominates"] for d in dominance}
        verdict = ("mixed" if {"DPO", "other"} <= evidence else "DPO higher" if "DPO" in evidence
                   else "DPO lower" if "other" in evidence else "no clear difference")
        out[name] = {"comparisons": rows, "dominance": dominance, "verdict": verdict}
    return out
