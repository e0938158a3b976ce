"""The RLHF side of the frontier (notebook 08): the reward model fitted to the same pairs as DPO (its learning rate and
epochs chosen on the validation pairs, its scores calibrated to the true reward's scale), and best-of-N against it.
PPO's pilot and runs are in `frontier_seeds`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch

from ..batching import tokenize_prompts
from ..evaluate import bootstrap_ci
from ..loop import optimizer_steps
from ..preference import bradley_terry_nll
from ..rlhf import CalibratedReward, RewardModel, best_of_n_kl, calibration, score_replies, train_reward_model
from ..stats import wilson
from ..utils import derive_seed
from .frontier import Task
from .measure import MemoryMonitor
from .runs import model_codec


@dataclass(frozen=True)
class RewardModelCandidate:
    """One reward-model run (a learning rate) read after some epochs, on the validation pairs."""

    learning_rate: float
    epochs: float
    validation_accuracy: float
    validation_loss: float

    @property
    def name(self) -> str:
        return reward_model_run_name(self.learning_rate)


def reward_model_run_name(learning_rate: float) -> str:
    """The stage name of the reward-model run at `learning_rate`."""
    return f"reward_model_lr{learning_rate:g}"


def select_reward_model(candidates: list[RewardModelCandidate]) -> RewardModelCandidate:
    """The plan's rule: the highest validation pair accuracy; ties go to the lower validation Bradley-Terry loss, then
    to fewer epochs. Only validation numbers enter (the test prompts are never read here)."""
    return max(candidates, key=lambda c: (c.validation_accuracy, -c.validation_loss, -c.epochs))


def _pair_scores(task: Task, model, records: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """r_phi of every record's chosen and rejected reply, scored as sampled (token ids)."""
    pids = tokenize_prompts(task.tokenizer, [r["prompt"] for r in records])
    return tuple(score_replies(model, pids, [r[k] for r in records], task.pad) for k in ("chosen_ids", "rejected_ids"))


def reward_model_runs(task: Task, sft_model, pairs: dict) -> list[dict]:
    """r_phi = the SFT model's trunk + a scalar head (`plan.reward_pooling`), trained with the Bradley-Terry loss on
    the same pairs as DPO, once per learning rate of `plan.reward_model_lrs`, each read after every entry of
    `plan.reward_model_epochs` (`Run.phases`, weights kept): validation pair accuracy (against the true reward's
    labels) with its Wilson interval, loss, and correlation with the true reward on the validation replies. The
    learning curve over pairs and epochs is each run's evaluation history."""
    plan = task.plan
    lrs = plan.reward_model_lrs or (plan.reward_model.learning_rate,)
    val = pairs["records"]["validation"]
    true = torch.tensor([r[k] for k in ("chosen_reward", "rejected_reward") for r in val])
    runs = []
    for lr in lrs:
        config = replace(plan.reward_model, learning_rate=lr)
        name = reward_model_run_name(lr)
        model = RewardModel(copy.deepcopy(sft_model), pooling=plan.reward_pooling)
        steps = lambda epochs: optimizer_steps(epochs, len(pairs["train"]), config.batch_size)  # noqa: E731

        def train_to(epochs: float, folder, config=config, model=model, steps=steps) -> list[dict]:
            cfg = task.config(config, folder, max_steps=steps(epochs))
            return train_reward_model(model, pairs["train"], pairs["validation"], cfg, task.pad)

        def score(epochs: float, history: list[dict], model=model, steps=steps) -> dict:
            model.eval()
            chosen, rejected = _pair_scores(task, model, val)
            correct = float((chosen > rejected).sum() + 0.5 * (chosen == rejected).sum())
            ci = wilson(correct, len(val))
            return {"learning_rate": lr, "epochs": epochs, "steps": steps(epochs), "pairs_seen": steps(epochs) *
                    config.batch_size, "validation_accuracy": ci.estimate, "validation_accuracy_ci": [ci.low, ci.high],
                    "validation_loss": bradley_terry_nll(chosen, rejected).item(),
                    "validation_correlation": torch.corrcoef(torch.stack([torch.cat([chosen, rejected]), true]))
                    [0, 1].item(), "n_validation_pairs": len(val)}

        wrap = lambda: RewardModel(copy.deepcopy(sft_model), pooling=plan.reward_pooling)  # noqa: E731
        key = {"task": task.key, "reward_model": config, "pooling": plan.reward_pooling}
        points, history = task.run.phases(name, key, plan.reward_model_epochs, train_to, score,
                                          keep=(model, model_codec(task.tokenizer, task.profile.device, wrap=wrap)))
        curve = [{"step": h["step"], "pairs_seen": h["step"] * config.batch_size,
                  "epochs": h["step"] * config.batch_size / len(pairs["train"]), "accuracy": h["eval_accuracy"],
                  "loss": h["eval_loss"]} for h in history if "eval_accuracy" in h]
        runs.append({"learning_rate": lr, "name": name, "points": points, "learning_curve": curve, "config": config})
    return runs


def chosen_reward_model(task: Task, sft_model, pairs: dict, runs: list[dict]) -> tuple[CalibratedReward, dict]:
    """The reward model PPO and best-of-N use: the run and epoch `select_reward_model` picks on the validation pairs,
    read through the affine `calibration` that gives its scores the true reward's mean and standard deviation on
    SFT samples (the replies of the validation pairs, which no reward model trained on). Returns (model, record)."""
    candidates = [RewardModelCandidate(r["learning_rate"], p["epochs"], p["validation_accuracy"], p["validation_loss"])
                  for r in runs for p in r["points"]]
    best = select_reward_model(candidates)
    wrap = lambda: RewardModel(copy.deepcopy(sft_model), pooling=task.plan.reward_pooling)  # noqa: E731
    model = task.run.phase_model(best.name, best.epochs, model_codec(task.tokenizer, task.profile.device, wrap=wrap))
    val = pairs["records"]["validation"]
    scores = torch.cat(_pair_scores(task, model, val))
    true = torch.tensor([r[k] for k in ("chosen_reward", "rejected_reward") for r in val])
    scale, shift = calibration(scores, true)
    point = next(p for r in runs for p in r["points"]
                 if r["learning_rate"] == best.learning_rate and p["epochs"] == best.epochs)
    record = {"learning_rate": best.learning_rate, "epochs": best.epochs, "pooling": task.plan.reward_pooling,
              "validation_accuracy": point["validation_accuracy"], "validation_accuracy_ci":
              point["validation_accuracy_ci"], "validation_loss": point["validation_loss"],
              "validation_correlation": point["validation_correlation"], "n_validation_pairs": len(val),
              "n_train_pairs": len(pairs["records"]["train"]),
              "calibration": {"scale": scale, "shift": shift, "replies": len(true),
                              "on": "the SFT replies of the validation pairs",
                              "true_mean": true.mean().item(), "true_sd": true.std().item()},
              "rule": "highest validation pair accuracy; ties to the lower validation loss, then fewer epochs"}
    return CalibratedReward(model, scale, shift).eval(), record


def reward_model_key(task: Task, runs: list[dict], record: dict) -> dict:
    """What every stage that reads the chosen, calibrated reward model is keyed by: the runs tried, the choice and
    how it is calibrated (a changed reward model recomputes PPO, best-of-N and the SFT point's scores). The
    calibration's two floats are not in the key: they follow from the rest, and another CPU's last-bit rounding
    of them must not retrain PPO."""
    return {"runs": [r["config"] for r in runs], "epochs": task.plan.reward_model_epochs,
            "pooling": task.plan.reward_pooling, "chosen": [record["learning_rate"], record["epochs"]],
            "calibration": record["calibration"]["on"]}


def pair_accuracy(scores: torch.Tensor, true: torch.Tensor) -> tuple[float, int]:
    """How often `scores` order two replies to the same prompt as the true reward does, over every pair of a row's
    replies whose true rewards differ (a tie in `scores` counts half): (accuracy, number of pairs). Rows are
    prompts, columns replies."""
    i, j = torch.triu_indices(true.shape[1], true.shape[1], offset=1)
    dt, ds = true[:, i] - true[:, j], scores[:, i] - scores[:, j]
    keep = dt != 0
    agree = (torch.sign(ds) == torch.sign(dt)).float() + 0.5 * (ds == 0).float()
    n = int(keep.sum())
    return (float(agree[keep].mean()) if n else float("nan")), n


def best_of_n_stage(task: Task, sft_model, reward_model, reward_key: dict) -> dict:
    """Best-of-N: N replies per held-out prompt from the SFT model, keep the one r_phi scores highest. No training;
    its KL to the SFT model is at most log N - (N - 1)/N (`best_of_n_kl`), and it costs N samples per prompt. The
    same draws test the reward model on prompts and replies it never trained on: correlation with the true reward,
    and pair accuracy over every two replies to a prompt that the truth ranks."""
    def run():
        n_max = max(task.plan.best_of)
        prompts = task.prompts("test")
        with MemoryMonitor() as mem:
            draws = [task.sample(sft_model, prompts, seed=derive_seed(task.profile.seed, "best_of_n", k))
                     for k in range(n_max)]
            pids = tokenize_prompts(task.tokenizer, prompts)
            rm = torch.stack([score_replies(reward_model, pids, ids, task.pad) for _, ids in draws], 1)
            true = torch.stack([task.true_reward(prompts, texts) for texts, _ in draws], 1)  # (P, N)
        rows = []
        for n in task.plan.best_of:
            pick = rm[:, :n].argmax(1)
            rewards = true[torch.arange(len(prompts)), pick]
            lo, hi = bootstrap_ci(rewards, seed=task.profile.seed)
            rows.append({"method": "Best-of-N", "best_of": n, "reward": float(rewards.mean()), "reward_ci": [lo, hi],
                         "kl": best_of_n_kl(n), "kl_se": 0.0, "n": len(prompts), "rewards": rewards.tolist(),
                         "policy_samples": n * len(prompts)})
        accuracy, n_pairs = pair_accuracy(rm, true)
        return {"rows": rows, "sampling": mem.as_dict(), "n_samples": rm.numel(),
                "test_correlation": torch.corrcoef(torch.stack([rm.flatten(), true.flatten()]))[0, 1].item(),
                "test_pair_accuracy": accuracy, "test_pairs": n_pairs}

    return task.stage("best_of_n", run, {"reward_model": reward_key, "best_of": task.plan.best_of})
