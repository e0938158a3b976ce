"""The KL-regularised reward objective and its closed-form optimum, for discrete outputs.

For one prompt x with a finite set of responses y, RLHF maximises (DPO paper, eq. 3)

    J(pi) = E_{y ~ pi}[ r(x, y) ] - beta * KL( pi(.|x) || pi_ref(.|x) ).

Its unique maximiser is (eq. 4)

    pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x),     Z(x) = sum_y pi_ref(y|x) exp(r(x, y) / beta),

and the optimal value is J(pi*) = beta log Z(x). Inverting eq. 4 gives the implicit reward (eq. 5)

    beta log pi*(y|x) / pi_ref(y|x) = r(x, y) - beta log Z(x),

i.e. r up to a per-prompt constant. Higher beta keeps pi* closer to pi_ref.

Every function works on tensors whose last dimension indexes responses; leading dimensions index
prompts.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (it is the KL penalty weight), got {beta}")


def kl_divergence(p: Tensor, q: Tensor) -> Tensor:
    """KL(p || q) = sum_y p(y) log(p(y) / q(y)) over the last dim, with 0 log 0 = 0."""
    p, q = torch.as_tensor(p), torch.as_tensor(q)
    terms = torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p))
    return terms.sum(-1)


def kl_regularized_objective(policy_probs: Tensor, ref_probs: Tensor, rewards: Tensor, beta: float) -> Tensor:
    """J(pi) = E_pi[r] - beta KL(pi || pi_ref), one value per prompt   (eq. 3)."""
    _check_beta(beta)
    return (policy_probs * rewards).sum(-1) - beta * kl_divergence(policy_probs, ref_probs)


def log_partition_function(ref_probs: Tensor, rewards: Tensor, beta: float) -> Tensor:
    """log Z(x) = log sum_y pi_ref(y|x) exp(r(x,y)/beta), computed with logsumexp (no overflow)."""
    _check_beta(beta)
    return torch.logsumexp(torch.log(ref_probs) + rewards / beta, dim=-1)


def partition_function(ref_probs: Tensor, rewards: Tensor, beta: float) -> Tensor:
    """Z(x) = sum_y pi_ref(y|x) exp(r(x,y)/beta)   (eq. 4). May overflow for small beta; prefer the log."""
    return log_partition_function(ref_probs, rewards, beta).exp()


def kl_constrained_optimum(ref_probs: Tensor, rewards: Tensor, beta: float) -> Tensor:
    """pi*(y|x) = pi_ref(y|x) exp(r(x,y)/beta) / Z(x)   (eq. 4), normalised over the last dim.

    Computed as softmax(log pi_ref + r / beta), which is stable for any beta > 0.
    """
    _check_beta(beta)
    ref_probs, rewards = torch.as_tensor(ref_probs), torch.as_tensor(rewards)
    if ref_probs.shape != rewards.shape:
        raise ValueError(f"ref_probs {tuple(ref_probs.shape)} and rewards {tuple(rewards.shape)} must match")
    if (ref_probs < 0).any():
        raise ValueError("ref_probs must be non-negative")
    return torch.softmax(torch.log(ref_probs) + rewards / beta, dim=-1)


def implicit_reward(policy_probs: Tensor, ref_probs: Tensor, beta: float) -> Tensor:
    """beta log(pi(y|x) / pi_ref(y|x))   (eq. 5): equals r(x,y) - beta log Z(x) when pi = pi*."""
    _check_beta(beta)
    return beta * (torch.log(policy_probs) - torch.log(ref_probs))


def maximize_kl_objective(
    ref_probs: Tensor, rewards: Tensor, beta: float, steps: int = 200
) -> tuple[Tensor, list[float]]:
    """Solve max_pi J(pi) numerically, without the closed form: L-BFGS ascent on softmax logits.

    An independent check of `kl_constrained_optimum`. The policy is parameterised as softmax(theta),
    started at pi_ref, and optimised in float64. Returns the final policy and the mean objective after
    each L-BFGS iteration.
    """
    _check_beta(beta)
    ref = torch.as_tensor(ref_probs, dtype=torch.float64)
    r = torch.as_tensor(rewards, dtype=torch.float64)
    theta = torch.log(ref).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=20, tolerance_grad=1e-14, tolerance_change=1e-16,
                            line_search_fn="strong_wolfe")
    history: list[float] = []

    def negative_objective() -> Tensor:
        opt.zero_grad()
        loss = -kl_regularized_objective(torch.softmax(theta, -1), ref, r, beta).sum()
        loss.backward()
        return loss

    for _ in range(steps // 20 or 1):
        opt.step(negative_objective)
        with torch.no_grad():
            history.append(kl_regularized_objective(torch.softmax(theta, -1), ref, r, beta).mean().item())
    return torch.softmax(theta.detach(), -1), history


def reward_kl_frontier(ref_probs: Tensor, rewards: Tensor, betas: list[float]) -> dict[str, list[float]]:
    """Expected reward and KL(pi* || pi_ref) of the closed-form optimum for each beta (mean over prompts).

    As beta grows, pi* moves toward pi_ref: the KL falls and so does the reward.
    """
    out: dict[str, list[float]] = {"beta": [], "reward": [], "kl": []}
    for beta in betas:
        pi = kl_constrained_optimum(ref_probs, rewards, beta)
        out["beta"].append(float(beta))
        out["reward"].append(float((pi * rewards).sum(-1).mean()))
        out["kl"].append(float(kl_divergence(pi, ref_probs).mean()))
    return out
