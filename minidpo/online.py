"""Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"): the pairs come from
the policy being trained, not from a fixed data set.

Each optimizer step: for every prompt of the batch, sample two replies from the *current* policy, let a
labeller (here a ground-truth reward) say which is better, and take a DPO step (eq. 7) on those pairs against
the frozen reference. Offline DPO learns from replies of the SFT model; as the policy moves away from it, those
replies say less about what the policy now writes (distribution shift). Online DPO always learns on-policy.

Ties (both replies scored equal) carry no preference: they are left out of the step and counted
(`pairs/ties`). The labelling budget is two reward calls per prompt, as for offline pairs made from two
samples of the SFT model.
"""

from __future__ import annotations

from typing import Callable

import torch

from .batching import collate_preferences
from .generate import generate_responses
from .loop import train_loop
from .train import DPOConfig, DPOStep
from .utils import derive_seed


class OnlineDPOStep:
    """Sample two replies per prompt from the policy, label them with `reward_fn(prompts, replies) -> (N,)`
    rewards, and compute `config.loss_type` on the labelled pairs against `ref_model`."""

    def __init__(self, config: DPOConfig, ref_model, tokenizer,
                 reward_fn: Callable[[list[str], list[str]], torch.Tensor], max_new_tokens: int = 64,
                 temperature: float = 1.0):
        self.dpo = DPOStep(config, ref_model)
        self.config, self.tokenizer, self.reward_fn = config, tokenizer, reward_fn
        self.max_new_tokens, self.temperature = max_new_tokens, temperature

    def label_pairs(self, model, batch: dict) -> list[dict]:
        """Two replies per prompt from `model`, the better one `chosen`; tied prompts dropped."""
        prompts, n = batch["prompt"], len(batch["prompt"])
        # the seed is drawn from torch's global generator, whose state the loop checkpoints: a resumed run
        # draws the same replies as an uninterrupted one
        seed = derive_seed(self.config.seed, "online", int(torch.randint(0, 2**31 - 1, ())))
        texts, ids = generate_responses(getattr(model, "module", model), self.tokenizer, prompts * 2,
                                        self.max_new_tokens, self.temperature, seed=seed, batch_size=2 * n,
                                        show_progress=False)
        rewards = self.reward_fn(prompts * 2, texts).view(2, n)
        pairs = []
        for i in range(n):
            if rewards[0, i] == rewards[1, i] or ids[i] == ids[n + i]:
                continue
            w, l = (i, n + i) if rewards[0, i] > rewards[1, i] else (n + i, i)
            pairs.append({"prompt_ids": batch["prompt_ids"][i], "chosen_ids": ids[w], "rejected_ids": ids[l],
                          "reward_gap": float(rewards.flatten()[w] - rewards.flatten()[l])})
        return pairs

    def __call__(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        pairs = self.label_pairs(model, batch)
        stats = {"pairs/labelled": float(len(batch["prompt"])), "pairs/ties": float(len(batch["prompt"]) - len(pairs))}
        if not pairs:  # every prompt tied: no preference, a zero loss that still touches the graph
            return sum(p.sum() for p in model.parameters()) * 0.0, {"loss": 0.0, **stats}
        mismatched = self.dpo.spec.needs_mismatched
        loss, metrics = self.dpo(model, collate_preferences(pairs, self.tokenizer.pad_token_id, mismatched=mismatched))
        return loss, {**metrics, **stats, "pairs/reward_gap": sum(p["reward_gap"] for p in pairs) / len(pairs)}


def train_online_dpo(model, ref_model, tokenizer, train_prompts, eval_prompts, config: DPOConfig,
                     reward_fn: Callable[[list[str], list[str]], torch.Tensor], max_new_tokens: int = 64,
                     resume: bool = True) -> list[dict]:
    """Online DPO on a `datasets.Dataset` of prompts (`record_id`, `prompt`, `prompt_ids`) in the shared loop
    (checkpoints and exact resume, the sampled replies included)."""
    step = OnlineDPOStep(config, ref_model, tokenizer, reward_fn, max_new_tokens)
    collate = lambda ex: {key: [e[key] for e in ex] for key in ("record_id", "prompt", "prompt_ids")}  # noqa: E731
    return train_loop(model, train_prompts, eval_prompts, config, step, collate, resume=resume, desc="online DPO")
