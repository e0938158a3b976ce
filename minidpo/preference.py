"""Preference models: Bradley-Terry for pairs, Plackett-Luce for rankings.

Bradley-Terry (DPO paper, eq. 1) says item a beats item b with probability

    p(a > b) = exp(r_a) / (exp(r_a) + exp(r_b)) = sigma(r_a - r_b).

Only differences of rewards enter, so rewards are identified up to one additive constant.
`fit_bradley_terry` pins that constant by returning rewards with mean zero.

Plackett-Luce (DPO paper, eq. 18) scores a full ranking tau of K items, best first:

    p(tau) = prod_{k=1}^{K} exp(r_{tau_k}) / sum_{j>=k} exp(r_{tau_j}),

and for K = 2 it is exactly Bradley-Terry.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bradley_terry_prob(r_a: Tensor | float, r_b: Tensor | float) -> Tensor:
    """p(a beats b) = sigma(r_a - r_b)   (DPO paper, eq. 1)."""
    return torch.sigmoid(torch.as_tensor(r_a) - torch.as_tensor(r_b))


def bradley_terry_nll(r_winner: Tensor, r_loser: Tensor) -> Tensor:
    """Mean negative log-likelihood of observed comparisons, -mean log sigma(r_w - r_l)  (eq. 2).

    Uses logsigmoid, so it stays finite for any finite reward gap.
    """
    return -F.logsigmoid(r_winner - r_loser).mean()


def _check_comparisons(winners: Tensor, losers: Tensor, n_items: int) -> tuple[Tensor, Tensor]:
    winners = torch.as_tensor(winners, dtype=torch.long).flatten()
    losers = torch.as_tensor(losers, dtype=torch.long).flatten()
    if winners.shape != losers.shape:
        raise ValueError(f"winners and losers must have the same length, got {winners.numel()} and {losers.numel()}")
    if winners.numel() == 0:
        raise ValueError("no comparisons given: winners and losers are empty")
    for name, idx in (("winners", winners), ("losers", losers)):
        bad = (idx < 0) | (idx >= n_items)
        if bad.any():
            i = int(bad.nonzero()[0])
            raise ValueError(f"{name}[{i}] = {int(idx[i])} is not an item index in [0, {n_items})")
    if (winners == losers).any():
        i = int((winners == losers).nonzero()[0])
        raise ValueError(f"comparison {i} compares item {int(winners[i])} with itself")
    return winners, losers


def _reachable(start: int, edges_from: list[set[int]]) -> set[int]:
    seen, stack = {start}, [start]
    while stack:
        for j in edges_from[stack.pop()]:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


def fit_bradley_terry(
    winners: Tensor,
    losers: Tensor,
    n_items: int,
    l2: float = 0.0,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> Tensor:
    """Maximum-likelihood Bradley-Terry rewards from pairwise comparisons.

    Maximises sum_i log sigma(r[w_i] - r[l_i]) - (l2 / 2) ||r||^2 by Newton's method in float64.
    The likelihood only sees differences, so we pin the free constant with sum(r) = 0: the returned
    rewards have mean zero.

    With l2 = 0 the MLE exists (is finite) only if the "beats" graph is strongly connected: every item
    beats, through some chain, every other item (Zermelo 1929; Ford 1957). Otherwise an item that never
    loses would have reward +inf. We check this and raise (saying so apart from the case of groups never compared
    with each other, where the MLE is finite within each group but their gap is not determined); pass l2 > 0 (a
    Gaussian prior) to get a finite MAP estimate instead.

    Args:
        winners, losers: item indices, one entry per comparison (winners[i] beat losers[i]).
        n_items: number of items.
        l2: ridge strength; 0 gives the plain MLE.
    Returns:
        float64 tensor of shape (n_items,), mean zero.
    """
    winners, losers = _check_comparisons(winners, losers, n_items)
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    if l2 == 0:
        beats: list[set[int]] = [set() for _ in range(n_items)]
        beaten_by: list[set[int]] = [set() for _ in range(n_items)]
        for w, l in zip(winners.tolist(), losers.tolist()):
            beats[w].add(l)
            beaten_by[l].add(w)
        compared = [b | a for b, a in zip(beats, beaten_by)]
        if len(_reachable(0, compared)) < n_items:
            raise ValueError(
                "the Bradley-Terry MLE is not unique for these comparisons: some items are never compared, directly "
                "or through others, with the rest, so the gap between the groups is not determined (shifting one "
                "group fits equally well). Collect comparisons between the groups or pass l2 > 0."
            )
        if len(_reachable(0, beats)) < n_items or len(_reachable(0, beaten_by)) < n_items:
            raise ValueError(
                "the Bradley-Terry MLE does not exist for these comparisons: some group of items never loses "
                "to the rest (the 'beats' graph is not strongly connected), so its rewards would go to "
                "infinity. Collect more comparisons or pass l2 > 0."
            )

    ones = torch.ones(n_items, dtype=torch.float64)
    r = torch.zeros(n_items, dtype=torch.float64)
    for _ in range(max_iter):
        p = torch.sigmoid(r[winners] - r[losers])  # P(winner beats loser) under current r
        q, w = 1 - p, p * (1 - p)
        # Gradient and Hessian of the negative log-posterior plus (1/2)(sum r)^2; the extra term fixes
        # the free constant without changing any reward difference. Built by scatter-adds: memory is
        # O(comparisons + items^2), not O(comparisons * items).
        grad = torch.zeros(n_items, dtype=torch.float64).index_add_(0, winners, -q).index_add_(0, losers, q)
        grad += l2 * r + ones * r.sum()
        hess = torch.zeros(n_items, n_items, dtype=torch.float64)
        hess.index_put_((winners, winners), w, accumulate=True)
        hess.index_put_((losers, losers), w, accumulate=True)
        hess.index_put_((winners, losers), -w, accumulate=True)
        hess.index_put_((losers, winners), -w, accumulate=True)
        hess += l2 * torch.eye(n_items, dtype=torch.float64) + torch.outer(ones, ones)
        step = torch.linalg.solve(hess, grad)
        r = r - step
        if step.abs().max() < tol:
            break
    return r - r.mean()


def sample_bradley_terry_comparisons(
    rewards: Tensor, n_comparisons: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Draw random pairs of distinct items and the Bradley-Terry outcome of each comparison.

    Returns (winners, losers) index tensors. Useful to check that `fit_bradley_terry` recovers
    planted rewards.
    """
    g = torch.Generator().manual_seed(seed)
    n = rewards.numel()
    a = torch.randint(0, n, (n_comparisons,), generator=g)
    b = (a + torch.randint(1, n, (n_comparisons,), generator=g)) % n  # b != a
    a_wins = torch.rand(n_comparisons, generator=g, dtype=torch.float64) < bradley_terry_prob(
        rewards[a].double(), rewards[b].double()
    )
    return torch.where(a_wins, a, b), torch.where(a_wins, b, a)


def plackett_luce_logprob(scores: Tensor, ranking: Tensor, per_stage: bool = False) -> Tensor:
    """Log-probability of a full ranking under Plackett-Luce (DPO paper, eq. 18).

        log p(tau) = sum_k [ s_{tau_k} - logsumexp_{j >= k} s_{tau_j} ]

    Args:
        scores: (..., K) item scores (rewards).
        ranking: (..., K) permutation of 0..K-1, best item first.
        per_stage: return the K terms of the sum (stage k: the k-th item chosen among those left) instead.
    Returns:
        (...) log-probabilities, or (..., K) with `per_stage`.
    """
    scores = torch.as_tensor(scores)
    ranking = torch.as_tensor(ranking, dtype=torch.long)
    if ranking.shape != scores.shape:
        raise ValueError(f"ranking shape {tuple(ranking.shape)} must equal scores shape {tuple(scores.shape)}")
    k = scores.shape[-1]
    if not torch.equal(ranking.sort(dim=-1).values, torch.arange(k).expand_as(ranking)):
        raise ValueError(f"each ranking must be a permutation of 0..{k - 1}, got {ranking.tolist()}")
    ordered = scores.gather(-1, ranking)
    # logsumexp over the items still unranked at each stage: a reversed cumulative logsumexp.
    tail_lse = ordered.flip(-1).logcumsumexp(-1).flip(-1)
    return (ordered - tail_lse) if per_stage else (ordered - tail_lse).sum(-1)


def simulate_gumbel_choices(r_a: float, r_b: float, n: int, seed: int = 0) -> float:
    """Where Bradley-Terry comes from: each item has utility r + Gumbel(0, 1) noise and the larger one is
    chosen. Returns the fraction of n simulated choices won by a, which tends to sigma(r_a - r_b)
    (the difference of two standard Gumbels is logistic)."""
    g = torch.Generator().manual_seed(seed)
    gumbel = lambda: -torch.log(-torch.log(torch.rand(n, generator=g, dtype=torch.float64)))  # noqa: E731
    return float(((r_a + gumbel()) > (r_b + gumbel())).double().mean())


def bradley_terry_recovery_curve(planted: Tensor, comparison_counts: list[int], seeds: list[int]) -> dict[str, list]:
    """Max |fitted - planted| (both mean-zero) after n random comparisons, for each n.

    For each n and seed a data set is drawn; where its MLE does not exist, or is not unique because some items
    are never compared with the rest (see `fit_bradley_terry`), it is counted in `n_without_mle` and left out of
    the mean error (None when no data set had an MLE).
    """
    planted = planted.double() - planted.double().mean()
    out: dict[str, list] = {"n_comparisons": [], "max_abs_error": [], "n_without_mle": []}
    for n in comparison_counts:
        errs, missing = [], 0
        for seed in seeds:
            w, l = sample_bradley_terry_comparisons(planted, n, seed=seed)
            try:
                errs.append((fit_bradley_terry(w, l, planted.numel()) - planted).abs().max().item())
            except ValueError:
                missing += 1
        out["n_comparisons"].append(n)
        out["max_abs_error"].append(sum(errs) / len(errs) if errs else None)
        out["n_without_mle"].append(missing)
    return out


# ----------------------------------------------------------------------------- a learned reward model


def build_vocabulary(texts: list[str], min_count: int = 3, max_size: int = 2000) -> list[str]:
    """The most frequent lower-cased words of `texts` (at least `min_count` occurrences)."""
    from collections import Counter

    counts = Counter(w for t in texts for w in _words(t))
    return [w for w, c in counts.most_common(max_size) if c >= min_count]


def _words(text: str) -> list[str]:
    import re

    return re.findall(r"[a-z']+|[!?]", text.lower())


def bag_of_words(texts: list[str], vocabulary: list[str]) -> Tensor:
    """(len(texts), len(vocabulary)) word counts: the features of a linear reward model."""
    index = {w: i for i, w in enumerate(vocabulary)}
    out = torch.zeros(len(texts), len(vocabulary), dtype=torch.float64)
    for row, text in enumerate(texts):
        for w in _words(text):
            if w in index:
                out[row, index[w]] += 1
    return out


def fit_linear_bradley_terry(diffs: Tensor, l2: float, max_iter: int = 500) -> Tensor:
    """The one linear Bradley-Terry fit (eq. 2 with r(y) = w . f(y)): for feature differences d_i = f(winner_i) -
    f(loser_i), the w minimising

        mean_i -log sigma(w . d_i) + (l2 / 2) ||w||^2

    (the same ridge convention as `fit_bradley_terry`). The objective is strictly convex for l2 > 0, so it has one
    minimum; L-BFGS (float64) runs until the gradient's largest entry is below 1e-8, and a fit that does not get
    there raises."""
    diffs = diffs.double()
    w = torch.zeros(diffs.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.softplus(-(diffs @ w)).mean() + 0.5 * l2 * (w @ w)
        loss.backward()
        return loss

    for _ in range(20):
        opt.step(closure)
        closure()
        if w.grad.abs().max() < 1e-8:
            return w.detach()
    raise RuntimeError(f"the Bradley-Terry fit did not converge (largest gradient {w.grad.abs().max().item():.2e}, "
                       f"l2={l2})")


def fit_linear_reward_model(features_chosen: Tensor, features_rejected: Tensor, l2: float = 1e-2) -> Tensor:
    """A reward model r(y) = w . f(y) trained with the Bradley-Terry loss (eq. 2): logistic regression on the
    feature differences, `fit_linear_bradley_terry`. Returns w."""
    return fit_linear_bradley_terry(features_chosen - features_rejected, l2)
