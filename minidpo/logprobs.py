"""Sequence log-probabilities log pi(y|x): the quantity every DPO formula is written in.

    log pi(y|x) = sum_{t in response} log p(token_t | tokens_<t)

Labels are shifted by one (the logits at position t-1 predict token t); prompt and padding positions
are masked out; the EOS appended to each response counts (it is what teaches the model to stop).

`sequence_logprobs` is the reference definition on full logits. `model_sequence_logprobs` computes the
same numbers faster, in two ways:
- it keeps the hidden states of response positions only and applies the LM head to those. On a
  50k-token vocabulary the head is a large share of the compute, and prompts are often longer than
  responses;
- it packs the batch's sequences into rows without padding (position ids restart at each sequence, so
  each attends only to itself). A batch of pairs of unequal length is otherwise 20-30% padding.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm


def sequence_logprobs(logits: Tensor, input_ids: Tensor, response_mask: Tensor) -> Tensor:
    """For each row b: sum over t >= 1 with response_mask[b, t] == 1 of log p(input_ids[b, t] | input_ids[b, <t]).

    logits: (B, T, V) from a causal LM on input_ids (B, T). Returns (B,) in float32.
    """
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    token_logps = logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token_logps * response_mask[:, 1:].to(token_logps.dtype)).sum(-1)


def _unwrap(model):
    """The model inside a DistributedDataParallel / accelerate wrapper (the wrapper's forward is still used)."""
    return getattr(model, "module", model)


def _is_fsdp(model) -> bool:
    fsdp = getattr(torch.distributed, "fsdp", None) if torch.distributed.is_available() else None
    kinds = tuple(k for k in (getattr(fsdp, "FullyShardedDataParallel", None), getattr(fsdp, "FSDPModule", None)) if k)
    return bool(kinds) and isinstance(model, kinds)


def _head_and_body(model):
    """(body, lm_head) when the model is body -> linear head with nothing after it, else None."""
    inner = _unwrap(model)
    config = inner.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None  # models that transform logits after the head: use the plain path
    if _is_fsdp(model):
        return None  # FSDP owns the head's sharded weight: only its own forward may touch it
    body, head = getattr(inner, "base_model", None), inner.get_output_embeddings()
    if body is None or body is inner or head is None:
        return None
    return body, head


def pack_sequences(batch: dict[str, Tensor], capacity: int | None = None) -> dict[str, Tensor]:
    """Re-lay a right-padded batch (B, T) as packed rows (R, L) so that no padding is computed.

    Sequences are placed first-fit-decreasing into rows of at most `capacity` tokens (default: twice the
    longest sequence, so attention over a row costs at most ~2x that of the padded batch); `position_ids`
    restart at 0 at every sequence, which makes transformers build a block-diagonal causal mask (each
    sequence attends only to itself). Returns `input_ids`, `position_ids` (R, L), and for every scored
    position (one predicting a response token) its `row`, `col`, `target` token and `owner` (row in the
    original batch).
    """
    input_ids, attention_mask, response_mask = batch["input_ids"], batch["attention_mask"], batch["response_mask"]
    lengths = attention_mask.sum(1).tolist()
    capacity = capacity or 2 * max(lengths)
    rows: list[list[int]] = []  # sequence indices per row
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        k = next((k for k, r in enumerate(room) if r >= lengths[i]), None)
        if k is None:
            rows.append([])
            room.append(capacity)
            k = len(rows) - 1
        rows[k].append(i)
        room[k] -= lengths[i]
    width = max(capacity - r for r in room)
    packed = torch.zeros(len(rows), width, dtype=input_ids.dtype)
    positions = torch.zeros(len(rows), width, dtype=torch.long)
    row, col, owner = [], [], []
    for k, members in enumerate(rows):
        offset = 0
        for i in members:
            n = lengths[i]
            packed[k, offset : offset + n] = input_ids[i, :n]
            positions[k, offset : offset + n] = torch.arange(n)
            t = response_mask[i, 1:n].nonzero()[:, 0]  # position t predicts token t + 1
            row.append(torch.full_like(t, k))
            col.append(t + offset)
            owner.append(torch.full_like(t, i))
            offset += n
        positions[k, offset:] = torch.arange(width - offset)  # the tail is a separate dummy sequence
    row, col = torch.cat(row), torch.cat(col)
    return {
        "input_ids": packed,
        "position_ids": positions,
        "row": row,
        "col": col,
        "target": packed[row, col + 1],
        "owner": torch.cat(owner),
    }


_PACKING_OK: dict[type, bool] = {}


def _packing_supported(model) -> bool:
    """Whether this architecture honours packed position_ids (checked once per class on two short sequences)."""
    kind = type(_unwrap(model))
    if kind not in _PACKING_OK:
        ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0]])
        probe = {
            "input_ids": ids,
            "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
            "response_mask": torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]]),
        }
        was_training = model.training
        model.eval()  # dropout would make the two passes differ
        with torch.no_grad():
            padded = model_sequence_logprobs(model, probe, packing=False)
            packed = model_sequence_logprobs(model, probe, packing=True, _checked=True)
        model.train(was_training)
        _PACKING_OK[kind] = bool(torch.allclose(padded, packed, rtol=1e-3, atol=1e-3))
        if not _PACKING_OK[kind]:
            warnings.warn(f"{kind.__name__} does not isolate packed sequences; minidpo computes it on padded batches")
    return _PACKING_OK[kind]


@functools.cache
def _takes_logits_to_keep(kind: type) -> bool:
    return "logits_to_keep" in inspect.signature(kind.forward).parameters


def _forward_hidden(model, body, **inputs) -> Tensor:
    """Last hidden states of `body`, obtained through the (possibly wrapped) model's own forward.

    Going through the top-level forward keeps DistributedDataParallel's gradient sync intact; asking it
    for the logits of one position only (`logits_to_keep=1`) keeps it from computing the full-vocab head.
    """
    captured = []
    handle = body.register_forward_hook(lambda module, args, out: captured.append(out[0]))
    try:
        extra = {"logits_to_keep": 1} if _takes_logits_to_keep(type(_unwrap(model))) else {}
        model(**inputs, use_cache=False, **extra)
    finally:
        handle.remove()
    return captured[-1]


def response_token_logprobs(model, batch: dict[str, Tensor], packing: bool = True, _checked: bool = False) -> tuple[Tensor, Tensor]:
    """Log-prob of every response token in the batch, flattened: (token_logps (N,), row_index (N,)).

    Runs the model once on the batch's sequences and scores only the positions that predict a response
    token: log p(y_t | x, y_<t) = z[y_t] - logsumexp(z), z = lm_head(h_{t-1}). With `packing` (default)
    the sequences are packed into rows without padding (`pack_sequences`); the numbers are the same as on
    the padded batch up to float rounding. The batch is moved to the model's device.
    """
    device = next(_unwrap(model).parameters()).device
    batch = {k: batch[k] for k in ("input_ids", "attention_mask", "response_mask")}
    if packing and (_checked or _packing_supported(model)):
        # the layout is built on the host (the collator's tensors live there), then moved once
        p = {k: v.to(device) for k, v in pack_sequences(batch).items()}
        inputs = {"input_ids": p["input_ids"], "position_ids": p["position_ids"]}
        where, targets, rows = (p["row"], p["col"]), p["target"], p["owner"]
    else:
        batch = {k: v.to(device) for k, v in batch.items()}
        input_ids = batch["input_ids"]
        inputs = {"input_ids": input_ids, "attention_mask": batch["attention_mask"]}
        scored = batch["response_mask"][:, 1:].bool()  # position t-1 predicts token t
        rows, cols = scored.nonzero(as_tuple=True)
        where, targets = (rows, cols), input_ids[rows, cols + 1]
    split = _head_and_body(model)
    if split is None:
        logits = model(**inputs, use_cache=False).logits[where]
    else:
        body, head = split
        logits = head(_forward_hidden(model, body, **inputs)[where])  # (N, V): the head on response positions only
    logits = logits.float()
    token_logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return token_logps, rows


def model_sequence_logprobs(model, batch: dict[str, Tensor], packing: bool = True, _checked: bool = False) -> Tensor:
    """log pi(y|x) for every row of the batch, from one forward pass: (B,), equal to
    `sequence_logprobs(model(input_ids).logits, input_ids, response_mask)`."""
    token_logps, rows = response_token_logprobs(model, batch, packing=packing, _checked=_checked)
    out = torch.zeros(batch["input_ids"].shape[0], dtype=token_logps.dtype, device=token_logps.device)
    return out.index_add(0, rows, token_logps)


def model_fingerprint(model) -> str:
    """A hash of the model's parameter values: equal weights, equal fingerprint."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(tokenized) -> str:
    """A hash of the tokenized pairs (prompt/chosen/rejected ids, in order)."""
    h = hashlib.blake2b(digest_size=16)
    for key in ("prompt_ids", "chosen_ids", "rejected_ids"):
        h.update(json.dumps(list(tokenized[key])).encode())
    return h.hexdigest()


@torch.inference_mode()
def precompute_reference_logprobs(
    ref_model,
    tokenized,
    pad_token_id: int,
    batch_size: int = 8,
    cache_dir: str | Path | None = None,
    show_progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """log pi_ref(y_w|x) and log pi_ref(y_l|x) for every pair of a tokenized dataset, computed once.

    With `cache_dir`, results are stored under a key made of the model's and the data's fingerprints, so a
    rerun (or a resumed run) with the same reference and data reads them back instead of recomputing.
    Returns two float32 tensors of shape (len(tokenized),).
    """
    from .data import collate_preferences

    cache_file = None
    if cache_dir is not None:
        key = f"{model_fingerprint(ref_model)}-{data_fingerprint(tokenized)}"
        cache_file = Path(cache_dir) / f"ref_logps-{key}.pt"
        if cache_file.exists():
            cached = torch.load(cache_file)
            return cached["chosen"], cached["rejected"]
    was_training = ref_model.training
    ref_model.eval()
    chosen, rejected = [], []
    starts = range(0, len(tokenized), batch_size)
    for start in tqdm(starts, desc="reference log-probs", disable=not show_progress):
        examples = [tokenized[i] for i in range(start, min(start + batch_size, len(tokenized)))]
        logps = model_sequence_logprobs(ref_model, collate_preferences(examples, pad_token_id))
        c, r = logps.float().cpu().chunk(2)
        chosen.append(c)
        rejected.append(r)
    ref_model.train(was_training)
    out = torch.cat(chosen).float(), torch.cat(rejected).float()
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        torch.save({"chosen": out[0], "rejected": out[1]}, tmp)
        tmp.replace(cache_file)
    return out
