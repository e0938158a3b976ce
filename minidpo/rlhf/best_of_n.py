"""Best-of-N: sample N replies from pi_ref and keep the one the reward model likes best (no training at all),
and how far that moves from pi_ref."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def best_of_n_kl(n: int) -> float:
    """The usual value plotted for best-of-N, log n - (n - 1) / n (Stiennon et al. 2020, app. G): an upper bound
    on KL(best-of-n || pi_ref) (Beirami et al. 2024), not its exact value. The bound is approached only when pi_ref
    puts negligible mass on every single reply (e.g. long sampled replies) and rewards do not tie; replies with real
    mass lump outcomes together and lower the KL. With two equally likely replies, distinct rewards and n = 2,
    best-of-2 picks the better reply with probability 3/4: exact KL 0.131, bound 0.193 (tests/test_rlhf.py)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


def best_of_n_distribution(ref_probs: Tensor, rewards: Tensor, n: int) -> Tensor:
    """Exact distribution of the best of n i.i.d. draws from `ref_probs` (ties broken towards the lower index):
    P(i) = F(i)^n - F(i-)^n with F the CDF of ref_probs ordered by reward. For testing `best_of_n_kl`."""
    order = torch.argsort(rewards, stable=True)
    cdf = ref_probs[order].cumsum(0)
    below = torch.cat([cdf.new_zeros(1), cdf[:-1]])
    out = torch.empty_like(ref_probs)
    out[order] = cdf.pow(n) - below.pow(n)
    return out
