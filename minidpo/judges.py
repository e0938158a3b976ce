"""Instruments for the instruction experiment: a preference judge on frozen Sentence-BERT embeddings, its
validation (held-out accuracy, probes of what fools it), and the guard metrics printed beside it.

**Preference judge.** A Bradley-Terry model (eq. 1 of the DPO paper) whose reward is linear in features of
the frozen embeddings e(.) (unit vectors) of the prompt x and the reply y,

    r(x, y) = w . phi(x, y),   phi(x, y) = [ e(y),  e(x) * e(y) ],     p(y_1 > y_2 | x) = sigma(r(x, y_1) - r(x, y_2)),

fitted by L2-regularised maximum likelihood on the judge split's pairs (`preference.fit_linear_bradley_terry`,
the one linear Bradley-Terry fit: mean log-loss + (l2 / 2) |w|^2). The element-wise product lets the
reward depend on how the reply relates to its prompt; *relevance negatives* (the prompt's own chosen reply
against the chosen reply of another prompt, the own one preferred) teach it that an off-topic reply loses,
however polite. It is an instrument, so it is validated before use: accuracy on held-out pairs (the positive
control: chosen beats rejected), and probes whose right answer we know.

**Guard metrics**, because a learned judge alone can be fooled: marker rates from lexicons derived from the
data's own rewrites, reply length, a length-controlled win rate (AlpacaEval 2's idea: regress the outcome on
the length difference, read it at zero difference) and content fidelity (does the reply still carry the
original answer).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch

from .evaluate import embed
from .preference import fit_linear_bradley_terry
from .stats import Interval, wilson
from .utils import derive_seed


# ----------------------------------------------------------------------------- the preference judge


class CachedEncoder:
    """A Sentence-BERT encoder that embeds each distinct text once (the judges score the same replies in many
    comparisons); `encode` takes and returns what `SentenceTransformer.encode` does for a list of texts."""

    def __init__(self, encoder):
        self.encoder, self.cache = encoder, {}

    def encode(self, texts: list[str], **kwargs) -> torch.Tensor:
        opts = tuple(sorted(kwargs.items()))
        new = [t for t in dict.fromkeys(texts) if (t, opts) not in self.cache]
        if new:
            for t, e in zip(new, self.encoder.encode(new, **kwargs)):
                self.cache[t, opts] = e
        return torch.stack([torch.as_tensor(self.cache[t, opts]) for t in texts])


def judge_features(prompt_emb: torch.Tensor, reply_emb: torch.Tensor) -> torch.Tensor:
    """phi(x, y) = [e(y), sqrt(d) e(x) * e(y)] for unit embeddings (rows) of size d, in float64. The product
    block is scaled by sqrt(d) so both blocks have norm ~1 and one L2 weight treats them alike."""
    return torch.cat([reply_emb, reply_emb.shape[-1] ** 0.5 * prompt_emb * reply_emb], -1).double()


@dataclass
class PreferenceJudge:
    """A fitted judge: `reward(x, y)` and `prefers(x, a, b)` (1 when a wins, 0 when b wins, 1/2 on a tie)."""

    encoder: object
    weights: torch.Tensor
    l2: float

    def reward(self, prompts: list[str], replies: list[str]) -> torch.Tensor:
        return judge_features(embed(self.encoder, prompts), embed(self.encoder, replies)) @ self.weights

    def prefers(self, prompts: list[str], a: list[str], b: list[str]) -> torch.Tensor:
        ra, rb = self.reward(prompts, a), self.reward(prompts, b)
        return (ra > rb).double() + 0.5 * (ra == rb).double()

    def accuracy(self, prompts: list[str], chosen: list[str], rejected: list[str]) -> float:
        return float(self.prefers(prompts, chosen, rejected).mean())


def relevance_negatives(n: int, seed: int) -> list[int]:
    """For each of n >= 2 prompts, the index of another prompt whose chosen reply serves as an off-topic reply
    (a random derangement: no prompt gets its own)."""
    if n < 2:
        raise ValueError(f"relevance negatives need at least 2 prompts, got {n}")
    g = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, n, (1,), generator=g).item()
    perm = torch.randperm(n, generator=g)
    other = torch.empty(n, dtype=torch.long)
    other[perm] = perm.roll(shift)  # a cyclic shift of a random order never maps an index to itself
    return other.tolist()


def fit_preference_judge(
    encoder, prompts: list[str], chosen: list[str], rejected: list[str], l2: float = 2e-3, seed: int = 0,
    resample: bool = False,
) -> PreferenceJudge:
    """Fit the judge on (prompt, chosen, rejected) pairs plus one relevance negative per prompt.
    `resample=True` fits on a bootstrap resample of the pairs (a refit, for the spread of what it measures)."""
    n = len(prompts)
    idx = list(range(n))
    if resample:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, n, (n,), generator=g).tolist()
    ex, ec, er = embed(encoder, prompts), embed(encoder, chosen), embed(encoder, rejected)
    other = relevance_negatives(n, seed)
    ex, ec, er, eo = ex[idx], ec[idx], er[idx], ec[[other[i] for i in idx]]
    diffs = torch.cat([judge_features(ex, ec) - judge_features(ex, er),
                       judge_features(ex, ec) - judge_features(ex, eo)])
    return PreferenceJudge(encoder, fit_linear_bradley_terry(diffs, l2), l2)


# ----------------------------------------------------------------------------- probes and guard metrics

RUDE_PREFIX = "Obviously, "
RUDE_SUFFIX = " Duh."
CANNED_OPENER = "I'd be happy to help you with that. "


def judge_probes(judge: PreferenceJudge, prompts: list[str], answers: list[str],
                 seed: int = 0) -> dict[str, Interval | float]:
    """What fools the judge: the share of prompts on which it prefers an edited answer over the answer itself
    (1/2 = indifferent), each with a bootstrap interval, and the correlation of its reward with length.

    `answers` should be neutral, correct replies (the data's original `output`). Edits: a canned polite opener
    (the data's polite rewrites use such openers, so a judge *of this data* may fairly like it: the probe says
    by how much), a rude prefix and a rude suffix (should lose), the answer written twice (adds nothing),
    and the answer to *another* prompt, politely opened (off-topic: should lose). Each rate is an `Interval`
    (Wilson score, 95%: it does not collapse to a point at 0 of n)."""
    other = relevance_negatives(len(prompts), derive_seed(seed, "probe: off-topic answers"))
    edits = {
        "canned_opener": [CANNED_OPENER + a for a in answers],
        "rude_prefix": [RUDE_PREFIX + a[:1].lower() + a[1:] for a in answers],
        "rude_suffix": [a + RUDE_SUFFIX for a in answers],
        "duplicated": [a + " " + a for a in answers],
        "polite_off_topic": [CANNED_OPENER + answers[j] for j in other],
    }
    out = {}
    for name, edited in edits.items():
        out[name] = wilson(float(judge.prefers(prompts, edited, answers).sum()), len(answers))
    rewards = judge.reward(prompts, answers)
    words = torch.tensor([len(a.split()) for a in answers], dtype=torch.float64)
    out["reward_length_correlation"] = float(torch.corrcoef(torch.stack([rewards, words]))[0, 1])
    return out


MARKER_CLAUSE = re.compile(r"[.,;:!?()\"\n]+")  # what separates clauses: no marker pair spans one
MARKER_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")  # a word as the lexicons read it


def _ngrams(text: str) -> set[str]:
    """Lower-case words and the pairs of adjacent words within a clause (no pair across punctuation)."""
    out: set[str] = set()
    for segment in MARKER_CLAUSE.split(text.lower()):
        words = MARKER_WORD.findall(segment)
        out |= set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}
    return out


def derive_markers(originals: list[str], rewrites: list[str], others: list[str] = (), min_pairs: int = 5,
                   top_k: int = 40, ratio: float = 50.0) -> list[str]:
    """Word 1-2-grams that a rewrite adds to its original, from pairs of (original, rewrite).

    Counted once per pair; kept when added in at least `min_pairs` pairs and at least `ratio` times rarer (per
    text) among the originals and the `others` (texts without the contrast, e.g. the other half's replies)
    than among the rewrites, so generic words ("it", "but") drop out; the `top_k` most often added, longer
    first among equals. This reads the data's own contrast (rude rewrites add "obviously", polite ones
    "happy to") instead of a hand-written list."""
    added, seen = Counter(), Counter()
    for o, r in zip(originals, rewrites):
        added.update(_ngrams(r) - _ngrams(o))
    negatives = [*originals, *others]
    for text in negatives:
        seen.update(_ngrams(text))
    keep = [m for m, c in added.items()
            if c >= min_pairs and seen[m] / max(1, len(negatives)) <= c / max(1, len(rewrites)) / ratio]
    keep.sort(key=lambda m: (-added[m], -len(m), m))
    return keep[:top_k]


def marker_rate(replies: list[str], markers: list[str]) -> float:
    """Share of replies that contain at least one marker, read with the same words and word pairs that
    `derive_markers` counted."""
    wanted = set(markers)
    return sum(bool(_ngrams(r) & wanted) for r in replies) / max(1, len(replies))


def strip_opener(reply: str, markers: list[str]) -> str:
    """The reply without a leading canned sentence: a first sentence of at most 12 words that holds a polite
    marker ("I'd be happy to help you with that.") is removed, so fidelity scores what follows."""
    m = re.match(r"\s*([^.!?]*[.!?])\s+", reply)
    if m and len(m.group(1).split()) <= 12 and marker_rate([m.group(1)], markers) > 0:
        return reply[m.end():]
    return reply


def content_fidelity(encoder, replies: list[str], originals: list[str], polite_markers: list[str]) -> torch.Tensor:
    """Per reply: cosine of the Sentence-BERT embeddings of the reply (canned opener stripped) and the data's
    original answer. High: the reply still carries the answer."""
    stripped = [strip_opener(r, polite_markers) for r in replies]
    return (embed(encoder, stripped) * embed(encoder, originals)).sum(-1).double()


@dataclass(frozen=True)
class LengthControlledRate:
    """The win rate at equal length (an `Interval`) and the fitted slope of the outcome's log-odds per spread of
    the length difference."""

    rate: Interval
    length_slope: float


def length_controlled_rate(outcomes: torch.Tensor, length_diff: torch.Tensor, seed: int = 0,
                           seeds: int = 1) -> LengthControlledRate:
    """AlpacaEval 2's length control, for paired outcomes (1 win, 0 loss, 1/2 tie) and word-count differences
    d = |a| - |b|: fit p(win) = sigma(theta_0 + theta_1 d / s) (s the spread of d) by maximum likelihood and
    report sigma(theta_0), the win rate at equal length, with a bootstrap interval over prompts (`seeds`: the
    training seeds the outcomes pool)."""
    y = torch.as_tensor(outcomes, dtype=torch.float64)
    d = torch.as_tensor(length_diff, dtype=torch.float64)
    s = float(d.abs().mean()) or 1.0

    def fit(yy, dd):
        x = torch.stack([torch.ones_like(dd), dd / s], 1)
        theta = torch.zeros(2, dtype=torch.float64)
        for _ in range(50):  # Newton's method on the (ridge-stabilised) logistic likelihood
            p = torch.sigmoid(x @ theta)
            grad = x.T @ (yy - p) - 1e-3 * theta
            hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-3 * torch.eye(2, dtype=torch.float64)
            step = torch.linalg.solve(hess, grad)
            theta = theta + step
            if step.abs().max() < 1e-10:
                break
        return float(torch.sigmoid(theta[0])), float(theta[1])

    rate, slope = fit(y, d)
    g = torch.Generator().manual_seed(seed)
    boots = [fit(y[i], d[i])[0] for i in torch.randint(0, len(y), (1000, len(y)), generator=g)]
    lo, hi = torch.quantile(torch.tensor(boots, dtype=torch.float64),
                            torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return LengthControlledRate(Interval(rate, lo, hi, "bootstrap over prompts of the length-controlled fit", len(y),
                                         seeds), slope)

