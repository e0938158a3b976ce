"""The RLHF side of the frontier (notebook 08): the reward model fitted to the same pairs as DPO, PPO against it
(and PPO-GT against the true reward itself), and best-of-N against it."""

from __future__ import annotations

import copy

import torch

from ..batching import tokenize_prompts
from ..rlhf import RewardModel, best_of_n_kl, score_replies, train_reward_model
from ..evaluate import bootstrap_ci
from ..stats import wilson
from ..utils import derive_seed
from .frontier import Task
from .measure import MemoryMonitor
from .runs import model_codec


def reward_model_stage(task: Task, sft_model, pairs: dict, pooling: str = "last"):
    """r_phi = the SFT model's trunk + a scalar head (`RewardModel`'s `pooling`), trained with the Bradley-Terry
    loss on the same pairs in one pass. Returns (model, result): its held-out pair accuracy (against the
    true-reward labels) with a Wilson interval, its learning curve (held-out accuracy after each number of
    training pairs seen) and the correlation of its scores with the true reward on the held-out replies."""
    name = "reward_model" if pooling == "last" else f"reward_model_{pooling}"
    cfg = task.config(task.plan.reward_model, task.run.folder(name))

    def train():
        model = RewardModel(copy.deepcopy(sft_model), pooling=pooling)
        with MemoryMonitor() as mem:
            history = train_reward_model(model, pairs["train"], pairs["validation"], cfg, task.pad)
        evals = [h for h in history if "eval_accuracy" in h]
        # the learning curve: held-out accuracy after each number of training pairs seen (one pass: each pair once)
        curve = [{"pairs_seen": min(h["step"] * cfg.batch_size, len(pairs["train"])), "accuracy": h["eval_accuracy"],
                  "loss": h["eval_loss"]} for h in evals]
        # and how well r_phi tracks the true reward on the held-out pairs' replies themselves (not just their order)
        val = pairs["records"]["validation"]
        pids = tokenize_prompts(task.tokenizer, [r["prompt"] for r in val])
        scores = torch.cat([score_replies(model, pids, [r[k] for r in val], task.pad)
                            for k in ("chosen_ids", "rejected_ids")])
        true = torch.tensor([r[k] for k in ("chosen_reward", "rejected_reward") for r in val])
        accuracy = wilson(evals[-1]["eval_accuracy"] * len(val), len(val))
        return model.eval(), {
            "pooling": pooling, "held_out_accuracy": evals[-1]["eval_accuracy"],
            "held_out_loss": evals[-1]["eval_loss"], "held_out_accuracy_ci": [accuracy.low, accuracy.high],
            "held_out_correlation": torch.corrcoef(torch.stack([scores, true]))[0, 1].item(),
            "n_train_pairs": len(pairs["train"]), "n_validation_pairs": len(pairs["validation"]),
            "learning_curve": curve, "train": mem.as_dict(), "history": history, "config": cfg}

    wrap = lambda: RewardModel(copy.deepcopy(sft_model), pooling=pooling)  # noqa: E731
    return task.stage(name, train, {"reward_model": task.plan.reward_model, "pooling": pooling},
                      model_codec(task.tokenizer, task.profile.device, wrap=wrap))


def reward_models_stage(task: Task, sft_model, pairs: dict) -> tuple[dict[str, tuple], str]:
    """A reward model per readout of `plan.reward_poolings` ({pooling: (model, result)}), and the readout RLHF
    uses: the best held-out (validation) pair accuracy, ties to the plan's order."""
    models = {pooling: reward_model_stage(task, sft_model, pairs, pooling) for pooling in task.plan.reward_poolings}
    return models, max(task.plan.reward_poolings, key=lambda k: models[k][1]["held_out_accuracy"])


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


def best_of_n_stage(task: Task, sft_model, reward_models: dict[str, RewardModel], use: str) -> dict:
    """Best-of-N: N replies per held-out prompt from the SFT model, keep the one r_phi (`reward_models[use]`) scores
    highest. No training; its KL to the SFT model is at most log N - (N - 1)/N (`best_of_n_kl`), and it costs N
    samples per prompt. The same draws test every reward model on prompts and replies none of them trained on:
    correlation with the true reward, and pair accuracy over every two replies to a prompt that the truth ranks."""
    def run():
        n_max = max(task.plan.best_of)
        prompts = task.prompts("test")
        with MemoryMonitor() as mem:
            draws = [task.sample(sft_model, prompts, seed=derive_seed(task.profile.seed, "best_of_n", k))
                     for k in range(n_max)]
            pids = tokenize_prompts(task.tokenizer, prompts)
            scores = {name: torch.stack([score_replies(m, pids, ids, task.pad) for _, ids in draws], 1)
                      for name, m in reward_models.items()}
            true = torch.stack([task.true_reward(prompts, texts) for texts, _ in draws], 1)  # (P, N)
        rm = scores[use]
        rows = []
        for n in task.plan.best_of:
            pick = rm[:, :n].argmax(1)
            rewards = true[torch.arange(len(prompts)), pick]
            lo, hi = bootstrap_ci(rewards, seed=task.profile.seed)
            rows.append({"method": "Best-of-N", "best_of": n, "reward": float(rewards.mean()), "reward_ci": [lo, hi],
                         "kl": best_of_n_kl(n), "kl_se": 0.0, "n": len(prompts), "rewards": rewards.tolist()})
        checks = {}
        for name, sc in scores.items():
            accuracy, n_pairs = pair_accuracy(sc, true)
            checks[name] = {"test_correlation":
                            torch.corrcoef(torch.stack([sc.flatten(), true.flatten()]))[0, 1].item(),
                            "test_pair_accuracy": accuracy, "test_pairs": n_pairs}
        return {"rows": rows, "sampling": mem.as_dict(), "reward_model": use, "reward_models": checks,
                "reward_model_vs_true_correlation": checks[use]["test_correlation"], "n_samples": rm.numel()}

    key = {"reward_model": task.plan.reward_model, "poolings": list(reward_models), "use": use,
           "best_of": task.plan.best_of}
    return task.stage("best_of_n", run, key)
