"""Checks for the notebooks' exercises: each says right or wrong, and when wrong, why.

Every `check_*` takes the student's function (or number), tests it against the library's reference
implementation on fixed inputs, prints a one-line verdict with a hint, and returns True or False.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from . import kl_optimum, losses, preference


def _verdict(ok: bool, what: str, hint: str = "") -> bool:
    print(f"✅ Correct: {what}" if ok else f"❌ Not yet: {hint}")
    return ok


def _close(a, b, tol: float = 1e-6) -> bool:
    try:
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        return a.shape == b.shape and bool(torch.isfinite(a).all()) and bool(torch.allclose(a, b, atol=tol, rtol=tol))
    except (TypeError, RuntimeError, ValueError):
        return False


def _call(fn: Callable, *args):
    try:
        return fn(*args), None
    except Exception as e:  # the student's code failing is a result to report, not a crash
        return None, f"your function raised {type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- notebook 01


def check_bradley_terry_prob(fn: Callable) -> bool:
    """fn(r_a, r_b) -> probability that a beats b, elementwise on tensors."""
    r_a, r_b = torch.tensor([0.0, 1.0, -2.0, 30.0]), torch.tensor([0.0, 0.0, 1.0, -30.0])
    got, err = _call(fn, r_a, r_b)
    if err:
        return _verdict(False, "", err)
    want = preference.bradley_terry_prob(r_a, r_b)
    if _close(got, want):
        return _verdict(True, "p(a > b) = exp(r_a) / (exp(r_a) + exp(r_b)) = sigma(r_a - r_b).")
    if _close(got, 1 - want):
        return _verdict(False, "", "you computed p(b > a): swap the roles of r_a and r_b.")
    return _verdict(False, "", "p(a > b) depends only on r_a - r_b; for r_a = r_b it must be 0.5.")


def check_reward_shift(answer: float) -> bool:
    """How much does p(a > b) change when the same constant is added to every reward?"""
    ok = isinstance(answer, (int, float)) and abs(answer) < 1e-12
    return _verdict(ok, "0: only differences of rewards enter, so rewards are identified up to a constant.",
                    "write p(a > b) with r + c in place of r and simplify: the exp(c) factors cancel.")


def check_plackett_luce_logprob(fn: Callable) -> bool:
    """fn(scores, ranking) -> log-probability of a full ranking (best first) under Plackett-Luce."""
    scores = torch.tensor([0.2, 1.5, -0.3, 0.8], dtype=torch.float64)
    ranking = torch.tensor([1, 3, 0, 2])
    want = preference.plackett_luce_logprob(scores, ranking)
    got, err = _call(fn, scores, ranking)
    if err:
        return _verdict(False, "", err)
    if _close(got, want):
        return _verdict(True, "log p(tau) = sum_k [s_tau_k - log sum_{j >= k} exp(s_tau_j)].")
    return _verdict(False, "", "at stage k only the items not yet ranked compete: the denominator sums over "
                    "tau_k, ..., tau_K, not over all items.")


# ----------------------------------------------------------------------------- notebook 02


def _reference_and_rewards(seed: int, prompts: int, answers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random pi_ref(y|x) (rows normalised) and rewards r(x, y), float64."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.softmax(torch.randn(prompts, answers, generator=g, dtype=torch.float64), -1)
    return ref, torch.randn(prompts, answers, generator=g, dtype=torch.float64)


def check_kl_constrained_optimum(fn: Callable) -> bool:
    """fn(ref_probs, rewards, beta) -> pi*(y|x), rows normalised."""
    ref, r = _reference_and_rewards(0, 3, 5)
    got, err = _call(fn, ref, r, 0.5)
    if err:
        return _verdict(False, "", err)
    if _close(got, kl_optimum.kl_constrained_optimum(ref, r, 0.5)):
        return _verdict(True, "pi* = pi_ref exp(r / beta) / Z(x).")
    if _close(got, torch.softmax(torch.log(ref) + 0.5 * r, -1)):
        return _verdict(False, "", "the exponent is r / beta, not beta * r: a larger beta must stay closer to pi_ref.")
    got = torch.as_tensor(got, dtype=torch.float64)
    if got.shape == ref.shape and not torch.allclose(got.sum(-1), torch.ones(3, dtype=torch.float64)):
        return _verdict(False, "", "each row must sum to 1: divide by Z(x) = sum_y pi_ref(y|x) exp(r(x,y) / beta).")
    return _verdict(False, "", "weight each reference probability by exp(r / beta), then normalise per prompt.")


def check_optimal_value(fn: Callable) -> bool:
    """fn(ref_probs, rewards, beta) -> the maximum of E_pi[r] - beta KL(pi || pi_ref), one per prompt."""
    ref, r = _reference_and_rewards(1, 4, 6)
    got, err = _call(fn, ref, r, 0.3)
    if err:
        return _verdict(False, "", err)
    if _close(got, 0.3 * kl_optimum.log_partition_function(ref, r, 0.3)):
        return _verdict(True, "the optimal value is beta log Z(x).")
    return _verdict(False, "", "plug pi* into the objective: log(pi*/pi_ref) = r / beta - log Z, so most terms cancel.")


# ----------------------------------------------------------------------------- notebook 03


def _dpo_inputs():
    g = torch.Generator().manual_seed(2)
    return [-20 * torch.rand(5, generator=g, dtype=torch.float64) for _ in range(4)]


def check_dpo_loss(fn: Callable) -> bool:
    """fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta) -> per-pair DPO loss (eq. 7)."""
    args = _dpo_inputs()
    got, err = _call(fn, *args, 0.1)
    if err:
        return _verdict(False, "", err)
    want = losses.dpo_loss(*args, beta=0.1).losses
    if not _close(got, want):
        if _close(got, -want):
            return _verdict(False, "", "the loss is the *negative* log-likelihood: -log sigma(...).")
        return _verdict(False, "", "L = -log sigma(beta * [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))]).")
    big = torch.tensor([0.0]), torch.tensor([1e4]), torch.tensor([0.0]), torch.tensor([0.0])
    extreme, err = _call(fn, *big, 1.0)
    if err or not torch.isfinite(torch.as_tensor(extreme)).all():
        return _verdict(False, "", "right formula, but it overflows for a log-ratio gap of -1e4: use "
                        "torch.nn.functional.logsigmoid instead of log(sigmoid(...)).")
    return _verdict(True, "the DPO loss, and numerically stable.")


def check_dpo_gradient_weight(fn: Callable) -> bool:
    """fn(chosen_rewards, rejected_rewards) -> the per-pair weight of the DPO gradient."""
    rc, rr = torch.tensor([2.0, -1.0, 0.0]), torch.tensor([-1.0, 0.5, 0.0])
    got, err = _call(fn, rc, rr)
    if err:
        return _verdict(False, "", err)
    if _close(got, torch.sigmoid(rr - rc)):
        return _verdict(True, "sigma(r_l - r_w): pairs the implicit reward model ranks wrongly weigh most.")
    if _close(got, torch.sigmoid(rc - rr)):
        return _verdict(False, "", "the weight should be large when the model is *wrong* (r_l > r_w): swap the sign.")
    return _verdict(False, "", "differentiate -log sigma(r_w - r_l) with respect to r_w.")


def check_ipo_loss(fn: Callable) -> bool:
    """fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta) -> per-pair IPO loss (no length normalisation)."""
    args = _dpo_inputs()
    got, err = _call(fn, *args, 0.5)
    if err:
        return _verdict(False, "", err)
    if _close(got, losses.dpo_loss(*args, beta=0.5, loss_type="ipo").losses):
        return _verdict(True, "IPO regresses the log-ratio gap onto 1 / (2 beta).")
    return _verdict(False, "", "IPO is a squared error: (h - 1 / (2 beta))^2 with h the log-ratio gap of DPO.")


def check_ipo_target_margin(answer: float, beta: float = 0.25) -> bool:
    """The log-ratio gap h that IPO drives a deterministic preference to, for beta = 0.25."""
    ok = isinstance(answer, (int, float)) and math.isclose(answer, 1 / (2 * beta), rel_tol=1e-6)
    return _verdict(ok, f"h* = 1 / (2 beta) = {1 / (2 * beta)}: finite, unlike DPO's, which grows without bound.",
                    "set the derivative of (h - 1/(2 beta))^2 to zero.")


# ----------------------------------------------------------------------------- notebook 10


def check_simpo_loss(fn: Callable) -> bool:
    """fn(policy_chosen, policy_rejected, chosen_lengths, rejected_lengths, beta, gamma) -> per-pair SimPO loss."""
    pc, pr, _, _ = _dpo_inputs()
    lc, lr = torch.tensor([3.0, 7, 12, 5, 20], dtype=torch.float64), torch.tensor([9.0, 2, 12, 30, 4], dtype=torch.float64)
    got, err = _call(fn, pc, pr, lc, lr, 2.0, 1.0)
    if err:
        return _verdict(False, "", err)
    if _close(got, losses.dpo_loss(pc, pr, None, None, 2.0, "simpo", chosen_lengths=lc, rejected_lengths=lr, simpo_gamma=1.0).losses):
        return _verdict(True, "SimPO: the length-averaged log-likelihood is the reward, and the margin gamma is subtracted.")
    if _close(got, -torch.nn.functional.logsigmoid(2.0 * (pc - pr) - 1.0)):
        return _verdict(False, "", "divide each log-prob by its reply's length first: SimPO's reward is the *average* log-prob.")
    if _close(got, -torch.nn.functional.logsigmoid(2.0 * (pc / lc - pr / lr) + 1.0)):
        return _verdict(False, "", "the margin gamma is subtracted: the chosen reply must win by at least gamma.")
    return _verdict(False, "", "L = -log sigma(beta * (log pi(y_w)/|y_w| - log pi(y_l)/|y_l|) - gamma).")


def check_plackett_luce_loss(fn: Callable) -> bool:
    """fn(logratios, beta) -> per-prompt Plackett-Luce DPO loss, logratios (B, K) ordered best first."""
    rho = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 3
    got, err = _call(fn, rho, 0.5)
    if err:
        return _verdict(False, "", err)
    if _close(got, losses.plackett_luce_loss(rho, 0.5)):
        return _verdict(True, "the ranking's negative log-likelihood, one softmax choice per position (eq. 18).")
    first_only = -(0.5 * rho[:, 0] - torch.logsumexp(0.5 * rho, -1))
    if _close(got, first_only):
        return _verdict(False, "", "that is only the first choice: add the choice of the second-best among the rest, and so on.")
    return _verdict(False, "", "sum over k of -[beta rho_k - logsumexp_{j >= k} beta rho_j].")
