"""Matched-KL verdicts on the frontier's curves (notebook 08): is DPO's true reward higher than PPO's (or PPO-GT's) at
the same KL, reading each method along its *own* curve?

A curve is one method at one knob (DPO at a beta, PPO at a kl_coef): its checkpoints in training order, each scored
on the same test prompts by every training seed, so a curve holds rewards and log-ratios of shape (checkpoints,
seeds, prompts). Its value at KL k is read along its own checkpoints: linear interpolation on the first segment (in
training order) whose two checkpoints' KLs bracket k; outside its checkpoints' KL range it has no value (never a
chord from the SFT model, never an extrapolation).

The plan, written before the run and stored in its results (`PLAN`):
- readings: for every DPO curve and every curve of the other method whose KL ranges overlap, one reading at each
  checkpoint of either curve whose KL lies in the overlap: that curve's reward there against the other curve read
  along its own checkpoints at that KL; the difference DPO minus other with a percentile interval from a bootstrap
  that resamples the prompts (the same draw for every curve: paired) and, within each curve, its seeds (the same
  draw for all of a curve's checkpoints: they are one run per seed), the KL re-read in every replicate;
- a reading counts only if at most 5% of its replicates leave a curve's range (else "inconclusive");
- the counted readings of one comparison (DPO vs PPO, DPO vs PPO-GT) are one family under Holm's correction at 95%,
  each p-value two-sided from its bootstrap replicates;
- the verdict: "DPO higher" if some reading is called higher and none lower, "DPO lower" the reverse, "mixed" if
  both, "no clear difference" if none; "no overlap" when no curve pair shares a KL range, "inconclusive" when
  readings exist but none counts; with each, the power: the median difference the counted readings would detect
  with 80% power at Holm's first threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..stats import Comparison, Interval, Verdict, combine, detectable_difference, holm

MAX_OUT_OF_RANGE = 0.05
N_BOOT = 10_000  # Holm's first threshold in a family of ~30 readings is 0.05 / 30: p-values must resolve ~1e-3
PLAN = {
    "max_out_of_range": MAX_OUT_OF_RANGE, "n_boot": N_BOOT, "power_level": 0.8, "level": 0.95,
    "primary_metric": "mean ground-truth reward per test prompt at matched sequence KL(pi || pi_SFT)",
    "comparisons": ["DPO vs PPO", "DPO vs PPO-GT"],
    "curves": "each method at each knob (DPO beta, PPO kl_coef) along its own checkpoints, seeds averaged",
    "reading": "at each checkpoint of either curve inside the two curves' KL overlap: its reward against the other "
               "curve read at its KL by linear interpolation on the first segment, in training order, that brackets "
               "it; no chord from SFT, no extrapolation",
    "interval": f"95% percentile bootstrap, {N_BOOT} replicates: prompts resampled together (paired), seeds within "
                "each curve",
    "counted": f"a reading whose replicates leave a curve's KL range more than {MAX_OUT_OF_RANGE:.0%} of the time is "
               "inconclusive and not counted",
    "decision": "Holm's correction over a comparison's counted readings at 95%, each p-value two-sided from the "
                "bootstrap replicates (twice the smaller share on either side of 0); 'DPO higher' if some reading is "
                "called higher and none lower, 'DPO lower' the reverse, 'mixed' if both, else 'no clear difference'; "
                "'no overlap' when no curves share a KL range, 'inconclusive' when readings exist but none counts",
    "power": "the median over counted readings of the difference detectable with 80% power at Holm's first "
             "threshold (1 - 0.95) / m",
    "known_biases": "a reading sets one curve's checkpoint against a straight line between the other curve's two "
                    "bracketing checkpoints; where that curve is concave the line lies under it, which favours the "
                    "curve supplying the checkpoint (each reading names its supplier in 'at'); three seeds per "
                    "curve make the seed resampling understate seed-to-seed variance",
    "chosen_on_validation": "the reward model's learning rate and epochs (validation pairs), PPO's learning rate "
                            "(a one-seed pilot on the validation prompts); nothing is chosen on the test prompts",
    "changes": "the pilot's rule was changed after the pilot and before any PPO curve was trained or any PPO policy "
               "scored on a test prompt: from the highest validation objective (which differed by less than its "
               "noise between learning rates) to the largest stable learning rate; results['ppo_pilot']['rule_change'] "
               "records what the first rule chose. The second rule (the largest learning rate stable over a "
               "pilot of plan.ppo_pilot_earlier_iterations iterations) was changed after the run it chose for had "
               "been scored on the test prompts, because most of that run's PPO and PPO-GT runs, on seeds and a "
               "kl_coef the one-seed pilot does not run, left the stability threshold: the pilot now chooses under "
               "plan.ppo_pilot_approxkl_fraction of the threshold, and runs as long as the curves; "
               "results['ppo_pilot']['second_rule_change'] records what the second rule would choose",
    "earlier_rule": "the committed run before issue 28 read one PPO point per method against DPO's chord from the SFT "
                    "point, and its rule was changed after the first result (disclosed here and in notebook 08)",
}


@dataclass(frozen=True)
class Curve:
    """One method at one knob along its checkpoints: rewards and log-ratios of shape (checkpoints, seeds, prompts)."""

    method: str
    knob: str  # "beta", "kl_coef"
    value: float
    budgets: tuple
    rewards: torch.Tensor
    log_ratios: torch.Tensor

    def __post_init__(self):
        if self.rewards.dim() != 3 or self.rewards.shape != self.log_ratios.shape:
            raise ValueError(f"{self.label}: rewards and log-ratios must both be (checkpoints, seeds, prompts), got "
                             f"{tuple(self.rewards.shape)} and {tuple(self.log_ratios.shape)}")
        if self.rewards.shape[0] != len(self.budgets):
            raise ValueError(f"{self.label}: {len(self.budgets)} budgets for {self.rewards.shape[0]} checkpoints")

    @property
    def label(self) -> str:
        return f"{self.method} {self.knob}={self.value:g}"

    @property
    def kl(self) -> torch.Tensor:
        return self.log_ratios.double().mean((1, 2))

    @property
    def reward(self) -> torch.Tensor:
        return self.rewards.double().mean((1, 2))


def curve_from_runs(runs: list[dict], knob: str) -> Curve:
    """The seeds of one method at one knob (runs of `frontier_seeds`, scored at the same checkpoints) as a Curve."""
    budgets = [p["budget"] for p in runs[0]["points"]]
    if any([p["budget"] for p in r["points"]] != budgets for r in runs):
        raise ValueError(f"{runs[0]['method']} {knob}={runs[0][knob]:g}: the seeds were scored at different "
                         "checkpoints")
    def stack(key: str) -> torch.Tensor:  # (checkpoints, seeds, prompts)
        return torch.tensor([[run["points"][c][key] for run in runs] for c in range(len(budgets))],
                            dtype=torch.float64)

    return Curve(runs[0]["method"], knob, runs[0][knob], tuple(budgets), stack("rewards"), stack("log_ratios"))


def read_along(kl: torch.Tensor, reward: torch.Tensor, k: float) -> torch.Tensor:
    """A curve's reward at KL `k`, read along its own checkpoints: `kl` and `reward` are (..., checkpoints) in
    training order; the value is the linear interpolation on the first segment whose two KLs bracket `k`, NaN where
    no segment does (outside the curve's range: no extrapolation)."""
    out = torch.full(kl.shape[:-1], float("nan"), dtype=torch.float64)
    for c in range(kl.shape[-1] - 1):
        k0, k1, r0, r1 = kl[..., c], kl[..., c + 1], reward[..., c], reward[..., c + 1]
        lo, hi = torch.minimum(k0, k1), torch.maximum(k0, k1)
        inside = (lo <= k) & (k <= hi) & torch.isnan(out)
        value = torch.where(k1 != k0, r0 + (r1 - r0) * (k - k0) / torch.where(k1 != k0, k1 - k0, 1.0), r0)
        out = torch.where(inside, value, out)
    return out


def _replicate_means(curves: list[Curve], n_boot: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each curve's (KL, reward) per replicate and checkpoint, (n_boot, checkpoints): prompts resampled with one
    draw for every curve (paired), seeds resampled within each curve (one draw for all its checkpoints)."""
    g = torch.Generator().manual_seed(seed)
    n_prompts = curves[0].rewards.shape[2]
    if any(c.rewards.shape[2] != n_prompts for c in curves):
        raise ValueError("every curve must be scored on the same prompts")
    idx = torch.randint(0, n_prompts, (n_boot, n_prompts), generator=g)
    w_prompts = torch.zeros(n_boot, n_prompts, dtype=torch.float64).scatter_add_(
        1, idx, torch.ones_like(idx, dtype=torch.float64)) / n_prompts
    out = []
    for c in curves:
        n_seeds = c.rewards.shape[1]
        sidx = torch.randint(0, n_seeds, (n_boot, n_seeds), generator=g)
        w_seeds = torch.zeros(n_boot, n_seeds, dtype=torch.float64).scatter_add_(
            1, sidx, torch.ones_like(sidx, dtype=torch.float64)) / n_seeds
        mean = lambda x: torch.einsum("csp,bs,bp->bc", x.double(), w_seeds, w_prompts)  # noqa: E731
        out.append((mean(c.log_ratios), mean(c.rewards)))
    return out


@dataclass(frozen=True)
class Reading:
    """DPO's curve and another method's read at one KL: the comparison DPO minus other, where the KL came from, and
    how often the bootstrap left a curve's range."""

    dpo: str
    other: str
    kl: float
    at: str  # the curve whose checkpoint gave the KL, and which checkpoint
    dpo_reward: float
    other_reward: float
    comparison: Comparison
    out_of_range: int
    n_boot: int
    p_value: float  # two-sided, from the replicates that stayed in range

    @property
    def conclusive(self) -> bool:
        return self.out_of_range <= MAX_OUT_OF_RANGE * self.n_boot

    def as_dict(self) -> dict:
        return {"dpo": self.dpo, "other": self.other, "kl": self.kl, "at": self.at, "dpo_reward": self.dpo_reward,
                "other_reward": self.other_reward, "comparison": self.comparison.as_dict(),
                "out_of_range": self.out_of_range, "n_boot": self.n_boot, "p_value": self.p_value,
                "conclusive": self.conclusive}


def replicate_interval(replicates: torch.Tensor, estimate: float, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of the replicates that stayed in range; with none (a reading never counted), the
    estimate itself, so that the reading is still reported."""
    if not len(replicates):
        return estimate, estimate
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(replicates, q).tolist()
    return low, high


def bootstrap_p_value(replicates: torch.Tensor) -> float:
    """Two-sided p-value of "no difference" from bootstrap replicates of a difference: twice the smaller share of
    replicates on either side of 0 (at most 1)."""
    if not len(replicates):
        return 1.0
    below, above = (replicates <= 0).double().mean().item(), (replicates >= 0).double().mean().item()
    return min(1.0, 2 * min(below, above))


@dataclass(frozen=True)
class FrontierVerdict:
    """DPO against one other method over all their curves: the readings, Holm's verdict on each counted one, the
    verdict and the test's power."""

    other: str
    readings: tuple[Reading, ...]
    holm_verdicts: tuple[Verdict | None, ...]  # None: inconclusive, not counted
    verdict: str  # "DPO higher", "DPO lower", "mixed", "no clear difference", "no overlap", "inconclusive"
    detectable: float | None  # the median difference the counted readings detect with 80% power

    def as_dict(self) -> dict:
        return {"other": self.other, "verdict": self.verdict, "detectable_difference": self.detectable,
                "readings": [{**r.as_dict(), "holm_verdict": None if v is None else v.value}
                             for r, v in zip(self.readings, self.holm_verdicts)],
                "counted": sum(v is not None for v in self.holm_verdicts)}


def matched_kl_readings(dpo: list[Curve], others: list[Curve], n_boot: int = N_BOOT, seed: int = 0,
                        level: float = 0.95, metric: str = "mean true reward") -> list[Reading]:
    """Every reading of the plan between DPO's curves and another method's (see the module docstring)."""
    curves = [*dpo, *others]
    reps = _replicate_means(curves, n_boot, seed)
    n_prompts = curves[0].rewards.shape[2]
    readings = []
    for i, a in enumerate(dpo):
        for j, b in enumerate(others, start=len(dpo)):
            lo = max(a.kl.min().item(), b.kl.min().item())
            hi = min(a.kl.max().item(), b.kl.max().item())
            if lo > hi:
                continue
            # each reading sits at one curve's own checkpoint: that curve's value is the checkpoint's reward, the
            # other curve is read along its checkpoints at the checkpoint's KL (in every replicate, at the
            # replicate's KL)
            for src, dst, si, di, sign in ((a, b, i, j, 1.0), (b, a, j, i, -1.0)):
                for c, budget in enumerate(src.budgets):
                    k = src.kl[c].item()
                    if not lo <= k <= hi:
                        continue
                    value, read = src.reward[c].item(), read_along(dst.kl, dst.reward, k).item()
                    rep = sign * (reps[si][1][:, c] - read_along(reps[di][0], reps[di][1], reps[si][0][:, c]))
                    kept = rep[~torch.isnan(rep)]
                    ra, rb = (value, read) if sign > 0 else (read, value)
                    low, high = replicate_interval(kept, ra - rb, level)
                    interval = Interval(ra - rb, low, high, "paired bootstrap over prompts, seeds within each curve",
                                        n_prompts, min(a.rewards.shape[1], b.rewards.shape[1]), level)
                    comparison = Comparison(f"{metric} at KL {k:.2f}", a.label, b.label, interval)
                    readings.append(Reading(a.label, b.label, k, f"{src.label} at {budget:g}", ra, rb, comparison,
                                            n_boot - len(kept), n_boot, bootstrap_p_value(kept)))
    return readings


def frontier_verdict(other: str, readings: list[Reading], level: float = 0.95) -> FrontierVerdict:
    """The plan's decision over one comparison's readings (see the module docstring)."""
    return joint_verdicts({other: readings}, level)[other]


def joint_verdicts(readings: dict[str, list[Reading]], level: float = 0.95) -> dict[str, FrontierVerdict]:
    """The plan's decision for several comparisons at once, {name: its readings}, with *one* Holm family over every
    counted reading of all of them (notebook 10: DPO against each arm of its family); each comparison then gets
    its word from its own readings, and the power at the family's first threshold."""
    names = list(readings)
    counted = [(name, i) for name in names for i, r in enumerate(readings[name]) if r.conclusive]
    flat = [readings[name][i] for name, i in counted]
    called = dict(zip(counted, holm([r.comparison for r in flat], level, [r.p_value for r in flat]) if flat else ()))
    first_step = 1 - (1 - level) / max(1, len(flat))  # Holm's first threshold: the level a reading must clear
    out = {}
    for name in names:
        verdicts = tuple(called.get((name, i)) for i in range(len(readings[name])))
        mine = [v for v in verdicts if v is not None]
        if not readings[name]:
            word = "no overlap"
        elif not mine:
            word = "inconclusive"
        else:
            v = combine(mine)
            word = f"DPO {v.value}" if v in (Verdict.HIGHER, Verdict.LOWER) else v.value
        detect = sorted(detectable_difference(r.comparison.interval, test_level=first_step)
                        for r in readings[name] if r.conclusive)
        out[name] = FrontierVerdict(name, tuple(readings[name]), verdicts, word,
                                    detect[len(detect) // 2] if detect else None)
    return out


def matched_kl_verdicts(dpo: list[Curve], others: dict[str, list[Curve]], seed: int = 0) -> dict[str, FrontierVerdict]:
    """DPO against each other method: {name: FrontierVerdict}."""
    return {name: frontier_verdict(name, matched_kl_readings(dpo, curves, seed=seed))
            for name, curves in others.items()}
