"""Preference losses on sequence log-probabilities: a registry of small pure functions, and the SFT loss.

Every function takes per-sequence log-probs log pi(y|x) (summed over reply tokens, see `minidpo.logprobs`)
and never calls a model. With the log-ratios rho_w = log pi(y_w|x) - log pi_ref(y_w|x), rho_l likewise, and
h = rho_w - rho_l:

    sigmoid (DPO, eq. 7):   -log sigma(beta h)
    cDPO (label smoothing): -(1 - eps) log sigma(beta h) - eps log sigma(-beta h)
    ipo (Azar et al. 2023): (h / |y| - 1 / (2 beta))^2, h per reply token (see `ipo_loss`)
    hinge (SLiC, Zhao et al. 2023): max(0, 1 - beta h)

The implicit rewards are r_w = beta rho_w and r_l = beta rho_l (eq. 5).

`LOSSES` maps each `loss_type` to its function and what it needs (reference log-probs, reply lengths, extra
hyperparameters). The training step asks the registry what to pass; it never tests a loss's name. Adding a
loss is one function decorated with `@register_loss(...)` and its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor


class PairLogps(NamedTuple):
    """What a preference loss may read for a batch of B pairs, each (B,)."""

    chosen: Tensor  # log pi(y_w|x)
    rejected: Tensor  # log pi(y_l|x)
    ref_chosen: Tensor | None = None  # log pi_ref(y_w|x)
    ref_rejected: Tensor | None = None
    chosen_lengths: Tensor | None = None  # reply tokens of y_w (the EOS included)
    rejected_lengths: Tensor | None = None

    def logratios(self) -> tuple[Tensor, Tensor]:
        """(rho_w, rho_l); a reference-free loss has no pi_ref, and its log-ratios are the policy's log-probs."""
        if self.ref_chosen is None:
            return self.chosen, self.rejected
        return self.chosen - self.ref_chosen, self.rejected - self.ref_rejected


@dataclass(frozen=True)
class LossSpec:
    fn: Callable[..., Tensor]  # (PairLogps, beta, **hyperparameters) -> per-pair losses (B,)
    paper: str
    needs_reference: bool = True
    uses_lengths: bool = False  # the step passes reply lengths
    hyperparameters: tuple[str, ...] = ()  # extra keyword arguments the loss accepts, e.g. ("label_smoothing",)


LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, paper: str, needs_reference: bool = True, uses_lengths: bool = False,
                  hyperparameters: tuple[str, ...] = ()) -> Callable:
    """Decorator: add a loss function to `LOSSES` under `name` (its `loss_type`)."""

    def add(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        LOSSES[name] = LossSpec(fn, paper, needs_reference, uses_lengths, hyperparameters)
        return fn

    return add


# ----------------------------------------------------------------------------- the losses


@register_loss("sigmoid", "Rafailov et al. 2023, eq. 7; cDPO: Mitchell 2023", hyperparameters=("label_smoothing",))
def sigmoid_loss(lp: PairLogps, beta: float, label_smoothing: float = 0.0) -> Tensor:
    """DPO: L = -(1 - eps) log sigma(beta h) - eps log sigma(-beta h); eps = 0 is DPO, eps > 0 conservative DPO
    (labels assumed flipped with probability eps). logsigmoid, never log(sigmoid): stable for any finite h."""
    chosen, rejected = lp.logratios()
    h = chosen - rejected
    return -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)


@register_loss("ipo", "Azar et al. 2023 (IPO)", uses_lengths=True)
def ipo_loss(lp: PairLogps, beta: float) -> Tensor:
    """IPO: L = (h - 1/(2 beta))^2. With reply lengths, h is made of per-token log-ratios rho_w/|y_w| - rho_l/|y_l|
    (TRL does this, so beta means the same across lengths); without, the sequence log-ratios."""
    chosen, rejected = lp.logratios()
    if (lp.chosen_lengths is None) != (lp.rejected_lengths is None):
        raise ValueError("give both chosen_lengths and rejected_lengths, or neither")
    if lp.chosen_lengths is not None:
        chosen, rejected = chosen / lp.chosen_lengths.clamp(min=1), rejected / lp.rejected_lengths.clamp(min=1)
    return (chosen - rejected - 1 / (2 * beta)) ** 2


@register_loss("hinge", "Zhao et al. 2023 (SLiC-HF), on the log-ratio margin")
def hinge_loss(lp: PairLogps, beta: float) -> Tensor:
    """SLiC's hinge on the log-ratio margin: L = max(0, 1 - beta h)."""
    chosen, rejected = lp.logratios()
    return torch.relu(1 - beta * (chosen - rejected))


LOSS_TYPES = tuple(LOSSES)


# ----------------------------------------------------------------------------- the public entry point


class DPOLossOutput(NamedTuple):
    losses: Tensor  # per pair, shape (B,)
    chosen_rewards: Tensor  # beta * (log pi - log pi_ref) of the chosen response, detached
    rejected_rewards: Tensor  # same for the rejected response


def check_dpo_hyperparameters(beta: float, loss_type: str, label_smoothing: float = 0.0) -> None:
    """Raise a ValueError naming the option and what is allowed."""
    if not (isinstance(beta, (int, float)) and beta > 0 and beta < float("inf")):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    if loss_type not in LOSSES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    if not (0.0 <= label_smoothing < 0.5):
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing!r}")
    if label_smoothing > 0 and "label_smoothing" not in LOSSES[loss_type].hyperparameters:
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
    """Per-pair loss of `loss_type` (default: DPO, eq. 7) and the implicit rewards of both responses (eq. 5).

    The loss comes from `LOSSES[loss_type]`; `label_smoothing` is passed to the losses that take it (cDPO),
    the lengths to those that use them (IPO).
    """
    check_dpo_hyperparameters(beta, loss_type, label_smoothing)
    spec = LOSSES[loss_type]
    lp = PairLogps(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths, rejected_lengths)
    extra = {"label_smoothing": label_smoothing} if "label_smoothing" in spec.hyperparameters else {}
    losses = spec.fn(lp, beta, **extra)
    chosen_logratios, rejected_logratios = lp.logratios()
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


# ----------------------------------------------------------------------------- SFT


def sft_loss(token_logps: Tensor) -> Tensor:
    """Token-mean negative log-likelihood of the reply tokens of a batch:

        L = - (1 / N) sum_{reply tokens} log p(y_t | x, y_<t)

    `token_logps` holds the N reply-token log-probs (`minidpo.logprobs.model_token_logprobs`)."""
    if token_logps.numel() == 0:
        raise ValueError("sft_loss: the batch has no reply tokens")
    return -token_logps.mean()
