"""The RLHF side of the frontier (notebook 08): the reward model fitted to the same pairs as DPO, PPO against it
(and PPO-GT against the true reward itself), and best-of-N against it."""

from __future__ import annotations

import copy
import time
from dataclasses import asdict

import torch

from ..batching import tokenize_prompts
from ..rlhf import PolicyWithValue, PPOConfig, RewardConfig, RewardModel, best_of_n_kl, score_replies, train_ppo, train_reward_model
from ..evaluate import bootstrap_ci
from ..utils import derive_seed, read_json, save_torch, write_json
from .frontier import Task, cached_run, evaluate_policy
from .runs import MemoryMonitor


def reward_model_stage(task: Task, sft_model, pairs: dict):
    """r_phi = the SFT model's trunk + a scalar head, trained with the Bradley-Terry loss on the same pairs.
    Returns (model, result) with its held-out pair accuracy (against the true-reward labels)."""
    folder = task.run_dir / "reward_model"
    weights, result_path = folder / "reward_model.pt", folder / "result.json"
    model = RewardModel(copy.deepcopy(sft_model))
    if weights.exists() and result_path.exists():
        model.load_state_dict(torch.load(weights))
        return model.to(task.profile.device).eval(), read_json(result_path)
    cfg = task.config(RewardConfig, "reward_model", **task.plan.reward_model)
    with MemoryMonitor() as mem:
        history = train_reward_model(model, pairs["train"], pairs["validation"], cfg, task.pad)
    evals = [h for h in history if "eval_accuracy" in h]
    result = {"held_out_accuracy": evals[-1]["eval_accuracy"], "held_out_loss": evals[-1]["eval_loss"],
              "n_validation_pairs": len(pairs["validation"]), "train": mem.as_dict(), "history": history, "config": asdict(cfg)}
    save_torch(weights, model.state_dict())
    write_json(result_path, result)
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    return model.eval(), result


def ppo_run(task: Task, sft_model, reward_model, kl_coef: float, ground_truth: bool = False) -> dict:
    """PPO from the SFT model against r_phi with per-token KL penalty `kl_coef` towards the SFT model; with
    `ground_truth`, against the true reward itself (the paper's PPO-GT, an upper reference for RLHF)."""
    name = f"ppo_gt_kl{kl_coef:g}" if ground_truth else f"ppo_kl{kl_coef:g}"

    def run():
        cfg = task.config(PPOConfig, name, kl_coef=kl_coef, max_new_tokens=task.plan.max_new_tokens, **task.plan.ppo)
        policy = PolicyWithValue(copy.deepcopy(sft_model)).to(task.profile.device)
        prompts = list(task.splits["pairs_train"]["prompt"])  # the prompts the pairs came from
        with MemoryMonitor() as mem:
            history = train_ppo(policy, sft_model, None if ground_truth else reward_model, task.tokenizer, prompts, cfg,
                                ground_truth=task.true_reward, reward_fn=task.true_reward if ground_truth else None)
        t = time.time()
        return {"method": "PPO-GT (true reward)" if ground_truth else "PPO", "kl_coef": kl_coef, **evaluate_policy(task, policy.lm, sft_model),
                "train": mem.as_dict(), "eval_seconds": time.time() - t, "history": history, "config": asdict(cfg)}

    return cached_run(task, name, run)


def best_of_n_stage(task: Task, sft_model, reward_model) -> dict:
    """Best-of-N: N replies per held-out prompt from the SFT model, keep the one r_phi scores highest. No
    training; its KL to the SFT model is at most log N - (N - 1)/N (`best_of_n_kl`), and it costs N samples per prompt."""
    def run():
        n_max = max(task.plan.best_of)
        prompts = task.test_prompts
        with MemoryMonitor() as mem:
            draws = [task.sample(sft_model, prompts, seed=derive_seed(task.profile.seed, "best_of_n", k)) for k in range(n_max)]
            pids = tokenize_prompts(task.tokenizer, prompts)
            rm = torch.stack([score_replies(reward_model, pids, ids, task.pad) for _, ids in draws], 1)  # (P, N)
            true = torch.stack([task.true_reward(prompts, texts) for texts, _ in draws], 1)
        rows = []
        for n in task.plan.best_of:
            pick = rm[:, :n].argmax(1)
            rewards = true[torch.arange(len(prompts)), pick]
            lo, hi = bootstrap_ci(rewards, seed=task.profile.seed)
            rows.append({"method": "Best-of-N", "n": n, "reward": float(rewards.mean()), "reward_ci": [lo, hi], "kl": best_of_n_kl(n),
                         "kl_se": 0.0, "n_prompts": len(prompts)})
        # how well the proxy tracks the truth on replies it did not train on (the SFT model's samples)
        corr = torch.corrcoef(torch.stack([rm.flatten(), true.flatten()]))[0, 1].item()
        return {"rows": rows, "sampling": mem.as_dict(), "reward_model_vs_true_correlation": corr, "n_samples": rm.numel()}

    return cached_run(task, "best_of_n", run)
