"""Notebook 10's decisions on planted inputs whose answer is known: the grid rule on validation, the length
adjustment, and one Holm family over every arm.

| test | mutation it catches |
| --- | --- |
| test_grid_rule_on_planted_values | the largest reward taken without the KL price; the price's sign flipped; the last value on a tie |
| test_least_squares_is_the_regression_slope | slope and intercept swapped; an uncentred slope |
| test_length_adjustment_moves_each_checkpoint_by_its_own_length | the adjustment applied with the wrong sign, or from the arm's mean length instead of each (checkpoint, seed) |
| test_length_adjustment_removes_a_planted_length_effect | a verdict read on the raw reward where the adjusted one is primary |
| test_one_holm_family_over_every_arm | each arm corrected on its own (a family of one), so more differences are called as arms are added |
"""

from __future__ import annotations

import torch

from minidpo.experiments.family import select_on_validation
from minidpo.experiments.family_length import least_squares, length_adjusted
from minidpo.experiments.frontier_verdicts import frontier_verdict, joint_verdicts, matched_kl_readings
from test_frontier_verdicts import SEEDS, _curve  # planted curves: (checkpoints, seeds, prompts) around given means


def test_grid_rule_on_planted_values():
    # value 1 has the highest reward but pays 10 nats for it: at 0.05 per nat value 2 wins
    c = select_on_validation("simpo_gamma", (0.5, 1.0, 1.5), (0.30, 0.50, 0.45), (1.0, 10.0, 2.0), 0.05)
    assert c.chosen == 1.5 and c.objective == (0.30 - 0.05, 0.50 - 0.5, 0.45 - 0.1)
    assert select_on_validation("x", (1.0, 2.0), (0.3, 0.5), (1.0, 10.0), 0.0).chosen == 2.0  # no price: the reward
    assert select_on_validation("x", (1.0, 2.0), (0.3, 0.3), (1.0, 1.0), 0.05).chosen == 1.0  # a tie: the first


def test_least_squares_is_the_regression_slope():
    x = torch.tensor([8.0, 10, 12, 9, 11], dtype=torch.float64)
    y = 0.5 - 0.02 * x
    slope, intercept = least_squares(x, y)
    assert abs(slope + 0.02) < 1e-12 and abs(intercept - 0.5) < 1e-12
    assert least_squares(torch.full((4,), 3.0, dtype=torch.float64), torch.arange(4.0, dtype=torch.float64))[0] == 0.0


def test_length_adjustment_moves_each_checkpoint_by_its_own_length():
    curve = _curve("arm", [0.5, 1.0], [0.3, 0.4], seed=0)
    runs = [{"points": [{"reply_tokens": 10.0}, {"reply_tokens": 14.0}]},
            {"points": [{"reply_tokens": 12.0}, {"reply_tokens": 10.0}]},
            {"points": [{"reply_tokens": 8.0}, {"reply_tokens": 11.0}]}]
    adj = length_adjusted(curve, runs, slope=0.05, sft_tokens=10.0)
    # (checkpoint, seed): 0.05 x (tokens - 10)
    shift = torch.tensor([[0.0, 0.1, -0.1], [0.2, 0.0, 0.05]], dtype=torch.float64)
    assert torch.allclose(curve.rewards - adj.rewards, shift[:, :, None].expand_as(curve.rewards), atol=1e-12)
    assert torch.equal(adj.log_ratios, curve.log_ratios)  # the KL is not adjusted


def test_length_adjustment_removes_a_planted_length_effect():
    # the arm's reward is DPO's plus 0.1 per extra token, and it writes 4 tokens more: raw, DPO lower; adjusted with
    # the true slope 0.1, no difference
    # both on the line 0.3 + 0.1 KL, so every reading (either curve's checkpoint) ties once the length is removed
    dpo = _curve("DPO", [0.4, 1.0, 2.0, 3.0], [0.34, 0.40, 0.50, 0.60], seed=1, noise=0.05)
    arm = _curve("arm", [0.5, 1.5, 2.5], [0.35 + 0.4, 0.45 + 0.4, 0.55 + 0.4], seed=2, noise=0.05)
    dpo_runs = [{"points": [{"reply_tokens": 10.0}] * 4}] * SEEDS
    arm_runs = [{"points": [{"reply_tokens": 14.0}] * 3}] * SEEDS
    raw = frontier_verdict("arm", matched_kl_readings([dpo], [arm], n_boot=2000))
    adjusted = frontier_verdict("arm", matched_kl_readings([length_adjusted(dpo, dpo_runs, 0.1, 10.0)],
                                                           [length_adjusted(arm, arm_runs, 0.1, 10.0)], n_boot=2000))
    assert raw.verdict == "DPO lower" and adjusted.verdict == "no clear difference"


def test_one_holm_family_over_every_arm():
    # one arm 0.06 below DPO: called alone; among nine arms (eight ties) Holm's thresholds are 9x stricter
    dpo = [_curve("DPO", [0.4, 1.0, 2.0, 3.0], [0.30, 0.40, 0.50, 0.55], seed=1, noise=0.2)]
    target = {0.5: 0.315, 1.5: 0.45, 2.5: 0.525}
    readings = {f"arm{i}": matched_kl_readings(dpo, [_curve(f"arm{i}", list(target), [v - (0.06 if i == 0 else 0)
                                                                                       for v in target.values()],
                                                            seed=10 + i, noise=0.2)], n_boot=4000)
                for i in range(9)}
    alone = frontier_verdict("arm0", readings["arm0"]).verdict
    joint = joint_verdicts(readings)
    assert alone == "DPO higher"
    n_counted = sum(r.conclusive for rs in readings.values() for r in rs)
    smallest = min(r.p_value for r in readings["arm0"] if r.conclusive)
    # the joint family calls arm0 only if its smallest p-value clears 0.05 / (all counted readings)
    assert (joint["arm0"].verdict == "DPO higher") == (smallest <= 0.05 / n_counted)
    assert joint["arm0"].detectable > frontier_verdict("arm0", readings["arm0"]).detectable  # stricter: less power
