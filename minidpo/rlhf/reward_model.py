"""The reward model of RLHF on the policy's trunk, fitted to preference pairs with the Bradley-Terry loss (DPO eq. 2):

    L(phi) = -E log sigma(r_phi(x, y_w) - r_phi(x, y_l))

Two readouts of the hidden states h_t of prompt + reply (`pooling`):
    "last":  r_phi(x, y) = w . h_T + b                the last real token's state (the usual RLHF reward model)
    "sum":   r_phi(x, y) = sum_t (w . h_t + b)        a score per token, summed over every real token
With "sum" the prompt's tokens add the same amount to both replies of a pair (a causal model's prompt states do
not see the reply), so only the reply's tokens decide a comparison: the shape of a lexicon reward such as VADER,
which sums the valence of the words. (Its bias b then adds b per token: a reward for length, learnt like any other
feature, and one that PPO could exploit.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..batching import collate_preferences, collate_sft
from ..loop import train_loop
from ..preference import bradley_terry_nll
from ..train import SFTConfig
from ..utils import evaluating


class RewardModel(nn.Module):
    """The policy's architecture with a scalar head on the last layer's hidden states: w . h + b at the last real
    token of prompt + reply (`pooling="last"`), or summed over every real token (`pooling="sum"`). Sequences are
    right-padded, as `minidpo.data` collates them."""

    def __init__(self, lm, pooling: str = "last"):
        super().__init__()
        if pooling not in ("last", "sum"):
            raise ValueError(f"pooling must be 'last' or 'sum', got {pooling!r}")
        self.pooling = pooling
        self.body = lm.base_model  # the transformer without its LM head
        self.config = lm.config
        self.head = nn.Linear(lm.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)  # every reply starts at reward 0: the BT loss starts at log 2
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "sum":
            return (self.head(hidden).squeeze(-1).float() * attention_mask).sum(1)
        last = attention_mask.sum(1) - 1
        return self.head(hidden[torch.arange(len(hidden), device=hidden.device), last]).squeeze(-1).float()


@dataclass
class RewardConfig(SFTConfig):
    """SFT's defaults (AdamW, lr 1e-5), without warm-up."""

    output_dir: str = "runs/reward"
    warmup_steps: int = 0


def reward_step(model: RewardModel, batch: dict) -> tuple[Tensor, dict[str, float]]:
    """Bradley-Terry loss on one batch of [chosen; rejected] sequences (eq. 2), plus pair accuracy."""
    device = next(model.parameters()).device
    scores = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
    chosen, rejected = scores.chunk(2)
    loss = bradley_terry_nll(chosen, rejected)
    return loss, {
        "loss": loss.item(),
        "accuracy": (chosen > rejected).float().mean().item(),
        "margin": (chosen - rejected).mean().item(),
    }


def train_reward_model(model: RewardModel, train_data, eval_data, config: RewardConfig, pad_token_id: int,
                       resume: bool = True) -> list[dict]:
    """Fit r_phi to tokenized preference pairs with the shared training loop (same batching, resume, logging)."""
    collate = lambda ex: collate_preferences(ex, pad_token_id)  # noqa: E731
    return train_loop(model, train_data, eval_data, config, reward_step, collate, resume=resume, desc="reward model")


def right_padded(prompt_ids: list[list[int]], reply_ids: list[list[int]], pad: int) -> dict[str, Tensor]:
    """Prompt + reply token ids as one right-padded batch (`collate_sft`'s layout)."""
    return collate_sft([{"prompt_ids": p, "completion_ids": r} for p, r in zip(prompt_ids, reply_ids)], pad)


@torch.inference_mode()
def score_replies(model: RewardModel, prompt_ids: list[list[int]], reply_ids: list[list[int]], pad: int,
                  batch_size: int = 32) -> Tensor:
    """r_phi(x, y) for token-id prompts and replies (scored exactly as sampled: no re-tokenization)."""
    device = next(model.parameters()).device
    out = []
    with evaluating(model):
        for s in range(0, len(prompt_ids), batch_size):
            batch = right_padded(prompt_ids[s : s + batch_size], reply_ids[s : s + batch_size], pad)
            out.append(model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).cpu())
    return torch.cat(out)


def calibration(scores: Tensor, target: Tensor) -> tuple[float, float]:
    """The affine map a * r + b (a > 0) that gives `scores` the mean and standard deviation of `target` on the same
    replies: a = sd(target) / sd(scores), b = mean(target) - a * mean(scores). A Bradley-Terry reward is defined only
    up to a shift and a scale (eq. 2 sees differences, and any scale is absorbed by the head), while the KL-
    regularised objective E[r] - beta KL (eq. 3) is not: its optimum pi_ref exp(r / beta) / Z depends on r / beta.
    Mapped onto the ground truth's scale, one kl_coef prices the same spread of score against KL for PPO on r_phi
    and on r*. It does not make r_phi as informative as r*: with correlation rho, only rho * sd(r*) of the mapped
    score's spread tracks r*. The order of replies (pair accuracy) is unchanged."""
    scores, target = scores.double().flatten(), target.double().flatten()
    if scores.numel() < 2 or scores.numel() != target.numel():
        raise ValueError(f"calibration needs two or more (score, target) pairs, got {scores.numel()} and "
                         f"{target.numel()}")
    if not scores.std() > 0:
        raise ValueError("the reward model gives every calibration reply the same score: nothing to scale")
    a = (target.std() / scores.std()).item()
    return a, (target.mean() - a * scores.mean()).item()


class CalibratedReward(nn.Module):
    """A reward model read through the affine map of `calibration`: a * r_phi(x, y) + b."""

    def __init__(self, model: nn.Module, scale: float, shift: float):
        super().__init__()
        if not scale > 0:
            raise ValueError(f"the calibration's scale must be positive (it keeps the order), got {scale!r}")
        self.model, self.scale, self.shift = model, scale, shift
        self.pooling = getattr(model, "pooling", None)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return self.scale * self.model(input_ids, attention_mask) + self.shift
