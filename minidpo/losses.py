"""Preference losses on sequence log-probabilities: a registry of small pure functions, and the SFT loss.

Every function takes per-sequence log-probs log pi(y|x) (summed over reply tokens, see `minidpo.logprobs`)
and never calls a model. With the log-ratios rho_w = log pi(y_w|x) - log pi_ref(y_w|x), rho_l likewise, and
h = rho_w - rho_l:

    sigmoid (DPO, eq. 7):   -log sigma(beta h)
    cDPO (label smoothing): -(1 - eps) log sigma(beta h) - eps log sigma(-beta h)
    ipo (Azar et al. 2024, AISTATS): (h / |y| - 1 / (2 beta))^2, h per reply token (see `ipo_loss`)
    hinge (TRL's, adapted from SLiC-HF, Zhao et al. 2023): max(0, 1 - beta h) (see `hinge_loss`)

and DPO's wider family (notebook 10), with |y| a reply's tokens and lbar = log pi(y|x) / |y|:

    sigmoid_norm (TRL):          -log sigma(beta (rho_w / |y_w| - rho_l / |y_l|))
    rpo (Pang et al. 2024):      DPO + alpha * NLL of the chosen replies
    rdpo (Park et al. 2024):     -log sigma(beta h + alpha (|y_w| - |y_l|))
    simpo (Meng et al. 2024):    -log sigma(beta (lbar_w - lbar_l) - gamma)                   no reference
    orpo (Hong et al. 2024):     NLL - lambda log sigma(log odds(lbar_w) - log odds(lbar_l))  no reference
    kto (Ethayarajh et al. 2024): 1 - sigma(beta (rho_w - z)) and 1 - sigma(beta (z - rho_l)), z the batch KL
    Plackett-Luce DPO (DPO paper, App. A.3): K-way rankings (`plackett_luce_loss`, outside the pair registry)

The implicit rewards are r_w = beta rho_w and r_l = beta rho_l (eq. 5). `LOSSES` maps each `loss_type` to its
function and what it needs (reference log-probs, reply lengths, mismatched pairs, hyperparameters); the training
step asks it what to pass, never a loss's name. A new loss is one `@register_loss(...)` function and its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .preference import plackett_luce_logprob


class PairLogps(NamedTuple):
    """What a preference loss may read for a batch of B pairs, each (B,)."""

    chosen: Tensor  # log pi(y_w|x)
    rejected: Tensor  # log pi(y_l|x)
    ref_chosen: Tensor | None = None  # log pi_ref(y_w|x)
    ref_rejected: Tensor | None = None
    chosen_lengths: Tensor | None = None  # reply tokens of y_w (the EOS included)
    rejected_lengths: Tensor | None = None
    mismatched: Tensor | None = None  # log pi(y'|x) - log pi_ref(y'|x) of mismatched pairs (KTO's KL estimate)

    def logratios(self) -> tuple[Tensor, Tensor]:
        """(rho_w, rho_l); a reference-free loss has no pi_ref, and its log-ratios are the policy's log-probs."""
        if self.ref_chosen is None:
            return self.chosen, self.rejected
        return self.chosen - self.ref_chosen, self.rejected - self.ref_rejected

    def lengths(self) -> tuple[Tensor, Tensor]:
        """(|y_w|, |y_l|), at least 1; a loss registered with uses_lengths=True is always given them."""
        if self.chosen_lengths is None or self.rejected_lengths is None:
            raise ValueError("this loss needs chosen_lengths and rejected_lengths (reply tokens)")
        return self.chosen_lengths.clamp(min=1), self.rejected_lengths.clamp(min=1)

    def chosen_nll(self) -> Tensor:
        """Token-mean NLL of the batch's chosen replies, -sum log pi(y_w|x) / sum |y_w| (TRL's RPO and ORPO term)."""
        return -self.chosen.sum() / self.lengths()[0].sum()


@dataclass(frozen=True)
class LossSpec:
    fn: Callable[..., Tensor]  # (PairLogps, beta, **hyperparameters) -> per-pair losses (B,)
    paper: str
    needs_reference: bool = True
    uses_lengths: bool = False  # the step passes reply lengths
    hyperparameters: tuple[str, ...] = ()  # extra keyword arguments the loss accepts, e.g. ("label_smoothing",)
    needs_mismatched: bool = False  # the step passes log-ratios of mismatched (prompt, reply) pairs (KTO)


LOSSES: dict[str, LossSpec] = {}

# Hyperparameters a loss may take besides beta, with their defaults (`DPOConfig` has a field for each).
HYPERPARAMETERS = {"label_smoothing": 0.0, "rpo_alpha": 1.0, "rdpo_alpha": 0.01, "simpo_gamma": 0.5,
                   "desirable_weight": 1.0, "undesirable_weight": 1.0}


def register_loss(name: str, paper: str, needs_reference: bool = True, uses_lengths: bool = False,
                  hyperparameters: tuple[str, ...] = (), needs_mismatched: bool = False) -> Callable:
    """Decorator: add a loss function to `LOSSES` under `name` (its `loss_type`)."""

    def add(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        LOSSES[name] = LossSpec(fn, paper, needs_reference, uses_lengths, hyperparameters, needs_mismatched)
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
        n_w, n_l = lp.lengths()
        chosen, rejected = chosen / n_w, rejected / n_l
    return (chosen - rejected - 1 / (2 * beta)) ** 2


@register_loss("hinge", "TRL's hinge; adapted from Zhao et al. 2023 (SLiC-HF) to log-ratios")
def hinge_loss(lp: PairLogps, beta: float) -> Tensor:
    """TRL's hinge, L = max(0, 1 - beta h): SLiC-HF's calibration loss max(0, delta - log pi(y_w|x) + log pi(y_l|x))
    (Zhao et al. 2023) put on log-ratios to the reference, with delta = 1/beta, scaled by beta, no regulariser."""
    chosen, rejected = lp.logratios()
    return torch.relu(1 - beta * (chosen - rejected))


# ----------------------------------------------------------------------------- DPO's wider family


@register_loss("sigmoid_norm", "length-normalised DPO (TRL's sigmoid_norm)", uses_lengths=True)
def sigmoid_norm_loss(lp: PairLogps, beta: float) -> Tensor:
    """DPO on per-token log-ratios: L = -log sigma(beta (rho_w / |y_w| - rho_l / |y_l|)). A long reply no longer
    moves the margin more than a short one; beta is per token (DPO's beta times a typical length)."""
    (chosen, rejected), (n_w, n_l) = lp.logratios(), lp.lengths()
    return -F.logsigmoid(beta * (chosen / n_w - rejected / n_l))


@register_loss("rpo", "Pang et al. 2024 (RPO: DPO + NLL; TRL's loss_type=['sigmoid', 'sft'])", uses_lengths=True,
               hyperparameters=("rpo_alpha",))
def rpo_loss(lp: PairLogps, beta: float, rpo_alpha: float = 1.0) -> Tensor:
    """L = -log sigma(beta h) + alpha * NLL(y_w) (the batch's token mean, as TRL): keeps log pi(y_w|x) from falling."""
    return sigmoid_loss(lp, beta) + rpo_alpha * lp.chosen_nll()


@register_loss("rdpo", "Park et al. 2024 (R-DPO), eq. 9", uses_lengths=True, hyperparameters=("rdpo_alpha",))
def rdpo_loss(lp: PairLogps, beta: float, rdpo_alpha: float = 0.01) -> Tensor:
    """L = -log sigma(beta h + alpha (|y_w| - |y_l|)), from maximising r - alpha |y| under the KL constraint: the part
    of a preference that length explains is credited to length, so the policy need not grow replies to fit it."""
    (chosen, rejected), (n_w, n_l) = lp.logratios(), lp.lengths()
    return -F.logsigmoid(beta * (chosen - rejected) + rdpo_alpha * (n_w - n_l))


@register_loss("simpo", "Meng et al. 2024 (SimPO), eq. 6", needs_reference=False, uses_lengths=True,
               hyperparameters=("simpo_gamma",))
def simpo_loss(lp: PairLogps, beta: float, simpo_gamma: float = 0.5) -> Tensor:
    """L = -log sigma(beta (log pi(y_w|x) / |y_w| - log pi(y_l|x) / |y_l|) - gamma): the length-averaged
    log-likelihood is the reward (what generation ranks by), no reference model, a target margin gamma."""
    (chosen, rejected), (n_w, n_l) = (lp.chosen, lp.rejected), lp.lengths()
    return -F.logsigmoid(beta * (chosen / n_w - rejected / n_l) - simpo_gamma)


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - e^x) for x < 0, stable at both ends (Maechler 2012): log(-expm1(x)) near 0, log1p(-e^x) far."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


@register_loss("orpo", "Hong et al. 2024 (ORPO), eqs. 6-7; lambda is beta, as in TRL", needs_reference=False,
               uses_lengths=True)
def orpo_loss(lp: PairLogps, beta: float) -> Tensor:
    """L = NLL(y_w) - lambda log sigma(log odds(y_w) - log odds(y_l)), odds(y) = P / (1 - P) with P =
    exp(log pi(y|x) / |y|), the NLL a token mean over the batch's chosen replies. SFT and preference in one
    stage: no SFT model, no reference."""
    (chosen, rejected), (n_w, n_l) = (lp.chosen, lp.rejected), lp.lengths()
    avg_w, avg_l = chosen / n_w, rejected / n_l
    log_odds = (avg_w - avg_l) - (log1mexp(avg_w) - log1mexp(avg_l))
    return lp.chosen_nll() - beta * F.logsigmoid(log_odds)


@register_loss("kto", "Ethayarajh et al. 2024 (KTO), eq. 7", needs_mismatched=True,
               hyperparameters=("desirable_weight", "undesirable_weight"))
def kto_loss(lp: PairLogps, beta: float, desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> Tensor:
    """Each pair read as two unpaired examples, y_w desirable and y_l undesirable, against the reference point
    z = max(0, mean rho(x, y')) over mismatched pairs (a batch estimate of KL(pi || pi_ref), no gradient):

        L = (lambda_D (1 - sigma(beta (rho_w - z))) + lambda_U (1 - sigma(beta (z - rho_l)))) / 2

    (the mean over the 2B examples, as TRL). Needs only a good/bad label per reply, not pairs."""
    if lp.mismatched is None:
        raise ValueError("kto needs the log-ratios of mismatched (prompt, reply) pairs for its KL estimate")
    chosen, rejected = lp.logratios()
    z = lp.mismatched.detach().mean().clamp(min=0)
    desirable = 1 - torch.sigmoid(beta * (chosen - z))
    undesirable = 1 - torch.sigmoid(beta * (z - rejected))
    return (desirable_weight * desirable + undesirable_weight * undesirable) / 2


def plackett_luce_loss(logratios: Tensor, beta: float, strict: Tensor | None = None) -> Tensor:
    """DPO for K-way rankings (DPO paper, App. A.3, eq. 18): with the K replies of a prompt ordered best first
    and rho_k = log pi(y_k|x) - log pi_ref(y_k|x), the negative Plackett-Luce log-likelihood of that order
    under the implicit rewards beta rho (`preference.plackett_luce_logprob`):

        L = - sum_{k=1}^{K} [ beta rho_k - log sum_{j>=k} exp(beta rho_j) ]

    `logratios` is (B, K); returns (B,). With K = 2 it is DPO's eq. 7. `strict` (B, K), optional: stage k
    counts only where y_k is strictly better than every later reply (a tie says nothing about their order)."""
    if logratios.dim() != 2 or logratios.shape[1] < 2:
        raise ValueError(f"logratios must be (B, K) with K >= 2, got shape {tuple(logratios.shape)}")
    best_first = torch.arange(logratios.shape[1], device=logratios.device).expand_as(logratios)
    stages = plackett_luce_logprob(beta * logratios, best_first, per_stage=True)
    return -(stages if strict is None else stages * strict).sum(-1)


# ----------------------------------------------------------------------------- the public entry point


class DPOLossOutput(NamedTuple):  # per pair, shape (B,)
    losses: Tensor
    chosen_rewards: Tensor  # beta * (log pi - log pi_ref) of the chosen response, detached (reference-free losses:
    # beta * log pi / |y|)
    rejected_rewards: Tensor  # same for the rejected response


def check_dpo_hyperparameters(beta: float, loss_type: str, **hyperparameters: float) -> None:
    """Raise a ValueError naming the option and what is allowed: beta > 0, a registered loss_type, each
    hyperparameter in range, and none set away from its default for a loss that does not read it."""
    if not (isinstance(beta, (int, float)) and beta > 0 and beta < float("inf")):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    if loss_type not in LOSSES:
        raise ValueError(f"loss_type must be one of {tuple(LOSSES)}, got {loss_type!r}")
    for name, value in hyperparameters.items():
        if name not in HYPERPARAMETERS:
            raise ValueError(f"unknown loss hyperparameter {name!r}; known: {sorted(HYPERPARAMETERS)}")
        if not (isinstance(value, (int, float)) and abs(value) < float("inf")):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        if value != HYPERPARAMETERS[name] and name not in LOSSES[loss_type].hyperparameters:
            users = [k for k, spec in LOSSES.items() if name in spec.hyperparameters]
            raise ValueError(f"{name} only applies to loss_type=" + " or ".join(map(repr, users))
                             + f", got {loss_type!r}")
    if not (0.0 <= hyperparameters.get("label_smoothing", 0.0) < 0.5):
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {hyperparameters['label_smoothing']!r}")
    for name in [k for k in ("rpo_alpha", "simpo_gamma", "desirable_weight", "undesirable_weight")
                 if hyperparameters.get(k, 0) < 0]:
        raise ValueError(f"{name} must be >= 0, got {hyperparameters[name]!r}")


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
    mismatched_logratios: Tensor | None = None,
    **hyperparameters: float,
) -> DPOLossOutput:
    """Per-pair loss of `loss_type` (default: DPO, eq. 7) and the implicit rewards of both responses (eq. 5).

    The loss comes from `LOSSES[loss_type]`; of `hyperparameters` (`label_smoothing`, `rpo_alpha`, ...; see
    `HYPERPARAMETERS`) each loss is passed those it takes. For a reference-free loss with lengths (SimPO, ORPO) the
    "rewards" are beta log pi(y|x) / |y|, as TRL's CPO and ORPO trainers log them (the summed log-prob would rank a
    long chosen reply below a short rejected one of higher per-token likelihood); without lengths, beta log pi(y|x).
    """
    hyperparameters["label_smoothing"] = label_smoothing
    check_dpo_hyperparameters(beta, loss_type, **hyperparameters)
    spec = LOSSES[loss_type]
    lp = PairLogps(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths,
                   rejected_lengths, mismatched_logratios)
    losses = spec.fn(lp, beta, **{k: v for k, v in hyperparameters.items() if k in spec.hyperparameters})
    chosen_logratios, rejected_logratios = lp.logratios()
    if not spec.needs_reference and spec.uses_lengths:  # SimPO, ORPO: what they compare, as TRL's CPO/ORPO log it
        (n_w, n_l) = lp.lengths()
        chosen_logratios, rejected_logratios = chosen_logratios / n_w, rejected_logratios / n_l
    return DPOLossOutput(losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach())


def dpo_metrics(out: DPOLossOutput, policy_chosen_logps: Tensor, policy_rejected_logps: Tensor) -> dict[str, float]:
    """The batch metrics TRL's DPOTrainer logs, under the same names."""
    c, r = out.chosen_rewards, out.rejected_rewards
    return {"loss": out.losses.mean().item(), "rewards/chosen": c.mean().item(), "rewards/rejected": r.mean().item(),
            "rewards/accuracies": (c > r).float().mean().item(), "rewards/margins": (c - r).mean().item(),
            "logps/chosen": policy_chosen_logps.detach().mean().item(),
            "logps/rejected": policy_rejected_logps.detach().mean().item()}


# ----------------------------------------------------------------------------- SFT


def sft_loss(token_logps: Tensor) -> Tensor:
    """Token-mean negative log-likelihood of the reply tokens of a batch:

        L = - (1 / N) sum_{reply tokens} log p(y_t | x, y_<t)

    `token_logps` holds the N reply-token log-probs (`minidpo.logprobs.model_token_logprobs`)."""
    if token_logps.numel() == 0:
        raise ValueError("sft_loss: the batch has no reply tokens")
    return -token_logps.mean()
