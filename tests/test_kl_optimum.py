import pytest
import torch

from minidpo.kl_optimum import (
    implicit_reward,
    kl_constrained_optimum,
    kl_divergence,
    kl_regularized_objective,
    log_partition_function,
    maximize_kl_objective,
    partition_function,
    reward_kl_frontier,
)


@pytest.fixture
def toy():
    g = torch.Generator().manual_seed(0)
    ref = torch.softmax(torch.randn(5, 8, generator=g, dtype=torch.float64), -1)
    rewards = torch.randn(5, 8, generator=g, dtype=torch.float64)
    return ref, rewards


@pytest.mark.parametrize("beta, prob_tol, value_tol", [(0.1, 1e-3, 1e-4), (0.5, 1e-7, 1e-12), (2.0, 1e-7, 1e-12)])
def test_closed_form_matches_numerical_optimisation(toy, beta, prob_tol, value_tol):
    # Small beta makes pi* nearly deterministic: the objective is flat in the logits of near-zero
    # probabilities, so those converge slowly (L-BFGS gets within 1e-4 of the optimal value).
    ref, r = toy
    numeric, history = maximize_kl_objective(ref, r, beta)
    closed = kl_constrained_optimum(ref, r, beta)
    assert (numeric - closed).abs().max() < prob_tol
    gap = kl_regularized_objective(closed, ref, r, beta) - kl_regularized_objective(numeric, ref, r, beta)
    assert gap.max() < value_tol and gap.min() > -1e-12  # the closed form is the maximum
    assert history[-1] >= history[0]


def test_optimal_value_is_beta_log_z_and_beats_perturbations(toy):
    ref, r = toy
    beta = 0.3
    pi = kl_constrained_optimum(ref, r, beta)
    best = kl_regularized_objective(pi, ref, r, beta)
    torch.testing.assert_close(best, beta * log_partition_function(ref, r, beta))
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        other = torch.softmax(torch.log(pi) + 0.3 * torch.randn(pi.shape, generator=g, dtype=torch.float64), -1)
        assert (kl_regularized_objective(other, ref, r, beta) < best).all()


def test_implicit_reward_recovers_reward_up_to_a_per_prompt_constant(toy):
    ref, r = toy
    beta = 0.7
    pi = kl_constrained_optimum(ref, r, beta)
    shift = implicit_reward(pi, ref, beta) - r
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift))  # constant across responses
    torch.testing.assert_close(shift[:, 0], -beta * log_partition_function(ref, r, beta))


def test_partition_function_by_hand(toy):
    ref, r = toy
    by_hand = (ref * torch.exp(r / 0.5)).sum(-1)
    torch.testing.assert_close(partition_function(ref, r, 0.5), by_hand)


def test_higher_beta_stays_closer_to_reference(toy):
    ref, r = toy
    frontier = reward_kl_frontier(ref, r, [0.05, 0.1, 0.5, 1.0, 5.0])
    assert all(a > b for a, b in zip(frontier["kl"], frontier["kl"][1:]))
    assert all(a > b for a, b in zip(frontier["reward"], frontier["reward"][1:]))


def test_kl_divergence_zero_log_zero():
    p = torch.tensor([0.5, 0.5, 0.0])
    q = torch.tensor([0.25, 0.25, 0.5])
    assert kl_divergence(p, q).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert kl_divergence(q, q).item() == pytest.approx(0.0)


def test_extreme_beta_is_stable(toy):
    ref, r = toy
    pi = kl_constrained_optimum(ref, r * 1000, 1e-3)
    assert torch.isfinite(pi).all() and torch.allclose(pi.sum(-1), torch.ones(5, dtype=torch.float64))
    assert torch.equal(pi.argmax(-1), r.argmax(-1))


@pytest.mark.parametrize("beta", [0.0, -1.0])
def test_bad_beta(toy, beta):
    with pytest.raises(ValueError, match="beta must be > 0"):
        kl_constrained_optimum(*toy, beta)
