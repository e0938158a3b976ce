"""Intervals, comparisons and verdicts (`minidpo.stats`): every claim the series prints comes through here, so each
decision is pinned on planted inputs whose answer is known, and each formula on an independent computation.

Mutation table: what change to `minidpo/stats.py` each test catches (the frontier's verdict: tests/test_frontier_verdicts.py).

| test | mutation it catches |
| --- | --- |
| test_verdict_on_planted_intervals | "higher" and "lower" swapped; `>=` for `>` (an interval touching the null called a difference); the null ignored (a rate compared with 0 instead of 1/2) |
| test_render_says_the_verdict_and_power | a sentence typed instead of rendered (words not following the interval); a tie rendered without its power |
| test_combine_readings | "mixed" lost (one direction winning over the other); a tie swallowing a difference |
| test_wilson_matches_the_formula_and_holds_at_the_edges | a wrong centre or half-width; z for the level confused; the interval collapsing at 0 or n successes |
| test_bootstrap_interval_is_the_percentile_bootstrap | resampling not paired (a and b resampled separately); a different estimator than the mean |
| test_detectable_difference_is_2_8_standard_errors | power computed at the wrong quantile (e.g. 1.96 + 1.96) |
| test_comparison_round_trips_through_json | a field lost between results file and report (the report's sentence would differ from the notebook's) |
| test_p_value_agrees_with_the_interval | a one-sided p-value; the null ignored; a p-value centred on the estimate disagreeing with an asymmetric interval's verdict |
| test_holm_on_planted_families | no correction (every p < 0.05 called); Bonferroni's constant threshold instead of the step-down; the step-down not stopping at the first failure; a direction lost |
"""

from __future__ import annotations

import math

import pytest
import torch

from minidpo.stats import (Comparison, Interval, Verdict, bootstrap_interval, combine, detectable_difference, holm,
                           p_value, paired_difference, render, verdict, wilson)


def _cmp(low: float, high: float, null: float = 0.0) -> Comparison:
    return Comparison("metric", "A", "B", Interval((low + high) / 2, low, high, "paired bootstrap over prompts", 100), null)


@pytest.mark.parametrize("low, high, null, expected", [
    (0.01, 0.05, 0.0, Verdict.HIGHER),
    (-0.05, -0.01, 0.0, Verdict.LOWER),
    (-0.01, 0.05, 0.0, Verdict.NO_CLEAR_DIFFERENCE),
    (0.0, 0.05, 0.0, Verdict.NO_CLEAR_DIFFERENCE),  # touching the null is not excluding it
    (0.52, 0.70, 0.5, Verdict.HIGHER),  # a win rate against 1/2
    (0.30, 0.49, 0.5, Verdict.LOWER),
    (0.30, 0.60, 0.5, Verdict.NO_CLEAR_DIFFERENCE),
    (0.10, 0.40, 0.5, Verdict.LOWER),  # above 0 but below 1/2: the null matters
])
def test_verdict_on_planted_intervals(low, high, null, expected):
    assert verdict(_cmp(low, high, null)) is expected
    assert _cmp(low, high, null).verdict is expected


def test_render_says_the_verdict_and_power():
    higher = render(_cmp(0.01, 0.05))
    assert "A higher than B" in higher and "+0.030 [+0.010, +0.050]" in higher and "n=100" in higher
    assert "lower" not in higher and "no clear" not in higher
    lower = render(_cmp(-0.05, -0.01))
    assert "A lower than B" in lower and "higher" not in lower
    tie = render(_cmp(-0.02, 0.04))
    assert "no clear difference between A and B" in tie and "higher" not in tie and "lower" not in tie
    se = 0.06 / (2 * 1.959964)
    assert f"would detect about {2.801585 * se:.3f}" in tie  # (z_0.975 + z_0.8) standard errors
    rate = render(_cmp(0.52, 0.70, 0.5))
    assert "(null 0.5)" in rate and "0.610 [0.520, 0.700]" in rate


def test_combine_readings():
    H, L, N, M = Verdict.HIGHER, Verdict.LOWER, Verdict.NO_CLEAR_DIFFERENCE, Verdict.MIXED
    assert combine([N, N]) is N and combine([]) is N
    assert combine([N, H, N]) is H and combine([L, N]) is L
    assert combine([H, L]) is M and combine([H, N, L]) is M and combine([N, M]) is M


def test_wilson_matches_the_formula_and_holds_at_the_edges():
    # an independent computation: the roots of (p_hat - p)^2 = z^2 p (1 - p) / n
    n, k, z = 40, 13, 1.96
    a, b, c = 1 + z * z / n, -(2 * k / n + z * z / n), (k / n) ** 2
    roots = sorted(((-b - math.sqrt(b * b - 4 * a * c)) / (2 * a), (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)))
    i = wilson(k, n)
    assert (i.low, i.high) == pytest.approx(roots, abs=1e-12) and i.estimate == k / n and i.n == n
    assert i.level == pytest.approx(0.95, abs=1e-4)
    zero, full = wilson(0, 200), wilson(200, 200)
    assert zero.low == 0 and 0.018 < zero.high < 0.02 and full.high == 1 and 0.98 < full.low < 0.982


def test_bootstrap_interval_is_the_percentile_bootstrap():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, generator=g, dtype=torch.float64)
    b = a - 0.3 + 0.01 * torch.randn(50, generator=g, dtype=torch.float64)  # b tracks a: pairing matters
    d = paired_difference(a, b, seed=3)
    # by hand: resample prompt indices, the same for a and b
    idx = torch.randint(0, 50, (10_000, 50), generator=torch.Generator().manual_seed(3))
    means = (a[idx] - b[idx]).mean(1)
    lo, hi = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    assert (d.estimate, d.low, d.high) == pytest.approx(((a - b).mean().item(), lo, hi), abs=1e-12)
    assert d.high - d.low < 0.01  # paired: the shared noise cancels
    unpaired = bootstrap_interval(a, seed=3).high - bootstrap_interval(a, seed=3).low
    assert unpaired > 10 * (d.high - d.low)


def test_detectable_difference_is_2_8_standard_errors():
    i = Interval(0.0, -0.196, 0.196, "bootstrap", 100)  # s.e. 0.1 at 95%
    assert detectable_difference(i) == pytest.approx((1.959964 + 0.841621) * 0.1, abs=1e-5)


def test_comparison_round_trips_through_json():
    c = _cmp(0.01, 0.05)
    d = c.as_dict()
    assert d["verdict"] == "higher" and d["text"] == render(c) and Comparison.from_dict(d) == c
    with pytest.raises(ValueError, match="low <= high"):
        Interval(0.0, 1.0, -1.0, "x", 1)


def _with_p(p: float, sign: float = 1.0) -> Comparison:
    """A comparison whose interval (s.e. 1) gives two-sided p-value `p`, estimate of sign `sign`."""
    z = float(torch.special.ndtri(torch.tensor(1 - p / 2, dtype=torch.float64)))
    half = 1.959963984540054
    return Comparison("m", "A", "B", Interval(sign * z, sign * z - half, sign * z + half, "normal", 100))


def test_p_value_agrees_with_the_interval():
    assert p_value(_with_p(0.03)) == pytest.approx(0.03, rel=1e-9)
    assert p_value(_cmp(0.0, 0.2)) == pytest.approx(0.05, rel=1e-6)  # the interval touches 0: p = 1 - level
    assert p_value(_cmp(0.52, 0.70, 0.5)) < 0.05 < p_value(_cmp(0.40, 0.70, 0.5))
    # an asymmetric (Wilson) interval: 8 of 10 is [0.49, 0.94], no clear difference from 1/2, and so is its p-value
    # (mutation caught: centring on the estimate 0.8 calls it a difference, p = 0.0095)
    eight = Comparison("m", "A", "B", wilson(8, 10), 0.5)
    assert verdict(eight) is Verdict.NO_CLEAR_DIFFERENCE and p_value(eight) > 0.05
    assert holm([eight]) == [verdict(eight)]


def test_holm_on_planted_families():
    H, L, N = Verdict.HIGHER, Verdict.LOWER, Verdict.NO_CLEAR_DIFFERENCE
    # m = 4: thresholds 0.0125, 0.0167, 0.025, 0.05 for the sorted p-values
    assert holm([_with_p(0.001), _with_p(0.015, -1), _with_p(0.02), _with_p(0.04)]) == [H, L, H, H]
    # 0.02 fails its 0.0167 step: it and everything after it read no clear difference, though each is < 0.05
    assert holm([_with_p(0.001), _with_p(0.02), _with_p(0.021), _with_p(0.03)]) == [H, N, N, N]
    # uncorrected, all four would be differences; Bonferroni (0.0125 for all) would keep only the first of these
    assert holm([_with_p(0.011), _with_p(0.012, -1), _with_p(0.024), _with_p(0.049)]) == [H, L, H, H]
    assert holm([_with_p(0.2), _with_p(0.5)]) == [N, N]
