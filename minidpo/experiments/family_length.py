"""Reply length as a confound of the sentiment reward (notebook 10): VADER scores sentiment words, so reply length alone
can move it. The control: regress the true reward on reply length over the SFT model's own replies to the validation
prompts (`length_regression_stage`), and read every checkpoint with its reward minus slope x (its mean reply length -
the SFT model's) (`length_adjusted`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..stats import Interval
from ..utils import derive_seed
from .frontier import Task
from .frontier_verdicts import Curve

@dataclass(frozen=True)
class LengthRegression:
    """True reward = intercept + slope x reply tokens, least squares over the SFT model's replies to the validation
    prompts (`draws` per prompt), with a bootstrap interval of the slope over prompts."""

    slope: Interval  # reward per token, a percentile bootstrap over prompts
    intercept: float
    correlation: float
    n_replies: int
    n_prompts: int
    mean_tokens: float


def least_squares(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(slope, intercept) of y on x."""
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc * xc).sum()) if float((xc * xc).sum()) > 0 else 0.0
    return slope, float(y.mean() - slope * x.mean())


def length_regression_stage(task: Task, sft_model, draws: int) -> LengthRegression:
    """`draws` SFT replies per validation prompt, their true reward regressed on their length in tokens. Cached."""
    def sample() -> dict:
        prompts = task.prompts("validation")
        rewards, lengths = [], []
        for d in range(draws):
            texts, ids = task.sample(sft_model, prompts, seed=derive_seed(task.profile.seed, "length", d))
            rewards.append(task.true_reward(prompts, texts).tolist())
            lengths.append([len(x) for x in ids])
        return {"rewards": rewards, "lengths": lengths}  # (draws, prompts)

    raw = task.stage(f"length_regression_d{draws}", sample, {"draws": draws})
    r = torch.tensor(raw["rewards"], dtype=torch.float64)
    n = torch.tensor(raw["lengths"], dtype=torch.float64)
    slope, intercept = least_squares(n.flatten(), r.flatten())
    g = torch.Generator().manual_seed(task.profile.seed)
    reps = []
    for _ in range(2000):  # resample prompts with their draws (a prompt's replies are not independent)
        idx = torch.randint(0, r.shape[1], (r.shape[1],), generator=g)
        reps.append(least_squares(n[:, idx].flatten(), r[:, idx].flatten())[0])
    low, high = torch.quantile(torch.tensor(reps, dtype=torch.float64), torch.tensor([0.025, 0.975],
                                                                                     dtype=torch.float64)).tolist()
    corr = float(torch.corrcoef(torch.stack([n.flatten(), r.flatten()]))[0, 1]) if float(n.std()) > 0 else 0.0
    interval = Interval(slope, low, high, "percentile bootstrap over prompts (their draws together)", r.shape[1])
    return LengthRegression(interval, intercept, corr, r.numel(), r.shape[1], float(n.mean()))


def length_adjusted(curve: Curve, runs: list[dict], slope: float, sft_tokens: float) -> Curve:
    """`curve` with each (checkpoint, seed)'s rewards minus slope x (its mean reply length - the SFT model's)."""
    tokens = torch.tensor([[r["points"][c]["reply_tokens"] for r in runs] for c in range(len(curve.budgets))],
                          dtype=torch.float64)
    shift = (slope * (tokens - sft_tokens)).unsqueeze(-1)
    return Curve(curve.method, curve.knob, curve.value, curve.budgets, curve.rewards - shift, curve.log_ratios)
