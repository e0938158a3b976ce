"""DPO on a tabular policy: the whole theory on a problem small enough to solve exactly.

A "language model" here is a table: for each of P prompts a softmax over Y responses,
pi_theta(y|x) = softmax(theta[x])_y. With a known reward r(x, y) we can

1. sample preference pairs the paper's way (two responses from pi_ref, labelled by Bradley-Terry on r),
2. train the table with any loss of `minidpo.losses.dpo_loss` on those pairs, and
3. compare the result with the closed-form optimum pi* = pi_ref exp(r / beta) / Z of
   `minidpo.kl_optimum` — which DPO should reach as the data grows, since the DPO loss is the
   Bradley-Terry likelihood of the implicit reward beta log pi / pi_ref (DPO paper, eq. 7 and Thm. 1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .losses import dpo_loss


def sample_preference_pairs(
    ref_probs: Tensor, rewards: Tensor, n_pairs: int, seed: int = 0, deterministic: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """n_pairs of (prompt, preferred response, dispreferred response).

    Prompts are uniform; the two responses are distinct draws from pi_ref(.|x); the first is preferred
    with probability sigma(r(x, y1) - r(x, y2)) (Bradley-Terry, eq. 1), or always when it has the higher
    reward if `deterministic`. Returns index tensors x, y_w, y_l.
    """
    g = torch.Generator().manual_seed(seed)
    ref = torch.as_tensor(ref_probs, dtype=torch.float64)
    n_prompts = ref.shape[0]
    x = torch.randint(0, n_prompts, (n_pairs,), generator=g)
    y1 = torch.multinomial(ref[x], 1, generator=g).squeeze(1)
    rest = ref[x].scatter(1, y1[:, None], 0.0)  # the second response differs from the first
    y2 = torch.multinomial(rest, 1, generator=g).squeeze(1)
    r = torch.as_tensor(rewards, dtype=torch.float64)
    gap = r[x, y1] - r[x, y2]
    first_wins = (gap > 0 if deterministic
                  else torch.rand(n_pairs, generator=g, dtype=torch.float64) < torch.sigmoid(gap))
    return x, torch.where(first_wins, y1, y2), torch.where(first_wins, y2, y1)


def train_tabular_policy(
    ref_probs: Tensor,
    x: Tensor,
    y_w: Tensor,
    y_l: Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    steps: int = 300,
    optimizer: str = "lbfgs",
    lr: float = 0.1,
) -> tuple[Tensor, dict[str, list[float]]]:
    """Minimise the mean preference loss over the pairs for a softmax table started at pi_ref.

    `optimizer="lbfgs"` (float64, strong Wolfe line search) solves to high precision; `"adam"` takes
    `steps` plain steps at `lr`, which shows how a loss behaves along the way (e.g. unbounded growth).
    Returns the policy's probabilities (P, Y) and the history of the loss and the mean log-ratio margin
    h = log pi(y_w)/pi_ref(y_w) - log pi(y_l)/pi_ref(y_l).
    """
    log_ref = torch.log(torch.as_tensor(ref_probs, dtype=torch.float64))
    theta = log_ref.clone().requires_grad_(True)
    history: dict[str, list[float]] = {"loss": [], "margin": []}
    # A table has at most P * Y * (Y - 1) distinct pairs: sum the loss over distinct (x, y_w, y_l) weighted by
    # how often each occurs. Exactly the mean over all pairs, at a cost independent of their number.
    triples, counts = torch.unique(torch.stack([x, y_w, y_l], 1), dim=0, return_counts=True)
    ux, uw, ul = triples.unbind(1)
    weights = counts.double() / counts.sum()

    def objective() -> tuple[Tensor, Tensor]:
        logp = torch.log_softmax(theta, -1)
        out = dpo_loss(logp[ux, uw], logp[ux, ul], log_ref[ux, uw], log_ref[ux, ul], beta, loss_type,
                       label_smoothing=label_smoothing)
        margin = ((out.chosen_rewards - out.rejected_rewards) * weights).sum() / beta
        return (out.losses * weights).sum(), margin

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=20, tolerance_grad=1e-12, tolerance_change=1e-14,
                                line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            loss, _ = objective()
            loss.backward()
            return loss

        for _ in range(max(1, steps // 20)):
            opt.step(closure)
            loss, margin = objective()
            history["loss"].append(loss.item())
            history["margin"].append(margin.item())
    elif optimizer == "adam":
        opt = torch.optim.Adam([theta], lr=lr)
        for _ in range(steps):
            loss, margin = objective()
            opt.zero_grad()
            loss.backward()
            opt.step()
            history["loss"].append(loss.item())
            history["margin"].append(margin.item())
    else:
        raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    return torch.softmax(theta.detach(), -1), history


def implicit_reward_shift(policy_probs: Tensor, ref_probs: Tensor, rewards: Tensor, beta: float) -> Tensor:
    """beta log(pi/pi_ref) - r for every (prompt, response): constant within a prompt iff the policy's
    implicit reward equals r up to a per-prompt shift (eq. 5)."""
    return beta * (torch.log(policy_probs) - torch.log(ref_probs)) - rewards


def dpo_convergence_curve(
    ref_probs: Tensor, rewards: Tensor, beta: float, pair_counts: list[int], seeds: list[int]
) -> dict[str, list[float]]:
    """Max |pi_DPO - pi*| after training on n pairs, averaged over seeds, for each n."""
    from .kl_optimum import kl_constrained_optimum

    target = kl_constrained_optimum(ref_probs, rewards, beta)
    out: dict[str, list[float]] = {"n_pairs": [], "max_abs_error": []}
    for n in pair_counts:
        errors = []
        for seed in seeds:
            x, yw, yl = sample_preference_pairs(ref_probs, rewards, n, seed=seed)
            pi, _ = train_tabular_policy(ref_probs, x, yw, yl, beta)
            errors.append((pi - target).abs().max().item())
        out["n_pairs"].append(n)
        out["max_abs_error"].append(sum(errors) / len(errors))
    return out
