"""Seeds, budgets and verdicts for the frontier of notebook 08: every DPO and PPO point is several training runs
(`plan.seeds`), each stopped and scored at checkpoints on validation prompts (where a budget is chosen) and test
prompts (where it is reported); `seeded_points` turns a method's runs into its points, and `matched_kl_verdicts`
compares DPO with PPO and PPO-GT on the same prompts with paired bootstrap intervals."""

from __future__ import annotations

import copy
from dataclasses import replace

import torch

from ..evaluate import bootstrap_ci, matched_kl_difference, paired_point_difference
from ..rlhf import PolicyWithValue, train_ppo
from ..loop import optimizer_steps
from ..stats import Verdict, combine
from ..train import train_dpo
from .frontier import Task
from .scoring import evaluate_policy


def _score_both(task: Task, model, sft_model) -> dict:
    """A checkpoint scored on the validation prompts (where a budget is chosen) and the test prompts (where it is
    reported), both per prompt."""
    model.eval()
    return {split: evaluate_policy(task, model, sft_model, split, per_prompt=True) for split in ("validation", "test")}


def dpo_seeded_run(task: Task, sft_model, ref_data: dict, beta: float, seed: int) -> dict:
    """DPO at `beta` with training seed `seed` (the order of the pairs), scored after each entry of
    `plan.dpo_checkpoints` epochs on validation and test prompts (`Run.phases`)."""
    name = f"dpo_beta{beta:g}_seed{seed}"
    config = replace(task.plan.dpo, beta=beta)
    steps = lambda epochs: optimizer_steps(epochs, len(ref_data["train"]), config.batch_size)  # noqa: E731
    model = copy.deepcopy(sft_model)

    def train_to(epochs: float, folder) -> list[dict]:
        cfg = task.config(config, folder, seed=seed, max_steps=steps(epochs))
        return train_dpo(model, ref_data["train"], ref_data["validation"], cfg, task.pad)

    def score(epochs: float, history: list[dict]) -> dict:
        evals = [h for h in history if "eval_loss" in h]  # the implicit reward's last held-out reading
        return {**_score_both(task, model, sft_model), "steps": steps(epochs), "eval": evals[-1] if evals else {}}

    points, history = task.run.phases(name, {"task": task.key, "dpo": config, "seed": seed}, task.plan.dpo_checkpoints,
                                      train_to, score)
    return {"method": "DPO", "beta": beta, "seed": seed, "budget_unit": "epochs", "points": points, "history": history}


def ppo_seeded_run(task: Task, sft_model, reward_model, kl_coef: float, seed: int, ground_truth: bool = False) -> dict:
    """PPO (or PPO-GT) at `kl_coef` with training seed `seed` (prompt order, rollouts), scored after each entry of
    `plan.ppo_checkpoints` iterations on validation and test prompts (`Run.phases`). PPO maximises the reward
    model's score (the plan's reward model with its readout), PPO-GT the true reward itself; the learning
    curves are in its history: score maximised, true reward of the rollouts and KL per iteration."""
    name = f"{'ppo_gt' if ground_truth else 'ppo'}_kl{kl_coef:g}_seed{seed}"
    prompts = list(task.splits["pairs_train"]["prompt"])  # the prompts the pairs came from
    checkpoints = task.plan.ppo_checkpoints or (task.plan.ppo.iterations,)
    config = replace(task.plan.ppo, kl_coef=kl_coef, max_new_tokens=task.plan.max_new_tokens)
    policy = PolicyWithValue(copy.deepcopy(sft_model)).to(task.profile.device)

    def train_to(iterations: int, folder) -> list[dict]:
        cfg = task.config(config, folder, seed=seed, iterations=iterations)
        return train_ppo(policy, sft_model, task.true_reward if ground_truth else reward_model, task.tokenizer, prompts,
                         cfg, ground_truth=task.true_reward)

    reward_key = {"reward_model": task.plan.reward_model, "pooling": getattr(reward_model, "pooling", None)}
    key = {"task": task.key, "ppo": config, "seed": seed, "reward": "ground truth" if ground_truth else reward_key}
    points, history = task.run.phases(name, key, checkpoints, train_to,
                                      lambda budget, history: _score_both(task, policy.lm, sft_model))
    return {"method": "PPO-GT (true reward)" if ground_truth else "PPO", "kl_coef": kl_coef, "seed": seed,
            "budget_unit": "iterations", "points": points, "history": history}


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
        validation = [sum(r["points"][i]["validation"]["reward"] for r in group) / len(group)
                      for i in range(len(budgets))]
        best = max(range(len(budgets)), key=validation.__getitem__)
        tests = [r["points"][best]["test"] for r in group]
        rewards = torch.tensor([t["rewards"] for t in tests])
        ratios = torch.tensor([t["log_ratios"] for t in tests])
        lo, hi = bootstrap_ci(rewards.mean(0), seed=seed)
        accuracy = [r["points"][best].get("eval", {}).get("eval_rewards/accuracies") for r in group]
        out.append({
            "method": group[0]["method"], knob: value, "budget": budgets[best], "budget_unit": group[0]["budget_unit"],
            "seeds": [r["seed"] for r in group], "reward": rewards.mean().item(), "reward_ci": [lo, hi],
            "kl": ratios.mean().item(), "kl_se": (ratios.mean(0).std() / len(ratios[0]) ** 0.5).item(),
            "n": len(ratios[0]), "seed_rewards": [t["reward"] for t in tests], "seed_kls": [t["kl"] for t in tests],
            "reply_tokens": sum(t["reply_tokens"] for t in tests) / len(tests),
            **({"implicit_reward_accuracy": accuracy} if None not in accuracy else {}),
            "checkpoints": [{"budget": b, "validation_reward": validation[i],
                             "reward": sum(r["points"][i]["test"]["reward"] for r in group) / len(group),
                             "kl": sum(r["points"][i]["test"]["kl"] for r in group) / len(group)}
                            for i, b in enumerate(budgets)],
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
        diff, lo, hi = ((d["difference"], d["ci_low"], d["ci_high"]) if dpo_is_curve
                        else (-d["difference"], -d["ci_high"], -d["ci_low"]))
        curve, point = d["curve_reward_at_kl"], d["reward"]
        conclusive = d["out_of_range"] <= max_out_of_range * d["n_boot"]
        evidence = (("DPO" if dpo_is_curve and lo > 0 else "other" if not dpo_is_curve and hi < 0 else None)
                    if conclusive else None)
        return {"at": at, "kl": d["kl"], "line": "DPO" if dpo_is_curve else "other",
                "dpo_reward": curve if dpo_is_curve else point, "other_reward": point if dpo_is_curve else curve,
                "difference": diff, "ci_low": lo, "ci_high": hi, "n_prompts": d["n_prompts"], "seeds": d["seeds"],
                "out_of_range": d["out_of_range"], "n_boot": d["n_boot"], "conclusive": conclusive,
                "evidence": evidence}

    sft_arm = ([sft["rewards"]], [sft["log_ratios"]])
    out = {}
    for name, points in others.items():
        rows = [as_row(f"{name} {knob(p)}", p, matched_kl_difference([sft_arm, *map(arm, dpo)], arm(p), seed=seed),
                       True) for p in points]
        rows += [as_row(f"DPO {knob(q)}", q, matched_kl_difference([sft_arm, *map(arm, points)], arm(q), seed=seed),
                        False) for q in dpo]
        dominance = [{"dpo": knob(q), "other": knob(p), **paired_point_difference(arm(q), arm(p), seed=seed)}
                     for q in dpo for p in points]
        for d in dominance:
            d["dominates"] = {"a": "DPO", "b": "other", None: None}[d["dominates"]]
        evidence = [r["evidence"] for r in rows] + [d["dominates"] for d in dominance]
        out[name] = {"comparisons": rows, "dominance": dominance, "verdict": evidence_verdict(evidence)}
    return out


def evidence_verdict(evidence: list[str | None]) -> str:
    """The frontier's verdict from its readings, each "DPO" (evidence DPO's reward is higher), "other" (lower) or
    None: `stats.combine` of the directions, said with DPO as the subject ("DPO higher", "DPO lower", "mixed",
    "no clear difference")."""
    v = combine(Verdict.HIGHER if e == "DPO" else Verdict.LOWER if e == "other" else Verdict.NO_CLEAR_DIFFERENCE
                for e in evidence)
    return f"DPO {v.value}" if v in (Verdict.HIGHER, Verdict.LOWER) else v.value
