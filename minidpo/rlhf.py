"""RLHF, the pipeline DPO replaces: fit a reward model to preferences, then maximise it with PPO under a KL penalty.

    1. reward model   r_phi(x, y) = w . h_last(x, y) + b, trained with the Bradley-Terry loss   (DPO eq. 2)
                      L(phi) = -E log sigma(r_phi(x, y_w) - r_phi(x, y_l))
    2. PPO            max_pi E_{y ~ pi(.|x)} [r_phi(x, y)] - beta KL(pi || pi_ref)                (DPO eq. 3)
                      the KL enters as a per-token reward -beta (log pi(y_t|.) - log pi_ref(y_t|.)), r_phi is
                      added at the last token, advantages come from GAE on a value head, and the policy
                      takes clipped-surrogate steps (Schulman et al. 2017; Ziegler et al. 2019; Stiennon et al. 2020)
    +  best-of-N      sample N replies from pi_ref, keep the one r_phi likes best (no training at all)

The PPO maths is three pure functions (`kl_penalized_rewards`, `generalized_advantages`, `ppo_loss`) used by
both `train_bandit_ppo` (a one-step toy whose optimum is the closed form of notebook 02, which the tests
check) and `train_ppo` (the language-model loop). Names follow TRL (`kl_coef`, `cliprange`, `vf_coef`,
`objective/kl`, `objective/scores`, ...).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from .data import tokenize_prompts
from .generate import generate_responses
from .preference import bradley_terry_nll
from .train import TrainConfig, disable_dropout, load_checkpoint, save_checkpoint, train_loop

# ----------------------------------------------------------------------------- reward model


class RewardModel(nn.Module):
    """The policy's architecture with a scalar head: r_phi(x, y) = w . h + b, h = the last layer's hidden state
    at the last real token of prompt + reply (sequences right-padded, as `minidpo.data` collates them)."""

    def __init__(self, lm):
        super().__init__()
        self.body = lm.base_model  # the transformer without its LM head
        self.config = lm.config
        self.head = nn.Linear(lm.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)  # every reply starts at reward 0: the BT loss starts at log 2
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        last = attention_mask.sum(1) - 1
        return self.head(hidden[torch.arange(len(hidden), device=hidden.device), last]).squeeze(-1).float()


@dataclass
class RewardConfig(TrainConfig):
    output_dir: str = "runs/reward"
    learning_rate: float = 1e-5
    optimizer: str = "adamw"
    warmup_steps: int = 0


def reward_step(model: RewardModel, batch: dict) -> tuple[Tensor, dict[str, float]]:
    """Bradley-Terry loss on one batch of [chosen; rejected] sequences (eq. 2), plus pair accuracy."""
    device = next(model.parameters()).device
    scores = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
    chosen, rejected = scores.chunk(2)
    loss = bradley_terry_nll(chosen, rejected)
    return loss, {
        "loss": loss.item(),
        "accuracy": (chosen > rejected).float().mean().item(),
        "margin": (chosen - rejected).mean().item(),
    }


def train_reward_model(model: RewardModel, train_data, eval_data, config: RewardConfig, pad_token_id: int, resume: bool = True) -> list[dict]:
    """Fit r_phi to tokenized preference pairs with the shared training loop (same batching, resume, logging)."""
    from .data import collate_preferences

    collate = lambda ex: collate_preferences(ex, pad_token_id)  # noqa: E731
    return train_loop(model, train_data, eval_data, config, reward_step, collate, resume=resume, desc="reward model")


def _right_padded(prompt_ids: list[list[int]], reply_ids: list[list[int]], pad: int) -> dict[str, Tensor]:
    from .data import collate_sft

    return collate_sft([{"prompt_ids": p, "completion_ids": r} for p, r in zip(prompt_ids, reply_ids)], pad)


@torch.inference_mode()
def score_replies(model: RewardModel, prompt_ids: list[list[int]], reply_ids: list[list[int]], pad: int, batch_size: int = 32) -> Tensor:
    """r_phi(x, y) for token-id prompts and replies (scored exactly as sampled: no re-tokenization)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(prompt_ids), batch_size):
        batch = _right_padded(prompt_ids[s : s + batch_size], reply_ids[s : s + batch_size], pad)
        out.append(model(batch["input_ids"].to(device), batch["attention_mask"].to(device)).cpu())
    model.train(was_training)
    return torch.cat(out)


# ----------------------------------------------------------------------------- best-of-N


def best_of_n_kl(n: int) -> float:
    """The usual value plotted for best-of-N, log n - (n - 1) / n (Stiennon et al. 2020, app. G): an upper bound
    on KL(best-of-n || pi_ref) (Beirami et al. 2024), approached only when pi_ref spreads its mass over many
    distinct replies; with two equally likely replies and n = 2 the exact KL is 0.131, the bound 0.193."""
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


# ----------------------------------------------------------------------------- PPO maths (pure tensor code)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(x - mean) / std over the masked entries (advantage normalisation)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def kl_penalized_rewards(scores: Tensor, logps: Tensor, ref_logps: Tensor, mask: Tensor, kl_coef: float) -> tuple[Tensor, Tensor]:
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


def generalized_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
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
        }
    return pg_loss + vf_coef * vf_loss, stats


# ----------------------------------------------------------------------------- PPO on a bandit (known optimum)


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
            token_rewards, log_ratio = kl_penalized_rewards(rewards[actions], old_logps, ref_logp[actions][:, None], mask, kl_coef)
            old_values = value.detach().expand(batch_size, 1)
            advantages, returns = generalized_advantages(token_rewards, old_values, mask)
            advantages = masked_whiten(advantages, mask)
        for _ in range(ppo_epochs):
            logps = logits.log_softmax(-1)[actions][:, None]
            loss, stats = ppo_loss(logps, old_logps, advantages, value.expand(batch_size, 1), old_values, returns, mask, cliprange, 10.0, 1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        history.append({"iteration": it + 1, "objective/kl": log_ratio.mean().item(), "objective/scores": rewards[actions].mean().item(), **stats})
    return logits.detach().softmax(-1), history


# ----------------------------------------------------------------------------- PPO on a language model


class PolicyWithValue(nn.Module):
    """A causal LM and a value head on its last hidden state (one shared trunk, as TRL's classic PPO):
    V(x, y_<t) predicts the return from the state before token t."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.value_head = nn.Linear(lm.config.hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=False)
        return out.logits, self.value_head(out.hidden_states[-1]).squeeze(-1)


def reply_logprobs(logits: Tensor, batch: dict[str, Tensor], width: int) -> Tensor:
    """log pi(y_t | x, y_<t) for each reply token, left-aligned into (B, width): position j of row i is the
    j-th reply token, predicted by the logits one position earlier."""
    targets = _gather_positions(batch["input_ids"][:, 1:], batch, width)  # the token each position predicts
    return torch.log_softmax(_gather_positions(logits, batch, width).float(), -1).gather(-1, targets[..., None]).squeeze(-1)


def _gather_positions(x: Tensor, batch: dict[str, Tensor], width: int) -> Tensor:
    """x at the positions that predict the reply tokens (prompt length - 1 + j), left-aligned: (B, width, ...)."""
    idx = (batch["prompt_lengths"][:, None] - 1 + torch.arange(width, device=x.device)[None]).clamp(max=x.shape[1] - 1)
    return x[torch.arange(len(x), device=x.device)[:, None], idx]


def rollout_batch(prompt_ids: list[list[int]], reply_ids: list[list[int]], pad: int, device) -> dict[str, Tensor]:
    """Right-padded prompt + reply sequences with `prompt_lengths`, and `mask` (B, max reply length)."""
    batch = {k: v.to(device) for k, v in _right_padded(prompt_ids, reply_ids, pad).items()}
    lengths = torch.tensor([len(r) for r in reply_ids], device=device)
    batch["prompt_lengths"] = torch.tensor([len(p) for p in prompt_ids], device=device)
    batch["mask"] = (torch.arange(int(lengths.max()), device=device)[None] < lengths[:, None]).float()
    return batch


@dataclass
class PPOConfig:
    output_dir: str = "runs/ppo"
    kl_coef: float = 0.05  # beta of eq. 3: higher keeps the policy closer to the reference
    learning_rate: float = 1e-5
    iterations: int = 20  # rollout + update rounds
    rollout_batch_size: int = 16  # prompts per rollout (one reply each)
    num_mini_batches: int = 2
    ppo_epochs: int = 2  # passes over each rollout
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    max_new_tokens: int = 24
    temperature: float = 1.0
    max_grad_norm: float = 1.0
    save_every: int = 5
    seed: int = 0
    show_progress: bool = True

    def __post_init__(self) -> None:
        if not self.kl_coef >= 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef!r}")
        if self.rollout_batch_size % self.num_mini_batches:
            raise ValueError(f"rollout_batch_size ({self.rollout_batch_size}) must be a multiple of num_mini_batches ({self.num_mini_batches})")
        for name in ("iterations", "rollout_batch_size", "num_mini_batches", "ppo_epochs", "max_new_tokens", "save_every"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not (self.learning_rate > 0 and 0 < self.cliprange and 0 < self.lam <= 1 and 0 < self.gamma <= 1):
            raise ValueError("need learning_rate > 0, cliprange > 0, 0 < lam <= 1, 0 < gamma <= 1")


def train_ppo(
    policy: PolicyWithValue, ref_model, reward_model: RewardModel | None, tokenizer, prompts: list[str], config: PPOConfig,
    ground_truth: Callable[[list[str], list[str]], Tensor] | None = None, resume: bool = True,
    reward_fn: Callable[[list[str], list[str]], Tensor] | None = None,
) -> list[dict]:
    """PPO from `policy` (initialised from the SFT model) against `reward_model`, KL-penalised towards `ref_model`.

    Each iteration: sample one reply per prompt for `rollout_batch_size` prompts (cycling through `prompts` in a
    seeded order); score them with r_phi; compute per-token KL-penalised rewards, values and GAE advantages
    (whitened); then `ppo_epochs` passes of `num_mini_batches` clipped-surrogate steps. Logged per iteration
    with TRL's names; `ground_truth(prompts, replies)` adds the true reward of the rollouts when given.
    `reward_fn(prompts, replies)` in place of `reward_model` optimises that reward directly (the paper's
    PPO-GT, with the ground-truth reward).
    Checkpoints every `save_every` iterations; with `resume`, continues from the last one and ends with the
    same weights and history as an uninterrupted run.
    """
    cfg = config
    device = next(policy.parameters()).device
    pad = tokenizer.pad_token_id
    if (reward_model is None) == (reward_fn is None):
        raise ValueError("pass exactly one of reward_model (a learned r_phi) and reward_fn (a reward on texts)")
    for m in (policy, ref_model, reward_model):
        if m is not None:
            disable_dropout(m)
            m.eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    ckpt = Path(cfg.output_dir) / "checkpoint.pt"
    history: list[dict] = []
    start = 0
    if resume and ckpt.exists():
        state = load_checkpoint(ckpt)
        policy.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        history, start = state["history"], state["iteration"]
    prompt_ids_all = tokenize_prompts(tokenizer, prompts)
    per_epoch = max(1, len(prompts) // cfg.rollout_batch_size)
    mb_size = cfg.rollout_batch_size // cfg.num_mini_batches
    bar = tqdm(range(start, cfg.iterations), desc=f"PPO kl_coef={cfg.kl_coef:g}", initial=start, total=cfg.iterations,
               disable=not cfg.show_progress)
    for it in bar:
        t0 = time.time()
        # the prompt order and the sampling seed are pure functions of (seed, iteration): resume replays them
        epoch, k = divmod(it, per_epoch)
        order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch)).tolist()
        index = order[k * cfg.rollout_batch_size : (k + 1) * cfg.rollout_batch_size]
        batch_prompts = [prompts[i] for i in index]
        policy.eval()
        replies, reply_ids = generate_responses(
            policy.lm, tokenizer, batch_prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
            seed=cfg.seed * 100_003 + it, batch_size=len(batch_prompts), show_progress=False, return_token_ids=True,
        )
        prompt_ids = [prompt_ids_all[i] for i in index]
        batch = rollout_batch(prompt_ids, reply_ids, pad, device)
        mask, width = batch["mask"], batch["mask"].shape[1]
        with torch.no_grad():
            logits, values = policy(batch["input_ids"], batch["attention_mask"])
            old_logps = reply_logprobs(logits, batch, width) * mask
            old_values = _gather_positions(values.float(), batch, width) * mask
            ref_logits = ref_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
            ref_logps = reply_logprobs(ref_logits, batch, width) * mask
            del logits, ref_logits
            if reward_fn is not None:
                scores = reward_fn(batch_prompts, replies).to(device)
            else:  # the rollout batch is already right-padded prompt + reply: score it as it is
                scores = reward_model(batch["input_ids"], batch["attention_mask"])
            rewards, log_ratio = kl_penalized_rewards(scores, old_logps, ref_logps, mask, cfg.kl_coef)
            advantages, returns = generalized_advantages(rewards, old_values, mask, cfg.gamma, cfg.lam)
            advantages = masked_whiten(advantages, mask)
        policy.train()
        g = torch.Generator().manual_seed(cfg.seed * 7919 + it)
        stats_sum: dict[str, float] = {}
        n_updates = 0
        for _ in range(cfg.ppo_epochs):
            perm = torch.randperm(len(index), generator=g).tolist()
            for s in range(0, len(index), mb_size):
                rows = torch.tensor(perm[s : s + mb_size], device=device)
                mb = {k: v[rows] for k, v in batch.items()}
                logits, values = policy(mb["input_ids"], mb["attention_mask"])
                logps = reply_logprobs(logits, mb, width)
                new_values = _gather_positions(values.float(), mb, width)
                loss, stats = ppo_loss(
                    logps, old_logps[rows], advantages[rows], new_values, old_values[rows], returns[rows], mask[rows],
                    cfg.cliprange, cfg.cliprange_value, cfg.vf_coef,
                )
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"PPO loss is {loss.item()} at iteration {it + 1}; the last good checkpoint is {ckpt}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                opt.step()
                for key, v in stats.items():
                    stats_sum[key] = stats_sum.get(key, 0.0) + v
                n_updates += 1
        kl = log_ratio.sum(1)
        record = {
            "iteration": it + 1,
            "episodes": (it + 1) * cfg.rollout_batch_size,
            "objective/scores": scores.mean().item(),
            "objective/kl": kl.mean().item(),
            "objective/rlhf_reward": (scores - cfg.kl_coef * kl).mean().item(),
            "reply_tokens": mask.sum(1).mean().item(),
            **{k: v / n_updates for k, v in stats_sum.items()},
            "seconds": time.time() - t0,
        }
        if ground_truth is not None:
            record["ground_truth_reward"] = ground_truth(batch_prompts, replies).mean().item()
        history.append(record)
        bar.set_postfix(score=f"{record['objective/scores']:.3f}", kl=f"{record['objective/kl']:.2f}")
        if (it + 1) % cfg.save_every == 0 or it + 1 == cfg.iterations:
            save_checkpoint(ckpt, {"model": policy.state_dict(), "optimizer": opt.state_dict(), "history": history,
                                   "iteration": it + 1, "config": asdict(cfg)})
            (Path(cfg.output_dir) / "history.json").write_text(json.dumps(history, indent=1))
    policy.eval()
    return history
