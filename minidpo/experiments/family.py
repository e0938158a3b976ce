"""DPO's family compared fairly (notebook 10, `python -m minidpo family`; profile from $MINIDPO_PROFILE, default "cpu").

On notebook 08's task and its cached stages (`runs/<profile>/frontier/`: the SFT model, the pairs, the test prompts
and DPO's curves, each beta at three seeds), every arm of `FamilyPlan.arms` -- length-normalised DPO, RPO, R-DPO,
SimPO, ORPO, KTO on the same pairs; online DPO on pairs drawn from the current policy; Plackett-Luce DPO on K
ranked SFT replies per prompt, and DPO on the best and worst of the same K -- is

1. tuned on validation: an arm with a `grid` trains once per value (one seed, `grid_checkpoint` epochs) and is
   scored on the validation prompts; the value with the highest reward - `selection_kl_coef` x KL is kept
   (`select_on_validation`);
2. trained with every seed of `FamilyPlan.seeds` and scored on the test prompts after each of `checkpoints`
   (epochs of the offline pairs as optimizer steps, the same steps for every arm): its own reward-KL curve;
3. compared with DPO's curves at matched KL by the frontier's rule (`frontier_verdicts`: readings at checkpoints
   inside the KL overlap, paired bootstrap over prompts with seeds within curves), with one Holm family over every
   arm's readings;
4. read with its reply length controlled: the true reward regressed on reply length over the SFT model's samples
   of the validation prompts (`length_regression_stage`), and each checkpoint's reward minus slope x (its mean reply
   length - the SFT model's); the arms that act on length (`length_adjusted_primary`) are judged on that.

The analysis plan (`PLAN`) is stored in the results. This module: the plan, the arms' runs, the grids and every stage
in order (`family_stages`); `family_length` the length control, `family_run` the verdicts and the results file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
from datasets import Dataset

from ..batching import tokenize_prompts
from ..loop import optimizer_steps
from ..losses import LOSSES
from ..online import train_online_dpo
from ..train import train_dpo, train_rankings
from ..utils import derive_seed
from .family_length import LengthRegression, length_regression_stage
from .frontier import Task, pairs_stage, prepare_task, reference_stage, sft_point, sft_stage
from .frontier_seeds import dpo_curve_run
from .frontier_verdicts import PLAN as FRONTIER_PLAN
from .profiles import FamilyArm, Profile
from .scoring import evaluate_policy

PLAN = {
    **{k: FRONTIER_PLAN[k] for k in ("max_out_of_range", "power_level", "level", "reading", "interval", "counted")},
    "known_biases": "a reading sets one curve's checkpoint against a straight line between the other curve's two "
                    "bracketing checkpoints; where that curve is concave the line lies under it, which favours the "
                    "curve supplying the checkpoint (each reading names its supplier in 'at'); two or three seeds per "
                    "curve make the seed resampling understate seed-to-seed variance",
    "primary_metric": "mean ground-truth reward per test prompt at matched sequence KL(pi || pi_SFT); for the arms "
                      "that act on reply length (length-normalised DPO, R-DPO) the length-adjusted reward",
    "comparisons": "DPO (its curves at each beta of the frontier, the frontier's seeds) against each arm (its curve at "
                   "the value chosen on validation, the family's seeds)",
    "curves": "DPO at each beta along its own checkpoints; each arm along its own checkpoints (the same optimizer "
              "steps for every arm); seeds averaged",
    "decision": "one Holm family at 95% over every counted reading of every arm's primary comparison, each p-value "
                "two-sided from the bootstrap replicates; per arm: 'DPO higher' if some reading is called higher and "
                "none lower, 'DPO lower' the reverse, 'mixed' if both, else 'no clear difference'; 'no overlap' when "
                "the arm's KL range misses DPO's, 'inconclusive' when readings exist but none counts. The secondary "
                "reading (raw or adjusted, whichever is not primary) is a second Holm family",
    "power": "per arm, the median over its counted readings of the difference detectable with 80% power at the "
             "family's first Holm threshold (1 - 0.95) / m",
    "length_control": "the true reward regressed (least squares) on reply length in tokens over the SFT model's "
                      "replies to the validation prompts; a checkpoint's adjusted reward is its reward minus slope x "
                      "(its seed's mean reply length there - the SFT model's mean on the test prompts); the adjustment "
                      "is one number per checkpoint and seed, so the bootstrap carries neither the slope's own error "
                      "nor "
                      "the sampling error of the mean length (per-prompt lengths are not stored)",
    "chosen_on_validation": "each arm's grid value: one seed trained to grid_checkpoint epochs, scored on the "
                            "validation prompts, the highest reward - selection_kl_coef x KL (the length-adjusted "
                            "reward for the arms judged on it); nothing is chosen on the test prompts",
    "n_boot": "10,000 replicates, or 10 / (Holm's first threshold) when a family could hold more readings than that "
              "resolves (a p-value must be able to reach (1 - 0.95) / m)",
    "changes": "made after the cpu run had started and before any test-prompt result was read: the grid of the arms "
               "judged on the length-adjusted reward (R-DPO) is chosen on the adjusted validation reward, not the raw "
               "one (a reviewer's point: otherwise the grid rewards the length its verdict removes); R-DPO's choice "
               "on the cpu run is the same under both rules",
}


def arm_steps(task: Task, n_pairs: int, epochs: float) -> int:
    """The optimizer steps of `epochs` over the offline pairs: every arm (online and ranking arms too) trains for
    these, so each sees as many prompts per checkpoint."""
    return optimizer_steps(epochs, n_pairs, task.plan.dpo.batch_size)


def arm_config(task: Task, arm: FamilyArm, value: float | None):
    """The arm's `DPOConfig`: the frontier's DPO settings with the arm's loss, beta, fixed fields and grid value."""
    loss_type = arm.loss_type if arm.loss_type in LOSSES else "sigmoid"
    return replace(task.plan.dpo, loss_type=loss_type, **arm.settings(value))


def arm_name(arm: FamilyArm, value: float | None, seed: int, split: str) -> str:
    """The stage name of one run of an arm: its loss (or pair source), fixed fields, grid value, seed and the split it
    is scored on."""
    fixed = "".join(f"_{k}{v:g}" for k, v in arm.fixed)
    grid = f"_{arm.grid[0]}{value:g}" if arm.grid else ""
    return (f"family_{arm.loss_type}_beta{arm.beta:g}{fixed}{grid}_seed{seed}"
            + ("_validation" if split == "validation" else ""))


# ----------------------------------------------------------------------------- the data of the ranking arms


def rankings_stage(task: Task, sft_model, k: int) -> dict:
    """`k` replies per pair prompt (train and validation) from the SFT model, ranked best first by the true reward; a
    prompt whose best and worst replies score the same is dropped and counted, and so are rankings with ties inside
    (whose tied stages the Plackett-Luce loss leaves out). The first draws use the frontier's pair seeds (with two draws
    per prompt, K = 2 would be the frontier's pairs, less the pairs of two identical replies it drops). Cached."""
    def sample() -> dict:
        out = {"records": {}, "stats": {}}
        for split, key in (("train", "pairs_train"), ("validation", "pairs_val")):
            prompts = list(task.splits[key]["prompt"])
            draws = [task.sample(sft_model, prompts, seed=derive_seed(task.profile.seed, "pairs", key, d))
                     for d in range(k)]
            rewards = torch.stack([task.true_reward(prompts, texts) for texts, _ in draws], 1)  # (P, k)
            records = []
            for i, prompt in enumerate(prompts):
                order = torch.argsort(rewards[i], descending=True, stable=True).tolist()
                if rewards[i, order[0]] == rewards[i, order[-1]]:
                    continue
                records.append({"prompt": prompt, "ranked_ids": [draws[d][1][i] for d in order],
                                "rewards": [float(rewards[i, d]) for d in order]})
            out["records"][split] = records
            out["stats"][split] = {"prompts": len(prompts), "rankings": len(records),
                                   "all_tied_dropped": len(prompts) - len(records),
                                   "rankings_with_inner_ties": sum(len(set(r["rewards"])) < k for r in records)}
        return out

    out = task.stage(f"rankings_k{k}", sample, {"k": k})
    for split, recs in out["records"].items():
        prompt_ids = tokenize_prompts(task.tokenizer, [r["prompt"] for r in recs]) if recs else []
        out[split] = Dataset.from_dict({"prompt_ids": prompt_ids, "ranked_ids": [r["ranked_ids"] for r in recs],
                                        "ranked_rewards": [r["rewards"] for r in recs]})  # ties: `strict` in the batch
        out[f"{split}_pairs"] = Dataset.from_dict({"prompt_ids": prompt_ids,
                                                   "chosen_ids": [r["ranked_ids"][0] for r in recs],
                                                   "rejected_ids": [r["ranked_ids"][-1] for r in recs]})
    return out


# ----------------------------------------------------------------------------- one arm's run


def arm_run(task: Task, sft_model, data: dict, arm: FamilyArm, value: float | None, seed: int, budgets: tuple,
            split: str = "test") -> dict:
    """One run of `arm` (grid value `value`, training seed `seed`) from the SFT model, stopped after each of `budgets`
    (epochs of the offline pairs, as optimizer steps) and scored on `split`'s prompts there."""
    config = arm_config(task, arm, value)
    n_pairs = len(data["ref"]["train"])
    steps = lambda epochs: arm_steps(task, n_pairs, epochs)  # noqa: E731
    model = copy.deepcopy(sft_model)
    ranked = data.get("rankings")

    def train(cfg) -> list[dict]:
        if arm.loss_type == "online":
            return train_online_dpo(model, sft_model, task.tokenizer, data["prompts"], None, cfg,
                                    lambda ps, rs: task.true_reward(ps, rs), task.plan.max_new_tokens)
        if arm.loss_type == "plackett_luce":
            return train_rankings(model, ranked["train"], ranked["validation"], cfg, task.pad, ref_model=sft_model)
        if arm.loss_type == "best_worst":
            return train_dpo(model, ranked["train_pairs"], ranked["validation_pairs"], cfg, task.pad,
                             ref_model=sft_model)
        ref_model = sft_model if LOSSES[arm.loss_type].needs_mismatched else None
        return train_dpo(model, data["ref"]["train"], data["ref"]["validation"], cfg, task.pad, ref_model=ref_model)

    def train_to(epochs: float, folder) -> list[dict]:
        return train(task.config(config, folder, seed=seed, max_steps=steps(epochs)))

    def score(epochs: float, history: list[dict]) -> dict:
        evals = [h for h in history if any(k.startswith("eval_") for k in h)]
        return {**evaluate_policy(task, model.eval(), sft_model, split, per_prompt=True), "steps": steps(epochs),
                "pairs_seen": steps(epochs) * config.batch_size, "eval": evals[-1] if evals else {}}

    key = {"task": task.key, "arm": arm.loss_type, "dpo": config, "seed": seed, "split": split,
           "steps": [steps(b) for b in budgets], **({"k": task.profile.family.ranking_k} if ranked else {})}
    points, history = task.run.phases(arm_name(arm, value, seed, split), key, budgets, train_to, score)
    return {"method": arm.method, "beta": config.beta, "value": value, "seed": seed, "budget_unit": "epochs",
            "points": points, "history": history}


# ----------------------------------------------------------------------------- choosing on validation


@dataclass(frozen=True)
class GridChoice:
    """An arm's grid on the validation prompts and the value the plan's rule chose."""

    parameter: str
    values: tuple[float, ...]
    validation_reward: tuple[float, ...]  # the reward the rule reads (length-adjusted for the arms judged on it)
    validation_kl: tuple[float, ...]
    objective: tuple[float, ...]  # reward - kl_coef x KL
    kl_coef: float
    chosen: float
    reward: str = "raw"  # or "length-adjusted"
    split: str = "validation"
    n_prompts: int = 0


def select_on_validation(parameter: str, values, rewards, kls, kl_coef: float, **where) -> GridChoice:
    """The plan's rule: the value with the highest validation reward - `kl_coef` x KL (eq. 3's objective at one
    exchange rate for every arm); the first such value on a tie. `where`: the GridChoice's reward, split, n_prompts."""
    objective = tuple(r - kl_coef * k for r, k in zip(rewards, kls))
    best = max(range(len(values)), key=lambda i: (objective[i], -i))
    return GridChoice(parameter, tuple(values), tuple(rewards), tuple(kls), objective, kl_coef, values[best], **where)


def tune_arm(task: Task, sft_model, data: dict, arm: FamilyArm, length: LengthRegression) -> GridChoice | None:
    """The arm's grid, one seed, each value scored on the validation prompts (the length-adjusted reward for an arm
    judged on it, against the SFT model's mean length there); None for an arm without a grid."""
    if arm.grid is None:
        return None
    fam = task.profile.family
    seed = derive_seed(task.profile.seed, "family grid")
    runs = [arm_run(task, sft_model, data, arm, v, seed, (fam.grid_checkpoint,), "validation") for v in arm.grid[1]]
    last = [r["points"][-1] for r in runs]
    slope = length.slope.estimate if arm.length_adjusted_primary else 0.0
    shift = lambda p: slope * (p["reply_tokens"] - length.mean_tokens)  # noqa: E731
    rewards, kls = [p["reward"] - shift(p) for p in last], [p["kl"] for p in last]
    return select_on_validation(arm.grid[0], arm.grid[1], rewards, kls, fam.selection_kl_coef,
                                reward="length-adjusted" if arm.length_adjusted_primary else "raw",
                                split="validation", n_prompts=last[0]["n"])


# ----------------------------------------------------------------------------- everything


def family_stages(profile: Profile, run_dir=None, show_progress: bool = True) -> dict:
    """Every stage of notebook 10 in the order they run, on the frontier's cached base (each cached)."""
    task = prepare_task(profile, run_dir, show_progress)  # the frontier's task and run folder
    fam, plan = profile.family, task.plan
    sft_model, _ = sft_stage(task)
    pairs = pairs_stage(task, sft_model)
    ref_data = reference_stage(task, sft_model, pairs)
    dpo = [dpo_curve_run(task, sft_model, ref_data, b, s) for b in plan.dpo_betas for s in plan.seeds]
    sft = sft_point(task, sft_model)
    length = length_regression_stage(task, sft_model, fam.length_draws)
    split = task.splits["pairs_train"]
    data = {"ref": ref_data,
            "prompts": Dataset.from_dict({"record_id": list(split["record_id"]), "prompt": list(split["prompt"]),
                                          "prompt_ids": tokenize_prompts(task.tokenizer, list(split["prompt"]))})}
    rankings = None
    if any(a.loss_type in ("plackett_luce", "best_worst") for a in fam.arms):
        rankings = rankings_stage(task, sft_model, fam.ranking_k)
    arms = {}
    for arm in fam.arms:
        if arm.loss_type in ("plackett_luce", "best_worst") and not len(rankings["train"]):
            continue  # a tiny random model (smoke) can tie on every prompt
        arm_data = {**data, "rankings": rankings} if arm.loss_type in ("plackett_luce", "best_worst") else data
        choice = tune_arm(task, sft_model, arm_data, arm, length)
        value = choice.chosen if choice else None
        runs = [arm_run(task, sft_model, arm_data, arm, value, s, fam.checkpoints) for s in fam.seeds]
        arms[arm.method] = {"arm": arm, "choice": choice, "runs": runs}
    return {"task": task, "pairs": pairs, "sft": sft, "dpo": dpo, "length": length,
            "rankings": rankings["stats"] if rankings else None, "arms": arms}
