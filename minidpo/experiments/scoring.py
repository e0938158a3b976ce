"""Scoring a policy on the controlled-sentiment task (notebooks 08-10): its mean true reward with a bootstrap
interval and its sequence KL to the SFT model, both from one reply per held-out prompt sampled at temperature 1,
with the same seed for every policy (common random numbers: paired comparisons are sharper)."""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Callable

import torch

from ..batching import tokenize_prompts
from ..evaluate import bootstrap_ci, sampled_log_ratios
from ..rlhf import score_replies
from ..utils import derive_seed
from .measure import MemoryMonitor

if TYPE_CHECKING:
    from .frontier import Task


def evaluate_policy(task: Task, model, sft_model, split: str = "test", per_prompt: bool = False,
                    reward_model=None) -> dict:
    """Mean true reward (bootstrap 95% interval) and sequence KL(pi || pi_SFT) (mean and standard error) of
    one reply per held-out prompt of `split` sampled from `model` at temperature 1, plus reply length and
    examples; with `per_prompt`, each prompt's reward and log-ratio too (for paired comparisons). Every policy
    draws with the same seed on the same prompts (common random numbers: paired comparisons are sharper). With a
    `reward_model` (r_phi, calibrated), its score of each reply too (`rm_scores`): what the policy's own samples
    look like to the reward model, beside their true reward."""
    prompts = task.prompts(split)
    seed = (derive_seed(task.profile.seed, "evaluate") if split == "test"
            else derive_seed(task.profile.seed, "evaluate", split))
    texts, ids, logps = task.sample(model, prompts, seed=seed, return_logps=True)
    rewards = task.true_reward(prompts, texts)
    # the SFT model against itself: one computation on both sides, so its KL is exactly 0 (the sampler's log-probs
    # would differ from the teacher-forced ones by rounding)
    log_ratios = sampled_log_ratios(model, sft_model, task.tokenizer, prompts, ids, batch_size=16,
                                    policy_logps=None if model is sft_model else logps)
    lo, hi = bootstrap_ci(rewards, seed=task.profile.seed)
    n = len(prompts)
    rm = {}
    if reward_model is not None:
        scores = score_replies(reward_model, tokenize_prompts(task.tokenizer, prompts), ids, task.pad)
        rm = {"rm_score": float(scores.mean()), **({"rm_scores": scores.tolist()} if per_prompt else {})}
    return {
        "reward": float(rewards.mean()), "reward_ci": [lo, hi], "kl": float(log_ratios.mean()),
        "kl_se": float(log_ratios.std() / n**0.5) if n > 1 else 0.0, "n": n,
        "reply_tokens": sum(len(x) for x in ids) / n,
        "examples": [{"prompt": prompts[i], "reply": texts[i], "reward": float(rewards[i])} for i in range(min(3, n))],
        **({"rewards": rewards.tolist(), "log_ratios": log_ratios.tolist()} if per_prompt else {}), **rm,
    }


def trained_and_scored(task: Task, sft_model, train: Callable[[torch.nn.Module], list[dict]], per_prompt: bool = False,
                       **labels) -> dict:
    """Train a copy of the SFT model with `train(model) -> history`, then score it: the result of one run."""
    model = copy.deepcopy(sft_model)
    with MemoryMonitor() as mem:
        history = train(model)
    model.eval()
    t = time.time()
    scores = evaluate_policy(task, model, sft_model, per_prompt=per_prompt)
    return {**labels, **scores, "train": mem.as_dict(), "eval_seconds": time.time() - t, "history": history}
