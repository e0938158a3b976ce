import pytest
import torch

from minidpo.kl_optimum import kl_constrained_optimum
from minidpo.preference import (
    bag_of_words,
    bradley_terry_recovery_curve,
    build_vocabulary,
    fit_linear_reward_model,
    simulate_gumbel_choices,
)
from minidpo.tabular import dpo_convergence_curve, implicit_reward_shift, sample_preference_pairs, train_tabular_policy


@pytest.fixture
def toy():
    g = torch.Generator().manual_seed(0)
    return torch.softmax(torch.randn(3, 5, generator=g, dtype=torch.float64), -1), torch.randn(3, 5, generator=g, dtype=torch.float64)


def test_pairs_are_distinct_and_follow_bradley_terry(toy):
    ref, r = toy
    x, yw, yl = sample_preference_pairs(ref, r, 20000, seed=0)
    assert (yw != yl).all()
    # for one (prompt, pair), the empirical win rate matches sigma(r_a - r_b)
    a, b = 0, 1
    mask_ab = (x == 0) & (((yw == a) & (yl == b)) | ((yw == b) & (yl == a)))
    rate = ((yw == a) & mask_ab).sum() / mask_ab.sum()
    assert rate.item() == pytest.approx(torch.sigmoid(r[0, a] - r[0, b]).item(), abs=0.05)
    x, yw, yl = sample_preference_pairs(ref, r, 500, seed=0, deterministic=True)
    assert (r[x, yw] > r[x, yl]).all()


def test_dpo_on_a_table_converges_to_the_closed_form(toy):
    ref, r = toy
    beta = 0.5
    curve = dpo_convergence_curve(ref, r, beta, [200, 50000], seeds=[0])
    assert curve["max_abs_error"][1] < 0.05 < curve["max_abs_error"][0]
    x, yw, yl = sample_preference_pairs(ref, r, 50000, seed=1)
    pi, _ = train_tabular_policy(ref, x, yw, yl, beta)
    shift = implicit_reward_shift(pi, ref, r, beta)
    assert (shift.max(1).values - shift.min(1).values).max() < 0.3  # implicit reward = r + per-prompt constant
    assert torch.equal(pi.argmax(1), kl_constrained_optimum(ref, r, beta).argmax(1))


def test_deterministic_preferences_dpo_diverges_ipo_does_not(toy):
    ref, r = toy
    x, yw, yl = sample_preference_pairs(ref, r, 300, seed=0, deterministic=True)
    _, dpo = train_tabular_policy(ref, x, yw, yl, 0.5, steps=400, optimizer="adam", lr=0.05)
    _, ipo = train_tabular_policy(ref, x, yw, yl, 0.5, "ipo", steps=400, optimizer="adam", lr=0.05)
    assert dpo["margin"][-1] > dpo["margin"][199] + 1  # still growing
    assert abs(ipo["margin"][-1] - ipo["margin"][199]) < 1e-3  # converged
    with pytest.raises(ValueError, match="optimizer"):
        train_tabular_policy(ref, x, yw, yl, 0.5, optimizer="sgd")


def test_gumbel_noise_gives_the_logistic_choice_rule():
    assert simulate_gumbel_choices(1.0, 0.0, 200000, seed=0) == pytest.approx(torch.sigmoid(torch.tensor(1.0)).item(), abs=0.005)


def test_recovery_curve_improves():
    c = bradley_terry_recovery_curve(torch.linspace(-1, 1, 6), [100, 10000], seeds=[0, 1])
    assert c["max_abs_error"][1] < c["max_abs_error"][0] / 3 and c["n_without_mle"] == [0, 0]
    tiny = bradley_terry_recovery_curve(torch.linspace(-3, 3, 10), [5], seeds=[0, 1, 2])
    assert tiny["n_without_mle"] == [3] and tiny["max_abs_error"] == [None]  # 5 comparisons cannot tie 10 items together


def test_linear_reward_model_learns_a_planted_word():
    chosen = ["thanks a lot", "thanks friend", "great thanks", "ok thanks"] * 5
    rejected = ["a lot", "friend", "great", "ok"] * 5
    vocab = build_vocabulary(chosen + rejected, min_count=1)
    w = fit_linear_reward_model(bag_of_words(chosen, vocab), bag_of_words(rejected, vocab), l2=0.1)
    assert vocab[int(w.argmax())] == "thanks"
