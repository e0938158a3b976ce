"""PPO's maths as pure tensor code, and PPO on a one-token bandit whose optimum is known in closed form.

    per-token rewards  r_t = -kl_coef (log pi - log pi_ref)(y_t) + [t = last] r_phi(x, y)   (the objective of DPO eq. 3)
    advantages         GAE (Schulman et al. 2016) on a value estimate
    policy loss        the clipped surrogate (Schulman et al. 2017), plus a clipped value loss

`train_bandit_ppo` uses exactly these functions on a softmax policy over K answers; its optimum is
pi*(y) = pi_ref(y) exp(r(y)/kl_coef) / Z (notebook 02), which the tests check it reaches.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / std over the masked entries (advantage normalisation)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def kl_penalized_rewards(scores: Tensor, logps: Tensor, ref_logps: Tensor, mask: Tensor,
                         kl_coef: float) -> tuple[Tensor, Tensor]:
    """Per-token rewards of one rollout batch, (B, T) with replies left-aligned and `mask` 1 on real tokens:

        r_t = -kl_coef * (log pi(y_t|x,y_<t) - log pi_ref(y_t|x,y_<t))  +  [t = last token] * r_phi(x, y)

    Summed over t this is r_phi - kl_coef * log(pi(y|x)/pi_ref(y|x)), whose expectation under pi is the
    objective of eq. 3. Also returns the per-token log-ratio (the KL estimate, k1)."""
    log_ratio = (logps - ref_logps) * mask
    rewards = -kl_coef * log_ratio
    last = mask.sum(1).long() - 1
    if (last < 0).any():
        raise ValueError("every reply needs at least one token")
    rewards[torch.arange(len(rewards), device=rewards.device), last] += scores.to(rewards.dtype)
    return rewards, log_ratio


def generalized_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0,
                           lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """GAE (Schulman et al. 2016): A_t = sum_l (gamma lam)^l delta_{t+l}, delta_t = r_t + gamma V_{t+1} - V_t,
    with V = 0 after the last token. Returns (advantages, returns = advantages + values), zero where masked."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        alive = mask[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        next_value = values[:, t + 1] * alive if t + 1 < rewards.shape[1] else 0.0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * alive * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def ppo_loss(
    logps: Tensor, old_logps: Tensor, advantages: Tensor, values: Tensor, old_values: Tensor, returns: Tensor,
    mask: Tensor, cliprange: float = 0.2, cliprange_value: float = 0.2, vf_coef: float = 0.1,
) -> tuple[Tensor, dict[str, float]]:
    """Clipped surrogate + clipped value loss, token means over `mask`:

        L_pi = E_t max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps)),  rho_t = pi(y_t|.) / pi_old(y_t|.)
        L_V  = E_t 1/2 max((V_t - G_t)^2, (V_old,t + clip(V_t - V_old,t, -c, c) - G_t)^2)
        L    = L_pi + vf_coef * L_V
    """
    ratio = torch.exp(logps - old_logps)
    pg = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - cliprange, 1 + cliprange))
    clipped_values = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    vf = 0.5 * torch.max((values - returns) ** 2, (clipped_values - returns) ** 2)
    pg_loss, vf_loss = masked_mean(pg, mask), masked_mean(vf, mask)
    with torch.no_grad():
        stats = {
            "loss/policy_avg": pg_loss.item(),
            "loss/value_avg": vf_loss.item(),
            "policy/clipfrac_avg": masked_mean(((ratio - 1).abs() > cliprange).float(), mask).item(),
            "policy/approxkl_avg": masked_mean(0.5 * (logps - old_logps) ** 2, mask).item(),
            "val/ratio": masked_mean(ratio, mask).item(),
            "val/ratio_max": ratio.masked_fill(mask == 0, 0.0).max().item(),
        }
    return pg_loss + vf_coef * vf_loss, stats


def train_bandit_ppo(
    ref_probs: Tensor, rewards: Tensor, kl_coef: float, iterations: int = 300, batch_size: int = 256,
    ppo_epochs: int = 4, learning_rate: float = 0.05, cliprange: float = 0.2, seed: int = 0,
) -> tuple[Tensor, list[dict]]:
    """PPO with the same maths as `train_ppo` on a one-token problem: a softmax policy over K answers,
    reward r(y), reference pi_ref. Its optimum is pi*(y) = pi_ref(y) exp(r(y)/kl_coef) / Z (notebook 02),
    which the returned policy should approach. Returns (final policy probs, history)."""
    g = torch.Generator().manual_seed(seed)
    logits = nn.Parameter(ref_probs.log().clone())  # start at the reference, as RLHF starts at the SFT model
    value = nn.Parameter(torch.zeros(()))
    opt = torch.optim.Adam([logits, value], lr=learning_rate)
    ref_logp = ref_probs.log()
    history = []
    for it in range(iterations):
        with torch.no_grad():
            probs = logits.softmax(-1)
            actions = torch.multinomial(probs, batch_size, replacement=True, generator=g)
            old_logps = probs.log()[actions][:, None]
            mask = torch.ones(batch_size, 1)
            token_rewards, log_ratio = kl_penalized_rewards(rewards[actions], old_logps, ref_logp[actions][:, None],
                                                            mask, kl_coef)
            old_values = value.detach().expand(batch_size, 1)
            advantages, returns = generalized_advantages(token_rewards, old_values, mask)
            advantages = masked_whiten(advantages, mask)
        for _ in range(ppo_epochs):
            logps = logits.log_softmax(-1)[actions][:, None]
            loss, stats = ppo_loss(logps, old_logps, advantages, value.expand(batch_size, 1), old_values, returns,
                                   mask, cliprange, 10.0, 1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        history.append({"iteration": it + 1, "objective/kl": log_ratio.mean().item(),
                        "objective/scores": rewards[actions].mean().item(), **stats})
    return logits.detach().softmax(-1), history
