"""The frontier's decisions on planted inputs whose answer is known (notebook 08's matched-KL verdict and its budget
choice), so a broken rule fails here rather than printing a plausible verdict.

| test | mutation it catches |
| --- | --- |
| test_matched_kl_verdict_on_planted_frontiers[higher] | evidence for DPO dropped; a line reading counted in the direction its bias can produce |
| test_matched_kl_verdict_on_planted_frontiers[lower] | "DPO higher" and "DPO lower" swapped; the other method's line read as DPO's |
| test_matched_kl_verdict_on_planted_frontiers[tie] | a difference called when every interval straddles 0 |
| test_budget_is_chosen_on_validation_not_test | the budget chosen on the test prompts (or the last budget taken) |
"""

from __future__ import annotations

import pytest
import torch

from minidpo.experiments.frontier_seeds import matched_kl_verdicts, seeded_points

N_PROMPTS, SEEDS = 64, 2


def _point(kl: float, reward: float, seed: int, **labels) -> dict:
    """A point with per-prompt rewards and log-ratios of shape (seeds, prompts) around the planted means."""
    g = torch.Generator().manual_seed(seed)
    rewards = reward + 0.05 * torch.randn(SEEDS, N_PROMPTS, generator=g, dtype=torch.float64)
    ratios = kl + 0.05 * torch.randn(SEEDS, N_PROMPTS, generator=g, dtype=torch.float64)
    return {"rewards": rewards.tolist(), "log_ratios": ratios.tolist(), "kl": kl, "reward": reward, **labels}


SFT = {"rewards": [0.0] * N_PROMPTS, "log_ratios": [0.0] * N_PROMPTS}
DPO = [_point(1.0, 0.5, 1, beta=1.0), _point(2.0, 0.8, 2, beta=0.1)]  # DPO's line: 0.5 at KL 1, 0.65 at KL 1.5


@pytest.mark.parametrize("case, other_reward, expected", [
    ("higher", 0.2, "DPO higher"),  # far below DPO's line at KL 1.5, and dominated by DPO beta=1
    ("lower", 1.2, "DPO lower"),  # far above it: more reward than DPO at less KL than beta=0.1
    ("tie", 0.65, "no clear difference"),  # on DPO's line
])
def test_matched_kl_verdict_on_planted_frontiers(case, other_reward, expected):
    other = [_point(1.5, other_reward, 3, kl_coef=0.1)]
    out = matched_kl_verdicts(SFT, DPO, {"PPO": other}, seed=0)["PPO"]
    assert out["verdict"] == expected, out
    for row in out["comparisons"]:
        if row["difference"] is not None:  # every row says DPO minus the other
            assert row["difference"] == pytest.approx(row["dpo_reward"] - row["other_reward"], abs=1e-9)


def test_budget_is_chosen_on_validation_not_test():
    def scored(reward: float) -> dict:
        return {"reward": reward, "kl": 1.0, "rewards": [reward] * 4, "log_ratios": [1.0] * 4, "reply_tokens": 5.0}

    # validation prefers the first budget, test the second: the choice must follow validation
    runs = [{"method": "DPO", "beta": 0.1, "seed": s, "budget_unit": "epochs",
             "points": [{"budget": 0.5, "validation": scored(0.6), "test": scored(0.3)},
                        {"budget": 1.0, "validation": scored(0.4), "test": scored(0.9)}]} for s in (0, 1)]
    (point,) = seeded_points(runs, "beta")
    assert point["budget"] == 0.5 and point["reward"] == pytest.approx(0.3)
