"""Preference losses on sequence log-probabilities: DPO and its variants, and the SFT loss.

All functions are pure tensor code: they take per-sequence log-probs log pi(y|x) (summed over
response tokens, see `minidpo.logprobs`) and never call a model.

With h = [log pi(y_w|x) - log pi_ref(y_w|x)] - [log pi(y_l|x) - log pi_ref(y_l|x)]:

    sigmoid (DPO, eq. 7):   -log sigma(beta h)
    cDPO (label smoothing): -(1 - eps) log sigma(beta h) - eps log sigma(-beta h)
    ipo (Azar et al. 2023): (h / |y| - 1 / (2 beta))^2, h per response token (see `dpo_loss`)
    hinge (SLiC, Zhao et al. 2023): max(0, 1 - beta h)

The implicit rewards are r_w = beta (log pi(y_w|x) - log pi_ref(y_w|x)) and likewise r_l (eq. 5).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

LOSS_TYPES = ("sigmoid", "ipo", "hinge")


class DPOLossOutput(NamedTuple):
    losses: Tensor  # per pair, shape (B,)
    chosen_rewards: Tensor  # beta * (log pi - log pi_ref) of the chosen response, detached
    rejected_rewards: Tensor  # same for the rejected response


def check_dpo_hyperparameters(beta: float, loss_type: str, label_smoothing: float) -> None:
    """Raise a ValueError naming the option and what is allowed."""
    if not (isinstance(beta, (int, float)) and beta > 0 and beta < float("inf")):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if not (0.0 <= label_smoothing < 0.5):
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing!r}")
    if label_smoothing > 0 and loss_type != "sigmoid":
        raise ValueError(f"label_smoothing only applies to loss_type='sigmoid' (cDPO), got loss_type={loss_type!r}")


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_lengths: Tensor | None = None,
    rejected_lengths: Tensor | None = None,
) -> DPOLossOutput:
    """Per-pair DPO loss (eq. 7) and the implicit rewards of both responses.

    L = -(1 - eps) log sigma(beta h) - eps log sigma(-beta h), with
    h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)) and eps = label_smoothing
    (eps = 0 is DPO; eps > 0 is conservative DPO, which assumes labels are flipped with probability eps).

    For loss_type="ipo", h is computed from log-ratios divided by the response lengths when
    `chosen_lengths`/`rejected_lengths` are given (TRL does this, so beta means the same across lengths),
    and L = (h - 1/(2 beta))^2. For "hinge", L = max(0, 1 - beta h).

    Stable for log-ratios of any finite size: logsigmoid, never log(sigmoid).
    """
    check_dpo_hyperparameters(beta, loss_type, label_smoothing)
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    h = chosen_logratios - rejected_logratios

    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        if (chosen_lengths is None) != (rejected_lengths is None):
            raise ValueError("give both chosen_lengths and rejected_lengths, or neither")
        if chosen_lengths is not None:
            h = chosen_logratios / chosen_lengths.clamp(min=1) - rejected_logratios / rejected_lengths.clamp(min=1)
        losses = (h - 1 / (2 * beta)) ** 2
    else:  # hinge
        losses = torch.relu(1 - beta * h)

    return DPOLossOutput(losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach())


def dpo_metrics(
    out: DPOLossOutput, policy_chosen_logps: Tensor, policy_rejected_logps: Tensor
) -> dict[str, float]:
    """The batch metrics TRL's DPOTrainer logs, under the same names."""
    c, r = out.chosen_rewards, out.rejected_rewards
    return {
        "loss": out.losses.mean().item(),
        "rewards/chosen": c.mean().item(),
        "rewards/rejected": r.mean().item(),
        "rewards/accuracies": (c > r).float().mean().item(),
        "rewards/margins": (c - r).mean().item(),
        "logps/chosen": policy_chosen_logps.detach().mean().item(),
        "logps/rejected": policy_rejected_logps.detach().mean().item(),
    }


def sft_loss(logits: Tensor, input_ids: Tensor, response_mask: Tensor) -> Tensor:
    """Token-mean negative log-likelihood of the response tokens (prompt and padding excluded).

        L = - (1 / N) sum_{b, t : mask[b, t] = 1, t >= 1} log p(input_ids[b, t] | input_ids[b, <t])

    where N counts those tokens. Labels are shifted by one: position t-1's logits predict token t.
    """
    mask = response_mask[:, 1:].bool()
    if not mask.any():
        raise ValueError("sft_loss: the batch has no response tokens (response_mask is zero after position 0)")
    pred = logits[:, :-1][mask]  # (N, V): only the positions we score
    target = input_ids[:, 1:][mask]
    return F.cross_entropy(pred.float(), target)
