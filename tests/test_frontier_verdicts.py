"""The frontier's decisions on planted inputs whose answer is known (notebook 08's matched-KL verdicts along each
method's own curve, and the choices made on validation), so a broken rule fails here rather than printing a plausible
verdict.

| test | mutation it catches |
| --- | --- |
| test_verdict_on_planted_curves[higher] | evidence for DPO dropped; Holm or the interval skipped |
| test_verdict_on_planted_curves[lower] | "DPO higher" and "DPO lower" swapped; the difference taken other minus DPO |
| test_verdict_on_planted_curves[tie] | a difference called when every interval straddles 0 |
| test_verdict_on_planted_curves[no overlap] | curves that share no KL compared anyway (by extrapolation or a chord) |
| test_every_reading_is_dpo_minus_other | a reading's sign flipped where the other curve supplies the checkpoint |
| test_curve_is_read_along_its_own_checkpoints | a chord from the SFT point; extrapolation; sorting by KL instead of training order |
| test_endpoint_readings_count | a curve's own endpoint dropped as out of range half the time |
| test_seeds_are_resampled_within_a_curve | seeds ignored (one run's noise read as the method's) |
| test_ppo_learning_rate_rule | an unstable learning rate chosen; the smallest stable one chosen; no fallback; the first rule's objective misread |
| test_pilot_choice_at_a_fraction_of_the_threshold_and_the_earlier_rules | the fraction dropped or applied to "stable"; the second rule given the fraction or every iteration; an earlier rule disclosed where none was |
| test_reward_model_rule | the last or first candidate taken; loss used before accuracy |
| test_choices_never_read_the_test_prompts | PPO's pilot or the reward model choice scored on the test prompts |
| test_verdict_with_no_conclusive_reading_says_so | readings that all left the range reported as "no clear difference" |
| test_a_reading_with_no_replicate_in_range_is_kept_uncounted | a crash (an interval of NaNs) when every replicate leaves a range; a one-sided p-value |
| test_holm_uses_the_replicates_p_values_and_power_its_threshold | the power stated at 95% for a family tested at 0.05 / m |
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from minidpo.experiments.frontier_rlhf import RewardModelCandidate, select_reward_model
from minidpo.stats import detectable_difference
from minidpo.experiments.frontier_seeds import PilotRun, select_by_objective, select_ppo_learning_rate
from minidpo.experiments.frontier_verdicts import (Curve, bootstrap_p_value, frontier_verdict, matched_kl_readings,
                                                   matched_kl_verdicts, read_along, replicate_interval)

N_PROMPTS, SEEDS = 96, 3


def _curve(method: str, kls: list[float], rewards: list[float], seed: int, noise: float = 0.3,
           knob: str = "beta", value: float = 0.1) -> Curve:
    """A curve with per-(checkpoint, seed, prompt) rewards and log-ratios around the planted means."""
    g = torch.Generator().manual_seed(seed)
    shape = (len(kls), SEEDS, N_PROMPTS)
    r = torch.tensor(rewards, dtype=torch.float64)[:, None, None] + noise * torch.randn(shape, generator=g,
                                                                                       dtype=torch.float64)
    k = torch.tensor(kls, dtype=torch.float64)[:, None, None] + 0.3 * torch.randn(shape, generator=g,
                                                                                  dtype=torch.float64)
    return Curve(method, knob, value, tuple(range(1, len(kls) + 1)), r, k)


DPO = [_curve("DPO", [0.4, 1.0, 2.0, 3.0], [0.30, 0.40, 0.50, 0.55], seed=1)]


@pytest.mark.parametrize("case, shift, kls, expected", [
    ("higher", -0.25, [0.5, 1.5, 2.5], "DPO higher"),
    ("lower", +0.25, [0.5, 1.5, 2.5], "DPO lower"),
    ("tie", 0.0, [0.5, 1.5, 2.5], "no clear difference"),
    ("no overlap", 0.0, [4.0, 5.0, 6.0], "no overlap"),
])
def test_verdict_on_planted_curves(case, shift, kls, expected):
    # the other method's curve planted on DPO's own curve (interpolated at its KLs), shifted by `shift`
    on_dpo = [float(read_along(torch.tensor([0.4, 1.0, 2.0, 3.0]), torch.tensor([0.30, 0.40, 0.50, 0.55]), k))
              for k in kls]
    rewards = [0.55 if r != r else r + shift for r in on_dpo]  # beyond DPO's range: any value
    other = [_curve("PPO", kls, rewards, seed=2, knob="kl_coef")]
    out = matched_kl_verdicts(DPO, {"PPO": other}, seed=0)["PPO"]
    assert out.verdict == expected, [r.comparison for r in out.readings]
    if case == "no overlap":
        assert not out.readings and out.detectable is None
    else:
        assert out.readings and out.detectable is not None and out.detectable > 0
    if case == "tie":  # the power is said: the test would have found about this much
        assert out.detectable < 0.25


def test_every_reading_is_dpo_minus_other():
    other = [_curve("PPO", [0.5, 1.5, 2.5], [0.1, 0.2, 0.3], seed=3, knob="kl_coef")]
    readings = matched_kl_readings(DPO, other, seed=0)
    at_other = [r for r in readings if r.at.startswith("PPO")]
    assert at_other and len(at_other) < len(readings)  # readings at both curves' checkpoints
    for r in readings:
        assert r.comparison.a.startswith("DPO") and r.comparison.b.startswith("PPO")
        assert r.comparison.interval.estimate == pytest.approx(r.dpo_reward - r.other_reward, abs=1e-12)
        assert r.comparison.interval.estimate > 0 and r.comparison.interval.low <= r.comparison.interval.estimate


def test_curve_is_read_along_its_own_checkpoints():
    kl, reward = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.2, 0.4, 0.3])
    assert read_along(kl, reward, 1.5).item() == pytest.approx(0.3)
    assert read_along(kl, reward, 2.5).item() == pytest.approx(0.35)
    assert torch.isnan(read_along(kl, reward, 0.5))  # below the first checkpoint: no chord from SFT's (0, r_SFT)
    assert torch.isnan(read_along(kl, reward, 3.5))  # no extrapolation
    # a curve whose KL turns back: the first segment in training order that brackets k, not the KL-sorted neighbours
    kl, reward = torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0.1, 0.5, 0.9])
    assert read_along(kl, reward, 2.0).item() == pytest.approx(0.3)
    # batched: one value per replicate row
    out = read_along(torch.tensor([[1.0, 2.0], [2.0, 4.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]]), 2.0)
    assert out.tolist() == pytest.approx([1.0, 0.0])


def test_endpoint_readings_count():
    # the other curve's range holds DPO's with a clear margin: every reading at a DPO checkpoint, its endpoints
    # included, must count; the supplying curve's own range is never what makes a reading inconclusive
    other = [_curve("PPO", [-1.0, 1.5, 5.0], [0.1, 0.2, 0.3], seed=4, knob="kl_coef")]
    readings = [r for r in matched_kl_readings(DPO, other, seed=0) if r.at.startswith("DPO")]
    assert [r.at for r in readings] == [f"DPO beta=0.1 at {b}" for b in (1, 2, 3, 4)]
    assert all(r.conclusive and r.out_of_range == 0 for r in readings)


def test_seeds_are_resampled_within_a_curve():
    # one seed of PPO far above the others: with seeds resampled the interval must be wider than with one seed
    base = _curve("PPO", [0.5, 1.5, 2.5], [0.3, 0.4, 0.5], seed=5, noise=0.05, knob="kl_coef")
    rewards = base.rewards.clone()
    rewards[:, 0] += 0.5
    spread = Curve("PPO", "kl_coef", 0.1, base.budgets, rewards, base.log_ratios)
    one = Curve("PPO", "kl_coef", 0.1, base.budgets, rewards[:, :1].expand(-1, SEEDS, -1).clone(), base.log_ratios)
    width = lambda c: max(r.comparison.interval.high - r.comparison.interval.low  # noqa: E731
                          for r in matched_kl_readings(DPO, [c], seed=0) if r.at.startswith("PPO"))
    assert width(spread) > 1.5 * width(one)


def test_ppo_learning_rate_rule():
    pilot = [PilotRun(1e-6, 0.01, 0.01, 0.20, 0.1), PilotRun(1e-5, 0.05, 0.02, 0.30, 0.5),
             PilotRun(3e-5, 0.40, 0.30, 0.60, 2.0)]  # the last reaches most reward but is unstable
    choice, reason = select_ppo_learning_rate(pilot, threshold=0.1)
    assert choice.learning_rate == 1e-5 and "largest learning rate" in reason  # not the unstable one, not the smallest
    assert select_ppo_learning_rate(pilot, threshold=0.5)[0].learning_rate == 3e-5  # stable under a looser bound
    unstable = [PilotRun(1e-5, 0.2, 0.2, 0.3, 0.5), PilotRun(3e-5, 0.4, 0.3, 0.6, 2.0)]
    choice, reason = select_ppo_learning_rate(unstable, threshold=0.1)
    assert choice.learning_rate == 1e-5 and "no learning rate" in reason
    # the first rule, kept to disclose what it chose: the objective subtracts kl_coef * KL
    assert select_by_objective(pilot, threshold=0.1, kl_coef=0.1).learning_rate == 1e-5
    assert select_by_objective(pilot, threshold=0.1, kl_coef=1.0).learning_rate == 1e-6


def test_pilot_choice_at_a_fraction_of_the_threshold_and_the_earlier_rules():
    """`choose_ppo_learning_rate` on planted pilots: a learning rate under the stability threshold but over its
    fraction is not chosen; the second rule reads only its first `ppo_pilot_earlier_iterations` iterations. Mutations
    caught: the fraction dropped or applied to the definition of stable (`eligible` vs `stable`), the second rule
    given the fraction or all iterations, a profile without an earlier rule still disclosing one."""
    from minidpo.experiments.frontier_seeds import choose_ppo_learning_rate
    from minidpo.experiments.profiles import get_profile

    plan = get_profile("cpu").frontier
    assert plan.ppo_pilot_approxkl_fraction == 0.5 and plan.ppo_pilot_iterations == plan.ppo_checkpoints[-1]
    n = plan.ppo_pilot_earlier_iterations
    # 1e-5 stays far under; 2e-5 stays under 0.1 but not under 0.05; 4e-5 stays under 0.1 for n iterations, then not
    curves = {1e-5: [0.01] * (n + 3), 2e-5: [0.08] * (n + 3), 4e-5: [0.09] * n + [0.2] * 3}
    runs = [{"run": PilotRun(lr, max(a), a[0], 0.2, 0.1), "diagnostics": {"policy/approxkl_avg": a}}
            for lr, a in curves.items()]
    out = choose_ppo_learning_rate(runs, plan)
    assert out["pilot_threshold"] == plan.ppo_stable_approxkl * 0.5 and out["learning_rate"] == 1e-5
    second = out["second_rule_change"]
    assert second["second_rule_choice"] == 4e-5  # stable at 0.1 over its n iterations
    assert second["second_rule_choice_full_pilot"] == 2e-5  # over all of them 4e-5 is not
    # the runs' definition of stable keeps the threshold itself: 2e-5 is stable, only not under the fraction
    assert runs[1]["run"].stable(plan.ppo_stable_approxkl) and not runs[1]["run"].stable(out["pilot_threshold"])
    loose = replace(plan, ppo_pilot_approxkl_fraction=1.0, ppo_pilot_earlier_iterations=0)
    out = choose_ppo_learning_rate(runs, loose)
    assert out["learning_rate"] == 2e-5 and "second_rule_change" not in out


def test_reward_model_rule():
    cands = [RewardModelCandidate(3e-5, 1, 0.60, 0.66), RewardModelCandidate(3e-5, 2, 0.70, 0.64),
             RewardModelCandidate(1e-4, 1, 0.70, 0.60), RewardModelCandidate(1e-4, 2, 0.65, 0.55)]
    best = select_reward_model(cands)
    assert (best.learning_rate, best.epochs) == (1e-4, 1)  # the accuracy tie goes to the lower loss, not the last


def test_choices_never_read_the_test_prompts(tmp_path):
    """The reward model's choice and PPO's pilot on the smoke profile with the test split made unreadable (any
    access raises): they must finish, and the pilot must have scored the validation prompts."""
    from minidpo.experiments.frontier import pairs_stage, prepare_task, sft_stage
    from minidpo.experiments.frontier_rlhf import chosen_reward_model, reward_model_runs
    from minidpo.experiments.frontier_seeds import ppo_pilot
    from minidpo.experiments.profiles import get_profile

    class Unreadable:
        def __getattr__(self, name):
            raise AssertionError("a choice read the test prompts")

        def __getitem__(self, key):
            raise AssertionError("a choice read the test prompts")

        def __len__(self):
            raise AssertionError("a choice read the test prompts")

    task = prepare_task(get_profile("smoke"), tmp_path, show_progress=False)
    sft_model, _ = sft_stage(task)
    pairs = pairs_stage(task, sft_model)
    task.splits["test"] = Unreadable()
    runs = reward_model_runs(task, sft_model, pairs)
    model, record = chosen_reward_model(task, sft_model, pairs, runs)
    pilot = ppo_pilot(task, sft_model, model, {"smoke": True})
    assert pilot["split"] == "validation" and len(pilot["runs"]) == len(task.plan.ppo_pilot_lrs)
    # the pilot's scores are on as many prompts as the validation split has
    assert all(len(r["history"]) == task.plan.ppo_pilot_iterations for r in pilot["runs"])
    assert record["learning_rate"] in task.plan.reward_model_lrs and record["epochs"] in task.plan.reward_model_epochs
    with pytest.raises(AssertionError, match="test prompts"):
        task.prompts("test")  # the guard itself works


def test_verdict_with_no_conclusive_reading_says_so():
    # readings that exist but all leave the range: not counted, and the verdict says so instead of "no difference"
    other = [_curve("PPO", [0.5, 1.5], [0.1, 0.2], seed=6, knob="kl_coef")]
    readings = matched_kl_readings(DPO, other, seed=0)
    forced = [replace(r, out_of_range=r.n_boot) for r in readings]
    out = frontier_verdict("PPO", forced)
    assert out.verdict == "inconclusive" and out.detectable is None and all(v is None for v in out.holm_verdicts)


def test_a_reading_with_no_replicate_in_range_is_kept_uncounted():
    # every replicate left a range: the interval collapses to the estimate instead of NaNs (which would crash)
    assert replicate_interval(torch.tensor([], dtype=torch.float64), 0.2) == (0.2, 0.2)
    low, high = replicate_interval(torch.arange(1001, dtype=torch.float64) / 1000, 0.5)
    assert (low, high) == pytest.approx((0.025, 0.975))
    assert bootstrap_p_value(torch.tensor([], dtype=torch.float64)) == 1.0
    # two-sided: twice the smaller tail; all replicates on one side gives 0
    assert bootstrap_p_value(torch.tensor([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.5)
    assert bootstrap_p_value(torch.tensor([1.0, 2.0])) == 0.0


def test_holm_uses_the_replicates_p_values_and_power_its_threshold():
    # a family of many readings: Holm's first threshold 0.05 / m; the power reported is at that level, so it is
    # larger than the single-test 2.8 standard errors (mutation: power at the interval's own 95%)
    other = [_curve("PPO", [0.5, 1.5, 2.5], [0.3, 0.4, 0.5], seed=8, knob="kl_coef")]
    readings = matched_kl_readings(DPO, other, seed=0)
    out = frontier_verdict("PPO", readings)
    single = sorted(detectable_difference(r.comparison.interval) for r in readings)[len(readings) // 2]
    assert out.detectable > 1.1 * single
    assert all(0 < r.p_value <= 1 for r in readings)
