"""Plackett-Luce DPO (report, Proposition "Plackett--Luce DPO" in sections/dpo.tex): the two checks of its
derivation that tests/test_family.py does not already make.

tests/test_family.py already pins `plackett_luce_loss` to the sequential-choice formula on the implied rewards
beta * rho (`test_plackett_luce_is_the_sequential_choice_probability`) and its K = 2 case to the sigmoid DPO
loss (`test_plackett_luce_with_two_replies_is_dpo`). Here:

- the loss is invariant to adding a per-prompt constant to the implied rewards (the step of the derivation in
  which beta log Z(x) cancels from every factor);
- at the optimal policy pi* of a known reward r, the loss of the log-ratios log pi*/pi_ref is the Plackett-Luce
  negative log-likelihood of r itself, although the log-ratios differ from r / beta by -log Z(x).

Every expected value is computed independently in plain Python (`math`), in float64; tolerances follow from the
rounding of the computations compared (tests/precision.py), in float32 and float64.
"""

import math

import pytest
import torch
from precision import EPS32, EPS64, sum_tol

from minidpo.losses import plackett_luce_loss

F64 = torch.float64


def _pl_nll(scores):
    """-log of the Plackett-Luce probability of the order `scores` are listed in (best first), by a loop:
    stage k picks item k by a softmax over items k..K-1. Returns (value, sum of the magnitudes of the terms
    added), the second for a rounding budget."""
    total, magnitude = 0.0, 0.0
    for k in range(len(scores)):
        rest = scores[k:]
        top = max(rest)
        lse = top + math.log(sum(math.exp(s - top) for s in rest))
        total -= scores[k] - lse
        magnitude += abs(scores[k]) + abs(lse) + 1.0  # the 1: the exp/log of order-one quantities inside lse
    return total, magnitude


def _tol(magnitude, k, eps):
    """Two correct evaluations of a K-stage loss whose terms add up to `magnitude` in absolute value: each stage
    sums at most K + 1 terms, so K (K + 1) terms in all (tests/precision.py, `sum_tol`)."""
    return sum_tol(magnitude, k * (k + 1), eps)


@pytest.mark.parametrize("dtype, eps", [(torch.float32, EPS32), (F64, EPS64)])
def test_plackett_luce_dpo_is_invariant_to_a_per_prompt_constant(dtype, eps):
    """Adding c(x) to every log-ratio of a prompt adds beta c(x) to each implied reward, which must not change
    the loss: each stage is a softmax over the replies still unranked. Catches a stage whose normaliser does
    not move with its numerator: beta applied to the numerator only, a stage's log-sum-exp dropped or replaced
    by a plain sum of scores, the last stage's term kept as s_K alone, or any per-reply term that is not a
    shift (a softplus, a length penalty) added to the scores (the first assertion); the loop anchors both losses,
    so an invariant but wrong loss (no beta, every stage normalised over all K replies) fails too."""
    g = torch.Generator().manual_seed(30)
    n_prompts, k, beta = 5, 4, 0.7
    rho = (3 * torch.randn(n_prompts, k, generator=g, dtype=F64)).to(dtype)
    shift = torch.tensor([[-40.0], [-3.5], [0.25], [7.0], [55.0]], dtype=dtype)  # one constant per prompt
    plain, shifted = plackett_luce_loss(rho, beta), plackett_luce_loss(rho + shift, beta)
    assert plain.dtype == shifted.dtype == dtype
    for i in range(n_prompts):
        want, mag = _pl_nll([beta * v for v in rho[i].tolist()])
        _, mag_shifted = _pl_nll([beta * v for v in (rho[i] + shift[i]).tolist()])
        # rho + shift is itself rounded once in `dtype`: beta * K * eps/2 * |rho + shift| per score, at most
        input_rounding = beta * k * eps * sum(abs(v) for v in (rho[i] + shift[i]).tolist())
        bound = _tol(mag, k, eps) + _tol(mag_shifted, k, eps) + input_rounding
        assert abs(shifted[i].item() - plain[i].item()) <= bound
        # and anchored to the loop, so that a loss that is invariant but wrong cannot pass
        assert abs(plain[i].item() - want) <= _tol(mag, k, eps)
        assert abs(shifted[i].item() - want) <= _tol(mag_shifted, k, eps) + input_rounding


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_plackett_luce_dpo_at_the_optimal_policy_is_the_likelihood_of_the_true_reward(beta):
    """On a tabular problem (a finite response set per prompt, a reference policy, a reward r), take the optimal
    policy pi* = pi_ref exp(r / beta) / Z of the KL-constrained objective and rank K of its responses in an
    arbitrary order. The loss of the log-ratios log pi* - log pi_ref must equal the Plackett-Luce negative
    log-likelihood of r, because beta log Z(x) cancels in every stage. Catches the implied reward taken without
    beta (rho instead of beta rho) or with beta twice, a stage normalised over all K replies instead of those
    still unranked, and the ranking read worst first instead of best first."""
    g = torch.Generator().manual_seed(31)
    n_prompts, n_responses, k = 4, 7, 4
    for i in range(n_prompts):
        ref_logits = (2 * torch.randn(n_responses, generator=g, dtype=F64)).tolist()
        reward = (1.5 * torch.randn(n_responses, generator=g, dtype=F64) + 2.0 + i).tolist()  # offset: Z far from 1
        chosen = torch.randperm(n_responses, generator=g)[:k].tolist()  # K responses, in a random order

        top = max(ref_logits)
        log_norm = top + math.log(sum(math.exp(v - top) for v in ref_logits))
        log_ref = [v - log_norm for v in ref_logits]
        tilted = [a + r / beta for a, r in zip(log_ref, reward)]
        top = max(tilted)
        log_z = top + math.log(sum(math.exp(v - top) for v in tilted))
        log_pistar = [v - log_z for v in tilted]
        assert abs(log_z) > 0.5  # Z(x) is far from 1, so its cancellation is really tested

        rho = torch.tensor([[log_pistar[j] - log_ref[j] for j in chosen]], dtype=F64)
        got = plackett_luce_loss(rho, beta).item()
        want, mag = _pl_nll([reward[j] for j in chosen])
        # rho_j = log pi*_j - log pi_ref_j is rounded, relative to |log pi*_j| + |log pi_ref_j|, and enters up to
        # 2K stage terms; beta scales it
        rho_rounding = 2 * k * beta * EPS64 * sum(abs(log_pistar[j]) + abs(log_ref[j]) + abs(log_z) for j in chosen)
        _, mag_implied = _pl_nll((beta * rho[0]).tolist())
        assert abs(got - want) <= _tol(max(mag, mag_implied), k, EPS64) + rho_rounding, (i, got, want)
