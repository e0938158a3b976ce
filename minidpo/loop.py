"""The training loop SFT, DPO and the reward model share.

    batches -> objective(model, batch) -> backward -> clip -> step

The loop owns what every job shares: AdamW or RMSprop, linear warm-up, gradient accumulation,
grad-norm clipping, a tqdm bar, a metrics history with TRL's names, periodic evaluation on the
validation split, atomic checkpoints and exact resume. The batch order is a pure function of the
seed, so a run resumed from a checkpoint replays the same batches and gives the same numbers as an
uninterrupted one. The objectives (what a batch's loss is) live in `minidpo.train` and `minidpo.rlhf`.

Scale-out: the loop runs unchanged under `accelerate launch` (or `torchrun`). Each process takes an equal
share of every micro-batch, gradients are averaged by DistributedDataParallel, and the loss is weighted
so that N processes compute exactly the gradient of the same global batch as one process would.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from .batching import length_grouped_batches, pair_lengths
from .utils import epoch_seed, evaluating, save_torch, write_json

# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic (`utils.save_torch`): a kill mid-write leaves the old checkpoint intact."""
    save_torch(path, state)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, weights_only=False)
    except Exception as e:
        raise RuntimeError(
            f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {e}); delete it to start over"
        ) from None


# ----------------------------------------------------------------------------- the loop


def optimizer_steps(epochs: float, n_examples: int, batch_size: int, gradient_accumulation_steps: int = 1) -> int:
    """The one epochs-to-steps rule: floor(epochs x micro-batches per epoch / accumulation), at least 1 (a last
    short micro-batch counts as one)."""
    per_epoch = math.ceil(n_examples / batch_size)
    return max(1, math.floor(epochs * per_epoch / gradient_accumulation_steps))


def _micro_batches(n_examples: int, lengths: list[int], cfg, min_batch: int = 1) -> tuple[list[list[int]], int]:
    """The whole run's micro-batches (a pure function of the seed) and the number of optimizer steps."""
    steps = cfg.max_steps or optimizer_steps(cfg.num_epochs, n_examples, cfg.batch_size,
                                             cfg.gradient_accumulation_steps)
    needed = steps * cfg.gradient_accumulation_steps
    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < needed:
        batches += length_grouped_batches(lengths, cfg.batch_size, seed=epoch_seed(cfg.seed, epoch),
                                          min_batch=min_batch,
                                          bucket=cfg.length_bucketing)
        epoch += 1
    return batches[:needed], steps


def make_optimizer(model, cfg):
    """AdamW (fused when the parameters allow) or RMSprop, and the linear warm-up schedule of `cfg`."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        # the fused kernel does the whole update in one pass over the weights (same maths, ~3x less time)
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16) for p in params)
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=fused)
    else:
        opt = torch.optim.RMSprop(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_factor(s, cfg.warmup_steps))
    return opt, sched


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The learning rate's share at optimizer step `step` (from 0) of a linear warm-up: (step + 1) / (warmup + 1),
    so the first `warmup_steps` steps run below the full rate and step `warmup_steps` at it. One rule for the
    training loop and PPO."""
    return min(1.0, (step + 1) / (warmup_steps + 1)) if warmup_steps else 1.0


def disable_dropout(model) -> None:
    """Set every dropout probability to 0 (TRL does the same for DPO by default)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _size(examples: list[dict], example_weight: Callable[[dict], float] | None) -> float:
    return float(len(examples)) if example_weight is None else float(sum(example_weight(ex) for ex in examples))


@torch.no_grad()
def evaluate_objective(
    model, objective: Callable, data, collate: Callable, batch_size: int, autocast=contextlib.nullcontext,
    example_weight: Callable[[dict], float] | None = None, min_batch: int = 1,
) -> dict[str, float]:
    """Mean of the objective's metrics over a dataset under eval mode: batches weighted by their number of
    examples, or by `example_weight` summed over them (response tokens for SFT's token-mean loss). A last batch
    smaller than `min_batch` joins the one before it."""
    totals: dict[str, float] = {}
    n = 0
    with evaluating(model):
        starts = list(range(0, len(data), batch_size))
        if len(starts) > 1 and len(data) - starts[-1] < min_batch:
            starts.pop()
        for start, end in zip(starts, starts[1:] + [len(data)]):
            examples = [data[i] for i in range(start, end)]
            with autocast():
                _, metrics = objective(model, collate(examples))
            size = _size(examples, example_weight)
            for k, v in metrics.items():
                totals[k] = totals.get(k, 0.0) + v * size
            n += size
    return {f"eval_{k}": v / n for k, v in totals.items()}


def train_loop(
    model,
    train_data,
    eval_data,
    config,
    objective: Callable,
    collate: Callable,
    resume: bool = True,
    desc: str = "train",
    example_weight: Callable[[dict], float] | None = None,
    min_batch: int = 1,
    final_checkpoint: bool = True,
) -> list[dict]:
    """Run `config`'s schedule of optimizer steps; return the metrics history (one dict per step/eval).

    With `resume=True` and a checkpoint in `config.output_dir`, training continues from it and ends with the
    same weights and history as an uninterrupted run. A last batch smaller than `min_batch` joins the one before
    it (in training and evaluation). Stops with a FloatingPointError naming the step and
    batch if the loss or gradient norm is not finite (the last good checkpoint is kept). `final_checkpoint=False`
    skips the checkpoint after the last step (weights and AdamW's two moments: 3x the weights) for a caller that
    saves the weights itself and will not continue the run; a crash then resumes from the last periodic one.
    """
    from accelerate import Accelerator

    # cpu=True on machines without a GPU lets `accelerate launch`/torchrun start CPU processes (gloo)
    accelerator = Accelerator(cpu=config.use_cpu or not torch.cuda.is_available())
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.bf16 and accelerator.device.type != "cuda":
        raise ValueError("bf16=True is for GPUs: on this CPU bf16 is ~100x slower than fp32. Set bf16=False.")
    if config.batch_size % world:
        raise ValueError(f"batch_size ({config.batch_size}) must be a multiple of the number of processes ({world})")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if config.bf16 else contextlib.nullcontext
    out_dir = Path(config.output_dir)
    ckpt_path = out_dir / "checkpoint.pt"
    if config.disable_dropout:
        disable_dropout(model)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    # a batch is split across processes: each needs min_batch of its own
    min_batch = min_batch * world if min_batch > 1 else 1
    batches, total_steps = _micro_batches(len(train_data), pair_lengths(train_data), config, min_batch)
    model.to(accelerator.device)
    optimizer, scheduler = make_optimizer(model, config)
    history: list[dict] = []
    start_step = 0
    torch.manual_seed(config.seed)  # only dropout draws from the global generator
    fsdp = accelerator.distributed_type == "FSDP"
    if resume and ckpt_path.exists():
        if fsdp:
            raise RuntimeError(
                f"{ckpt_path} exists, but resuming under FSDP is not supported (the optimizer state is sharded "
                f"across processes and not saved): delete it, or resume without FSDP"
            )
        state = load_checkpoint(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        history, start_step = state["history"], state["step"]
    # wraps the model in DistributedDataParallel (or FSDP, per the accelerate config) when launched on
    # several processes; one process: the same objects. The scheduler is ours, stepped once per step.
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    # the fast path (`torch_compile`): the same module and parameters, forward and backward compiled by inductor
    # (fused element-wise kernels). It pays only on long runs: tens of seconds of compiling at the start and again at
    # new batch shapes, then a GPT-2-small DPO step ~6% faster on 2 CPU cores (bench/RESULTS.md). Plain: `wrapped`
    if config.torch_compile and world > 1:
        raise ValueError("torch_compile is tested in one process only; run several processes without it")
    forward = torch.compile(wrapped) if config.torch_compile else wrapped

    def checkpoint(step: int) -> None:
        model_state = accelerator.get_state_dict(wrapped)  # every process takes part (FSDP gathers shards)
        if accelerator.is_main_process:
            save_checkpoint(
                ckpt_path,
                {
                    "model": model_state,
                    "optimizer": None if fsdp else optimizer.state_dict(),  # FSDP: only this process's shard
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "history": history,
                    "step": step,
                    "config": asdict(config),
                },
            )
            write_json(out_dir / "history.json", history)
        accelerator.wait_for_everyone()

    def all_finite(value: torch.Tensor) -> bool:
        finite = torch.isfinite(value.detach()).all().float().to(accelerator.device)
        return bool(accelerator.reduce(finite, "min")) if world > 1 else bool(finite)  # every process stops together

    accum = config.gradient_accumulation_steps
    bar = tqdm(
        range(start_step, total_steps), desc=desc, initial=start_step, total=total_steps,
        disable=not (config.show_progress and accelerator.is_main_process),
    )
    for step in bar:
        sums: dict[str, float] = {}
        step_batches = batches[step * accum : (step + 1) * accum]
        examples = [[train_data[i] for i in index] for index in step_batches]
        step_size = sum(_size(ex, example_weight) for ex in examples)
        for k, index in enumerate(step_batches):
            # this process's share; a share left empty by a short last batch runs one example at weight 0
            # so that every process still takes part in the gradient all-reduce
            share = examples[k][rank::world]
            size = _size(share, example_weight)
            weight = size / step_size * world  # DDP averages over processes: x world makes it a sum
            batch = collate(share or examples[k][:1])
            sync = k == len(step_batches) - 1 or world == 1
            with contextlib.nullcontext() if sync else accelerator.no_sync(wrapped):
                with autocast():
                    loss, metrics = objective(forward, batch)
                if not all_finite(loss):
                    raise FloatingPointError(
                        f"{desc}: loss is {loss.item()} at step {step + 1}, micro-batch {k} (examples {index}). "
                        f"Training stopped; the last good checkpoint is {ckpt_path}. Usual causes: learning rate too "
                        f"high, fp16 overflow, or a degenerate batch."
                    )
                accelerator.backward(loss * weight)  # micro-batches weighted by size: one global batch's mean
            for key, v in metrics.items():
                sums[key] = sums.get(key, 0.0) + v * size
        if world > 1:  # metrics of the whole global batch
            totals = accelerator.reduce(torch.tensor(list(sums.values()), dtype=torch.float64,
                                                     device=accelerator.device), "sum")
            sums = dict(zip(sums, totals.tolist()))
        grad_norm = accelerator.clip_grad_norm_(wrapped.parameters(), config.max_grad_norm)
        if not all_finite(grad_norm):
            raise FloatingPointError(
                f"{desc}: gradient norm is {grad_norm.item()} at step {step + 1} (examples "
                f"{step_batches}). Training stopped; the last good checkpoint "
                f"is {ckpt_path}. Usual causes: learning rate too high or fp16 overflow."
            )
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        record = {"step": step + 1, "epoch": (step + 1) * accum * config.batch_size / len(train_data)}
        record.update({k: v / step_size for k, v in sums.items()})
        record.update({"grad_norm": grad_norm.item(), "learning_rate": lr})
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        last = step + 1 == total_steps
        if eval_data is not None and len(eval_data) and ((step + 1) % config.eval_every == 0 or last):
            # every process evaluates the whole (small) validation split: same numbers everywhere
            metrics = evaluate_objective(forward, objective, eval_data, collate, config.batch_size, autocast,
                                         example_weight, min_batch)
            history.append({"step": step + 1, **metrics})
        if (last and final_checkpoint) or (not last and (step + 1) % config.save_every == 0):
            checkpoint(step + 1)
        elif last and accelerator.is_main_process:  # no checkpoint, but the history is the run's, not a stale one
            write_json(out_dir / "history.json", history)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_disable()
    return history


