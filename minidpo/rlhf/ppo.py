"""PPO on a language model (the loop): rollouts from the policy, scores from the reward model (or a reward function),
per-token KL-penalised rewards and GAE advantages from `ppo_maths`, then clipped-surrogate updates. Names follow
TRL (`kl_coef`, `cliprange`, `vf_coef`, `objective/kl`, `objective/scores`, ...).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ..batching import tokenize_prompts
from ..generate import generate_responses
from ..logprobs import token_logprobs
from ..loop import disable_dropout, load_checkpoint, save_checkpoint, warmup_factor
from ..utils import derive_seed, epoch_seed, write_json
from .ppo_maths import generalized_advantages, kl_penalized_rewards, masked_whiten, ppo_loss
from .reward_model import RewardModel, right_padded


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


def left_align(x: Tensor, starts: Tensor, width: int) -> Tensor:
    """Row i of `x` from position starts[i] on, `width` positions (clamped at the end): (B, width, ...). Puts the
    j-th reply token's quantity at column j, whatever its prompt's length."""
    idx = (starts[:, None] + torch.arange(width, device=x.device)[None]).clamp(max=x.shape[1] - 1)
    return x[torch.arange(len(x), device=x.device)[:, None], idx]


def reply_logprobs(logits: Tensor, batch: dict[str, Tensor], width: int) -> Tensor:
    """log pi(y_j | x, y_<j) of each reply token, left-aligned into (B, width) (`logprobs.token_logprobs`)."""
    return left_align(token_logprobs(logits, batch["input_ids"]), batch["prompt_lengths"] - 1, width)


def rollout_batch(prompt_ids: list[list[int]], reply_ids: list[list[int]], pad: int, device) -> dict[str, Tensor]:
    """Right-padded prompt + reply sequences with `prompt_lengths`, and `mask` (B, max reply length)."""
    batch = {k: v.to(device) for k, v in right_padded(prompt_ids, reply_ids, pad).items()}
    lengths = torch.tensor([len(r) for r in reply_ids], device=device)
    batch["prompt_lengths"] = torch.tensor([len(p) for p in prompt_ids], device=device)
    batch["mask"] = (torch.arange(int(lengths.max()), device=device)[None] < lengths[:, None]).float()
    return batch


@dataclass
class PPOConfig:
    output_dir: str = "runs/ppo"
    kl_coef: float = 0.05  # beta of eq. 3: higher keeps the policy closer to the reference
    learning_rate: float = 1e-5
    warmup_steps: int = 0  # optimizer steps run below the full rate, rising linearly (`loop.warmup_factor`):
    # Adam's first steps move every weight by about lr whatever its gradient, which throws a fresh policy far from
    # the rollouts' policy (approxkl >> 0.1) when lr is not small
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
            raise ValueError(f"rollout_batch_size ({self.rollout_batch_size}) must be a multiple of "
                             f"num_mini_batches ({self.num_mini_batches})")
        if not (isinstance(self.warmup_steps, int) and self.warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        for name in ("iterations", "rollout_batch_size", "num_mini_batches", "ppo_epochs", "max_new_tokens",
                     "save_every"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not (self.learning_rate > 0 and 0 < self.cliprange and 0 < self.lam <= 1 and 0 < self.gamma <= 1):
            raise ValueError("need learning_rate > 0, cliprange > 0, 0 < lam <= 1, 0 < gamma <= 1")


def train_ppo(
    policy: PolicyWithValue, ref_model, reward: RewardModel | Callable[[list[str], list[str]], Tensor], tokenizer,
    prompts: list[str], config: PPOConfig, ground_truth: Callable[[list[str], list[str]], Tensor] | None = None,
    resume: bool = True,
) -> list[dict]:
    """PPO from `policy` (initialised from the SFT model) against `reward`, KL-penalised towards `ref_model`.

    Each iteration: sample one reply per prompt for `rollout_batch_size` prompts (cycling through `prompts` in a
    seeded order); score them with `reward`; compute per-token KL-penalised rewards, values and GAE advantages
    (whitened); then `ppo_epochs` passes of `num_mini_batches` clipped-surrogate steps. `reward` is a learned
    `RewardModel` r_phi (it reads the rollout's tokens), or a reward on texts `reward(prompts, replies)` (the
    paper's PPO-GT when it is the ground truth). Logged per iteration with TRL's names; `ground_truth(prompts,
    replies)` adds the true reward of the rollouts when given.
    The learning rate warms up linearly over the first `warmup_steps` optimizer steps (a pure function of the step,
    so resuming replays it). Besides TRL's statistics each iteration logs the stability diagnostics: approxkl,
    clip fraction, the probability ratio's mean and max, the value loss and the policy's entropy per reply token.
    Checkpoints every `save_every` iterations; with `resume`, continues from the last one and ends with the
    same weights and history as an uninterrupted run.
    """
    cfg = config
    device = next(policy.parameters()).device
    pad = tokenizer.pad_token_id
    if reward is None:
        raise ValueError("pass a reward: a RewardModel (a learned r_phi) or a function of (prompts, replies)")
    reward_model = reward if isinstance(reward, torch.nn.Module) else None
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
        order = torch.randperm(len(prompts),
                               generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))).tolist()
        index = order[k * cfg.rollout_batch_size : (k + 1) * cfg.rollout_batch_size]
        batch_prompts = [prompts[i] for i in index]
        policy.eval()
        replies, reply_ids = generate_responses(
            policy.lm, tokenizer, batch_prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
            seed=derive_seed(cfg.seed, "ppo/sample", it), batch_size=len(batch_prompts), show_progress=False,
        )
        prompt_ids = [prompt_ids_all[i] for i in index]
        batch = rollout_batch(prompt_ids, reply_ids, pad, device)
        mask, width = batch["mask"], batch["mask"].shape[1]
        with torch.no_grad():
            logits, values = policy(batch["input_ids"], batch["attention_mask"])
            old_logps = reply_logprobs(logits, batch, width) * mask
            old_values = left_align(values.float(), batch["prompt_lengths"] - 1, width) * mask
            ref_logits = ref_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   use_cache=False).logits
            ref_logps = reply_logprobs(ref_logits, batch, width) * mask
            del logits, ref_logits
            if reward_model is None:
                scores = reward(batch_prompts, replies).to(device)
            else:  # the rollout batch is already right-padded prompt + reply: score it as it is
                scores = reward_model(batch["input_ids"], batch["attention_mask"])
            rewards, log_ratio = kl_penalized_rewards(scores, old_logps, ref_logps, mask, cfg.kl_coef)
            advantages, returns = generalized_advantages(rewards, old_values, mask, cfg.gamma, cfg.lam)
            advantages = masked_whiten(advantages, mask)
        policy.train()
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, "ppo/minibatches", it))
        stats_sum: dict[str, float] = {}
        n_updates = 0
        updates_before = it * cfg.ppo_epochs * cfg.num_mini_batches  # the optimizer steps of earlier iterations
        for _ in range(cfg.ppo_epochs):
            perm = torch.randperm(len(index), generator=g).tolist()
            for s in range(0, len(index), mb_size):
                rows = torch.tensor(perm[s : s + mb_size], device=device)
                mb = {k: v[rows] for k, v in batch.items()}
                logits, values = policy(mb["input_ids"], mb["attention_mask"])
                logps = reply_logprobs(logits, mb, width)
                new_values = left_align(values.float(), mb["prompt_lengths"] - 1, width)
                loss, stats = ppo_loss(
                    logps, old_logps[rows], advantages[rows], new_values, old_values[rows], returns[rows], mask[rows],
                    cfg.cliprange, cfg.cliprange_value, cfg.vf_coef,
                )
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"PPO loss is {loss.item()} at iteration {it + 1}; "
                                             f"the last good checkpoint is {ckpt}")
                with torch.no_grad():  # the policy's entropy per reply token, before this update
                    logp_all = left_align(logits.float().log_softmax(-1), mb["prompt_lengths"] - 1, width)
                    entropy = -(logp_all.exp() * logp_all).sum(-1)
                    stats["policy/entropy_avg"] = ((entropy * mask[rows]).sum() / mask[rows].sum()).item()
                    del logp_all
                step = updates_before + n_updates
                for group in opt.param_groups:
                    group["lr"] = cfg.learning_rate * warmup_factor(step, cfg.warmup_steps)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
                opt.step()
                for key, v in stats.items():
                    # the largest ratio is a maximum over the iteration's updates, the rest their means
                    stats_sum[key] = max(stats_sum.get(key, v), v) if key.endswith("_max") else \
                        stats_sum.get(key, 0.0) + v
                n_updates += 1
        kl = log_ratio.sum(1)
        record = {
            "iteration": it + 1,
            "episodes": (it + 1) * cfg.rollout_batch_size,
            "objective/scores": scores.mean().item(),
            "objective/kl": kl.mean().item(),
            "objective/rlhf_reward": (scores - cfg.kl_coef * kl).mean().item(),
            "reply_tokens": mask.sum(1).mean().item(),
            **{k: v if k.endswith("_max") else v / n_updates for k, v in stats_sum.items()},
            "learning_rate": opt.param_groups[0]["lr"],
            "seconds": time.time() - t0,
        }
        if ground_truth is not None:
            record["ground_truth_reward"] = ground_truth(batch_prompts, replies).mean().item()
        history.append(record)
        bar.set_postfix(score=f"{record['objective/scores']:.3f}", kl=f"{record['objective/kl']:.2f}")
        if (it + 1) % cfg.save_every == 0 or it + 1 == cfg.iterations:
            save_checkpoint(ckpt, {"model": policy.state_dict(), "optimizer": opt.state_dict(), "history": history,
                                   "iteration": it + 1, "config": asdict(cfg)})
            write_json(Path(cfg.output_dir) / "history.json", history)
    policy.eval()
    return history
