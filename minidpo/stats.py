"""Intervals, comparisons and verdicts: the one way minidpo says how sure a number is, and what a difference means.

    Interval    an estimate with its 95% interval, the method that made it, n (prompts or pairs) and seeds
    Comparison  a metric of arm `a` against arm `b`: an Interval of a - b (or of a rate with null 1/2), the
                null value, and the decision rule
    verdict     "higher" / "lower" when the interval excludes the null, else "no clear difference"
    render      the sentence a notebook, the report or the README prints: the verdict, the interval, n and the
                test's power (the smallest difference it would detect), never a typed comparative word

A claim such as "DPO writes fewer rude replies" is only ever `render(comparison)`: the words come from the
interval, so they cannot outrun it. Intervals are percentile bootstraps (over prompts, paired where two arms
answer the same prompts) or Wilson score intervals for proportions that may sit at 0 or 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from enum import Enum

import torch

__all__ = ["Interval", "Comparison", "Verdict", "verdict", "render", "combine", "bootstrap_interval", "wilson",
           "paired_difference", "detectable_difference", "p_value", "holm"]


def _z(level: float) -> float:
    """The standard normal quantile for a two-sided `level` interval (1.96 at 0.95)."""
    return math.sqrt(2.0) * torch.erfinv(torch.tensor(level, dtype=torch.float64)).item()


@dataclass(frozen=True)
class Interval:
    """An estimate and its interval. `method` names how the interval was made ("paired bootstrap over prompts",
    "Wilson score", ...); `n` counts the independent units resampled (prompts, pairs); `seeds` the training
    seeds averaged (1: one run)."""

    estimate: float
    low: float
    high: float
    method: str
    n: int
    seeds: int = 1
    level: float = 0.95

    def __post_init__(self):
        if not self.low <= self.high:
            raise ValueError(f"an interval needs low <= high, got [{self.low}, {self.high}]")

    def excludes(self, value: float) -> bool:
        return self.low > value or self.high < value

    def format(self, spec: str = ".3f", signed: bool = False) -> str:
        sign = "+" if signed else ""
        return f"{self.estimate:{sign}{spec}} [{self.low:{sign}{spec}}, {self.high:{sign}{spec}}]"

    def __str__(self) -> str:
        return self.format()

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Interval":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def bootstrap_interval(values, method: str = "bootstrap over prompts", n_boot: int = 10_000, level: float = 0.95,
                       seed: int = 0, seeds: int = 1) -> Interval:
    """The mean of `values` (one per prompt) with its percentile-bootstrap interval (resample with replacement)."""
    from .evaluate import bootstrap_ci

    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    lo, hi = bootstrap_ci(x, n_boot=n_boot, level=level, seed=seed)
    return Interval(float(x.mean()), lo, hi, method, int(x.numel()), seeds, level)


def wilson(successes: float, n: int, z: float = 1.96) -> Interval:
    """A proportion with its Wilson score interval at z standard errors (1.96: 95%; ties counted as 1/2 a
    success): unlike a percentile bootstrap it does not collapse to a point when every outcome is the same (0 of
    200 gives [0, 0.019])."""
    if n == 0:
        raise ValueError("no outcomes")
    level = math.erf(z / math.sqrt(2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), "Wilson score", n, 1, level)


def paired_difference(a, b, seed: int = 0, level: float = 0.95) -> Interval:
    """mean(a - b) over the same prompts, with a paired bootstrap interval (prompts resampled together)."""
    diff = torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)
    return bootstrap_interval(diff, "paired bootstrap over prompts", level=level, seed=seed)


def detectable_difference(interval: Interval, power: float = 0.8, test_level: float | None = None) -> float:
    """The smallest true difference this test finds with probability `power`: (z_level + z_power) standard
    errors, the standard error read off the interval's width as if it were normal. `test_level` is the level the
    test is actually run at when it differs from the interval's (a corrected one: Holm's first step in a family of
    m is 1 - (1 - level) / m)."""
    se = (interval.high - interval.low) / (2 * _z(interval.level))
    return (_z(interval.level if test_level is None else test_level) + _z(2 * power - 1)) * se


class Verdict(str, Enum):
    HIGHER = "higher"
    LOWER = "lower"
    NO_CLEAR_DIFFERENCE = "no clear difference"
    MIXED = "mixed"  # only from `combine`: some readings one way, some the other


@dataclass(frozen=True)
class Comparison:
    """`metric` of arm `a` against arm `b` on the same prompts. `interval` is a - b (null 0), or a rate of `a`
    winning against `b` (null 1/2). The rule: a difference is called only when the interval excludes `null`."""

    metric: str
    a: str
    b: str
    interval: Interval
    null: float = 0.0

    @property
    def verdict(self) -> Verdict:
        return verdict(self)

    @property
    def rule(self) -> str:
        return (f"'higher' or 'lower' only when the {self.interval.level:.4g} {self.interval.method} interval "
                f"excludes {self.null:g}")

    def as_dict(self) -> dict:
        return {"metric": self.metric, "a": self.a, "b": self.b, "interval": self.interval.as_dict(), "null": self.null,
                "verdict": self.verdict.value, "rule": self.rule, "text": render(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "Comparison":
        return cls(d["metric"], d["a"], d["b"], Interval.from_dict(d["interval"]), d.get("null", 0.0))


def verdict(c: Comparison) -> Verdict:
    """"higher" when the whole interval lies above the null, "lower" when below, else "no clear difference"."""
    if c.interval.low > c.null:
        return Verdict.HIGHER
    if c.interval.high < c.null:
        return Verdict.LOWER
    return Verdict.NO_CLEAR_DIFFERENCE


def combine(verdicts) -> Verdict:
    """Several readings of one question: "mixed" if they point both ways, else the one direction any of them
    shows, else "no clear difference"."""
    found = {Verdict(v) for v in verdicts} - {Verdict.NO_CLEAR_DIFFERENCE}
    if {Verdict.HIGHER, Verdict.LOWER} <= found or Verdict.MIXED in found:
        return Verdict.MIXED
    return found.pop() if found else Verdict.NO_CLEAR_DIFFERENCE


def render(c: Comparison, spec: str = ".3f") -> str:
    """The sentence for a comparison, e.g. "rude-marker rate: DPO lower than reference, -0.045 [-0.070, -0.020]
    (paired bootstrap over prompts, n=200, 95%)"; a tie says how large a difference the test would have found."""
    i = c.interval
    rate = c.null != 0.0
    value = i.format(spec) if rate else i.format(spec, signed=True)
    what = f"{c.metric}" + (f" (null {c.null:g})" if rate else f", {c.a} minus {c.b}")
    how = f"{i.method}, n={i.n}" + (f", {i.seeds} seeds" if i.seeds > 1 else "") + f", {100 * i.level:.4g}%"
    v = verdict(c)
    if v is Verdict.NO_CLEAR_DIFFERENCE:
        return (f"{what}: no clear difference between {c.a} and {c.b}, {value} ({how}); the test would detect "
                f"about {detectable_difference(i):{spec}} with 80% power")
    return f"{what}: {c.a} {v.value} than {c.b}, {value} ({how})"


def p_value(c: Comparison) -> float:
    """The two-sided p-value of "no difference" read off the comparison's interval as if it were normal around
    its midpoint: z = (midpoint - null) / se, se from the interval's width. Centred on the midpoint (not on the
    estimate, which a Wilson or percentile interval need not centre), p < 1 - level exactly when the interval
    excludes the null, so a family of one reads as `verdict`."""
    i = c.interval
    se = (i.high - i.low) / (2 * _z(i.level))
    mid = (i.low + i.high) / 2
    if se == 0:
        return 1.0 if mid == c.null else 0.0
    return math.erfc(abs(mid - c.null) / se / math.sqrt(2))


def holm(comparisons: list[Comparison], level: float = 0.95, p_values: list[float] | None = None) -> list[Verdict]:
    """Verdicts for a family of comparisons read together, with Holm's step-down correction (the family-wise
    error rate at most 1 - level): sort by p-value; the k-th smallest (k = 0, 1, ...) is a difference only if
    p <= (1 - level) / (m - k) and every smaller one was too. A difference keeps its direction; the rest read
    "no clear difference". The p-values are `p_value` of each comparison unless given (e.g. read off bootstrap
    replicates, where a family is large and its thresholds sit far in the tails)."""
    m, alpha = len(comparisons), 1 - level
    p = [p_value(c) for c in comparisons] if p_values is None else list(p_values)
    if len(p) != m:
        raise ValueError(f"{m} comparisons and {len(p)} p-values")
    order = sorted(range(m), key=lambda j: p[j])
    out = [Verdict.NO_CLEAR_DIFFERENCE] * m
    for k, j in enumerate(order):
        if p[j] > alpha / (m - k):
            break
        c = comparisons[j]
        out[j] = Verdict.HIGHER if (c.interval.low + c.interval.high) / 2 > c.null else Verdict.LOWER
    return out
