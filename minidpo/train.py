"""SFT and DPO: their configurations, their per-batch objectives, and the two jobs.

    SFT:  token-mean NLL of the reply tokens                     (`sft_step`, `losses.sft_loss`)
    DPO:  a preference loss of `losses.LOSSES` (default eq. 7)   (`DPOStep`, `losses.dpo_loss`)
    Plackett-Luce DPO on K-way rankings (App. A.3)               (`RankingStep`, `losses.plackett_luce_loss`)

Both run in the shared loop of `minidpo.loop` (warm-up, accumulation, clipping, evaluation, checkpoints,
exact resume, DDP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .batching import collate_preferences, collate_rankings, collate_sft
from .logprobs import model_sequence_logprobs, model_token_logprobs
from .loop import (disable_dropout, evaluate_objective, load_checkpoint, save_checkpoint,  # noqa: F401  (re-exported)
                   train_loop)
from .losses import (HYPERPARAMETERS, LOSSES, check_dpo_hyperparameters, dpo_loss, dpo_metrics, plackett_luce_loss,
                     sft_loss)


@dataclass
class TrainConfig:
    output_dir: str = "runs/train"
    learning_rate: float = 1e-6
    batch_size: int = 8  # sequences (SFT) or pairs (DPO) per micro-batch
    gradient_accumulation_steps: int = 1
    num_epochs: float = 1.0
    max_steps: int | None = None  # optimizer steps; overrides num_epochs when set
    warmup_steps: int = 150  # linear warm-up from 0 (the DPO paper uses 150)
    optimizer: str = "rmsprop"  # the paper's choice; "adamw" also works
    weight_decay: float = 0.0
    max_grad_norm: float = 10.0
    eval_every: int = 50  # optimizer steps between validation passes (and one at the end)
    save_every: int = 50  # optimizer steps between checkpoints (and one at the end)
    length_bucketing: bool = True  # batch pairs of similar length together so less padding is computed
    disable_dropout: bool = True  # TRL's default: dropout makes the policy/reference log-ratio noisy
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% more time
    torch_compile: bool = False  # fast path: torch.compile the forward and backward (TRL's name; see loop.py)
    bf16: bool = False  # bf16 autocast, GPUs only (on CPUs without bf16 units it is ~100x slower than fp32)
    seed: int = 0
    show_progress: bool = True
    use_cpu: bool = False  # train on the CPU even when a GPU is present (TRL's name)

    def __post_init__(self) -> None:
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}")
        for name in ("batch_size", "gradient_accumulation_steps", "eval_every", "save_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps!r}")
        if self.max_steps is None and not self.num_epochs > 0:
            raise ValueError(f"num_epochs must be > 0, got {self.num_epochs!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if self.optimizer not in ("adamw", "rmsprop"):
            raise ValueError(f"optimizer must be 'adamw' or 'rmsprop', got {self.optimizer!r}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm!r}")


@dataclass
class SFTConfig(TrainConfig):
    output_dir: str = "runs/sft"
    learning_rate: float = 1e-5
    optimizer: str = "adamw"
    warmup_steps: int = 10


@dataclass
class DPOConfig(TrainConfig):
    output_dir: str = "runs/dpo"
    beta: float = 0.1  # higher beta keeps the policy closer to the reference
    loss_type: str = "sigmoid"
    # the losses' own hyperparameters (`losses.HYPERPARAMETERS`); each loss reads only its own
    label_smoothing: float = 0.0  # cDPO's eps (not TRL's: TRL 1.16 ignores it for loss_type="sigmoid")
    rpo_alpha: float = 1.0  # RPO: weight of the chosen replies' NLL
    rdpo_alpha: float = 0.01  # R-DPO: weight of the length difference
    simpo_gamma: float = 0.5  # SimPO: target margin
    desirable_weight: float = 1.0  # KTO: lambda_D
    undesirable_weight: float = 1.0  # KTO: lambda_U

    def __post_init__(self) -> None:
        super().__post_init__()
        check_dpo_hyperparameters(self.beta, self.loss_type, **self.loss_hyperparameters())

    def loss_hyperparameters(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in HYPERPARAMETERS}


# ----------------------------------------------------------------------------- per-batch objectives


def sft_step(model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-mean NLL of the reply tokens (`losses.sft_loss`)."""
    token_logps, _ = model_token_logprobs(model, batch)
    loss = sft_loss(token_logps)
    return loss, {"loss": loss.item()}


class DPOStep:
    """A preference loss (`config.loss_type`, from `losses.LOSSES`) on one batch: one policy forward over
    [chosen; rejected]; reference log-probs from the batch (precomputed) or from `ref_model` under no_grad,
    when the loss needs them; reply lengths when the loss uses them; for KTO, the log-ratios of the batch's
    mismatched pairs (`collate_preferences(..., mismatched=True)`), both models under no_grad."""

    def __init__(self, config: DPOConfig, ref_model=None):
        self.config, self.ref_model = config, ref_model
        self.spec = LOSSES[config.loss_type]

    def reference_logps(self, batch: dict, device) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
        if not self.spec.needs_reference:
            return None, None
        if "ref_chosen_logps" in batch:
            return batch["ref_chosen_logps"].to(device), batch["ref_rejected_logps"].to(device)
        if self.ref_model is None:
            raise ValueError(f"loss_type={self.config.loss_type!r} needs reference log-probs: pass ref_model or "
                             f"precompute them into the dataset (minidpo.logprobs.reference_columns)")
        with torch.no_grad():
            return model_sequence_logprobs(self.ref_model, batch).to(device).chunk(2)

    def mismatched_logratios(self, model, batch: dict) -> torch.Tensor | None:
        if not self.spec.needs_mismatched:
            return None
        if "mismatched_input_ids" not in batch and batch["input_ids"].shape[0] == 2:
            raise ValueError(f"loss_type={self.config.loss_type!r} needs two pairs or more per batch: one pair has no "
                             "other prompt's reply for the reference point z (train_dpo merges a last batch of one "
                             "into the batch before it)")
        if "mismatched_input_ids" not in batch:
            raise ValueError(f"loss_type={self.config.loss_type!r} needs mismatched pairs: collate with "
                             f"collate_preferences(..., mismatched=True)")
        if self.ref_model is None:
            raise ValueError(f"loss_type={self.config.loss_type!r} needs ref_model for the mismatched pairs' reference "
                             f"log-probs (precomputed reference columns cover only the pairs themselves)")
        rows = {k.removeprefix("mismatched_"): v for k, v in batch.items() if k.startswith("mismatched_")}
        with torch.no_grad():
            return (model_sequence_logprobs(model, rows)
                    - model_sequence_logprobs(self.ref_model, rows).to(rows["input_ids"].device))

    def __call__(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        policy_chosen, policy_rejected = model_sequence_logprobs(model, batch).chunk(2)
        ref_chosen, ref_rejected = self.reference_logps(batch, policy_chosen.device)
        lengths = (batch["response_mask"][:, 1:].sum(1).to(policy_chosen.device).chunk(2) if self.spec.uses_lengths
                   else (None, None))
        out = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=cfg.beta, loss_type=cfg.loss_type,
                       chosen_lengths=lengths[0], rejected_lengths=lengths[1],
                       mismatched_logratios=self.mismatched_logratios(model, batch), **cfg.loss_hyperparameters())
        return out.losses.mean(), dpo_metrics(out, policy_chosen, policy_rejected)


class RankingStep:
    """Plackett-Luce DPO (App. A.3) on a batch of K-way rankings (`collate_rankings`): one policy forward over
    the K replies of every prompt, the reference's under no_grad from `ref_model`."""

    def __init__(self, config: DPOConfig, ref_model):
        self.config, self.ref_model = config, ref_model

    def __call__(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        k = batch["num_ranked"]
        inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "response_mask")}
        policy = model_sequence_logprobs(model, inputs).view(k, -1).T  # rows were stacked rank by rank: (B, K)
        with torch.no_grad():
            ref = model_sequence_logprobs(self.ref_model, inputs).to(policy.device).view(k, -1).T
        strict = batch["strict"].to(policy.device) if "strict" in batch else None
        losses = plackett_luce_loss(policy - ref, self.config.beta, strict)
        rewards = self.config.beta * (policy - ref).detach()
        return losses.mean(), {"loss": losses.mean().item(), "rewards/best": rewards[:, 0].mean().item(),
                               "rewards/worst": rewards[:, -1].mean().item(),
                               "rewards/ordered": (rewards[:, :-1] > rewards[:, 1:]).all(-1).float().mean().item()}


# ----------------------------------------------------------------------------- the jobs


def train_sft(model, train_data, eval_data, config: SFTConfig, pad_token_id: int, resume: bool = True,
              final_checkpoint: bool = True) -> list[dict]:
    """Supervised fine-tuning on prompt-completion examples (`tokenize_sft`, or `completions_from_pairs`)."""
    collate = lambda ex: collate_sft(ex, pad_token_id)  # noqa: E731
    # the loss is a token mean: weighting micro-batches (and processes) by their response tokens makes it the
    # token mean of the whole step's batch, however the batch is split
    n_tokens = lambda ex: len(ex["completion_ids"])  # noqa: E731  (the EOS is included in completion_ids)
    return train_loop(model, train_data, eval_data, config, sft_step, collate, resume=resume, desc="SFT",
                      example_weight=n_tokens, final_checkpoint=final_checkpoint)


def train_dpo(
    model, train_data, eval_data, config: DPOConfig, pad_token_id: int, ref_model=None, resume: bool = True,
    final_checkpoint: bool = True,
) -> list[dict]:
    """DPO (eq. 7) from `model` against `ref_model` (the SFT model), or against reference log-probs
    already stored in the datasets' `ref_chosen_logps`/`ref_rejected_logps` columns."""
    mismatched = LOSSES[config.loss_type].needs_mismatched
    collate = lambda ex: collate_preferences(ex, pad_token_id, mismatched=mismatched)  # noqa: E731
    # KTO's reference point z is a mean over the batch's mismatched pairs: a batch of one pair has none, so a last
    # batch of one joins the one before it, and a validation split of one pair gives no validation loss
    if mismatched and eval_data is not None and len(eval_data) < 2:
        eval_data = None
    return train_loop(model, train_data, eval_data, config, DPOStep(config, ref_model), collate, resume=resume,
                      desc="DPO", min_batch=2 if mismatched else 1, final_checkpoint=final_checkpoint)


def train_rankings(model, train_data, eval_data, config: DPOConfig, pad_token_id: int, ref_model,
                   resume: bool = True) -> list[dict]:
    """Plackett-Luce DPO on K-way rankings (`prompt_ids`, `ranked_ids`: K replies, best first) against `ref_model`."""
    collate = lambda ex: collate_rankings(ex, pad_token_id)  # noqa: E731
    return train_loop(model, train_data, eval_data, config, RankingStep(config, ref_model), collate, resume=resume,
                      desc="PL-DPO")
