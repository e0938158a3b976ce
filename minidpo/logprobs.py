"""Sequence log-probabilities log pi(y|x): the quantity every DPO formula is written in.

    log pi(y|x) = sum_{t in response} log p(token_t | tokens_<t)

Labels are shifted by one (the logits at position t-1 predict token t); prompt and padding positions
are masked out; the EOS appended to each response counts (it is what teaches the model to stop).

1. The definition: `token_logprobs` and `sequence_logprobs` on full logits (what the tests pin everything to).
2. The fast path, an optimisation with the same numbers: `model_token_logprobs` / `model_sequence_logprobs`
   run the model once and apply the LM head only to the positions that predict a reply token
   (transformers' boolean `logits_to_keep`). On a 50k-token vocabulary the head and its log-softmax are a
   large share of the compute and memory, and prompts are often longer than replies: bench/dpo_step.py
   measures 1.5x per DPO step on CPU. (Packing sequences without padding was tried and did not pay on CPU.)
   Rows of very different lengths (a pair's chosen and rejected replies) run as two forwards of similar-length
   rows, each cut to its longest (`length_groups`): a GPT-2-small step of bench/dpo_step.py 6.44 -> 6.04-6.09 s.
3. The reference cache: log pi_ref of every pair, computed once per (reference, data), stored on disk and
   attached to the dataset as TRL's `ref_chosen_logps` / `ref_rejected_logps` columns.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from .batching import collate_preferences
from .utils import evaluating, save_torch

# ----------------------------------------------------------------------------- 1. the definition


def token_logprobs(logits: Tensor, input_ids: Tensor) -> Tensor:
    """log p(input_ids[b, t] | input_ids[b, <t]) for t >= 1: (B, T-1) in float32, from logits (B, T, V)."""
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def sequence_logprobs(logits: Tensor, input_ids: Tensor, response_mask: Tensor) -> Tensor:
    """For each row b: sum over t >= 1 with response_mask[b, t] == 1 of log p(input_ids[b, t] | input_ids[b, <t]).

    logits: (B, T, V) from a causal LM on input_ids (B, T). Returns (B,) in float32.
    """
    token_logps = token_logprobs(logits, input_ids)
    return (token_logps * response_mask[:, 1:].to(token_logps.dtype)).sum(-1)


# ----------------------------------------------------------------------------- 2. the fast path (optimisation)


def _device(model) -> torch.device:
    return next(getattr(model, "module", model).parameters()).device  # through a DDP / accelerate wrapper


def _row_ends(attention_mask: Tensor) -> Tensor:
    """One past each row's last real token: its length when the batch is right-padded."""
    return attention_mask.shape[1] - attention_mask.flip(1).int().argmax(1)


def length_groups(attention_mask: Tensor, min_saving: float = 0.1) -> list[Tensor]:
    """The rows of a right-padded batch as one group, or as two groups of similar length (each at least two rows)
    when that cuts the token positions a forward computes by `min_saving` or more. One forward pads every row
    to the longest; a DPO batch's chosen and rejected replies differ in length, so its rows often differ a lot."""
    ends = _row_ends(attention_mask)
    n, order = len(ends), torch.argsort(ends, stable=True)
    ends = ends[order].tolist()
    padded = [k * ends[k - 1] + (n - k) * ends[-1] for k in range(2, n - 1)]  # first group: the k shortest
    if not padded or min(padded) > (1 - min_saving) * n * ends[-1]:
        return [torch.arange(n, device=attention_mask.device)]
    k = 2 + padded.index(min(padded))
    return [order[:k].sort().values, order[k:].sort().values]


def model_token_logprobs(model, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Log-prob of every reply token of the batch, flattened: (token_logps (N,), row_index (N,)), row by row.

    A forward of the (possibly DDP-wrapped) transformers causal LM; `logits_to_keep` is the boolean mask of
    the positions that predict a reply token, so the head computes z = lm_head(h_{t-1}) there only, and
    log p(y_t | x, y_<t) = z[y_t] - logsumexp(z). The batch is moved to the model's device. Fast path beside it:
    rows of very different lengths run as two forwards, each cut to its own longest row (`length_groups`; not
    under DDP, whose gradient sync expects one forward per backward, nor for a `torch.compile`d model, which
    would compile each new shape); the same numbers up to float rounding.
    """
    device = _device(model)
    input_ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    scored = batch["response_mask"][:, 1:].to(device).bool()  # position t-1 predicts token t
    one_forward = hasattr(model, "module") or hasattr(model, "_orig_mod")  # DDP, torch.compile
    groups = [torch.arange(len(mask), device=device)] if one_forward else length_groups(mask)
    ends, logps, rows = _row_ends(mask), [], []
    for group in groups:
        width = int(ends[group].max())  # the group's right padding cut off
        ids, kept = input_ids[group, :width], scored[group, : width - 1]
        keep = F.pad(kept, (0, 1), value=False)  # the last position predicts nothing
        logits = model(input_ids=ids, attention_mask=mask[group, :width], logits_to_keep=keep, use_cache=False).logits
        if logits.dim() != 2:
            raise RuntimeError("model_token_logprobs needs transformers >= 5.23 (boolean logits_to_keep); "
                               "use sequence_logprobs(model(...).logits, ...) with older versions")
        logits = logits.float()
        targets = ids[:, 1:][kept]
        logps.append(logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1))
        rows.append(group[kept.nonzero(as_tuple=True)[0]])
    if len(groups) == 1:
        return logps[0], rows[0]
    rows = torch.cat(rows)
    order = torch.sort(rows, stable=True).indices  # row by row again; within a row, positions stay in order
    return torch.cat(logps)[order], rows[order]


def model_sequence_logprobs(model, batch: dict[str, Tensor]) -> Tensor:
    """log pi(y|x) for every row of the batch, from one forward pass: (B,), equal to
    `sequence_logprobs(model(input_ids).logits, input_ids, response_mask)` up to float rounding."""
    token_logps, rows = model_token_logprobs(model, batch)
    out = torch.zeros(batch["input_ids"].shape[0], dtype=token_logps.dtype, device=token_logps.device)
    return out.index_add(0, rows, token_logps)


# ----------------------------------------------------------------------------- 3. the reference cache


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
    cache_file = None
    if cache_dir is not None:
        key = f"{model_fingerprint(ref_model)}-{data_fingerprint(tokenized)}"
        cache_file = Path(cache_dir) / f"ref_logps-{key}.pt"
        if cache_file.exists():
            cached = torch.load(cache_file)
            return cached["chosen"], cached["rejected"]
    chosen, rejected = [], []
    with evaluating(ref_model):
        for start in tqdm(range(0, len(tokenized), batch_size), desc="reference log-probs", disable=not show_progress):
            examples = [tokenized[i] for i in range(start, min(start + batch_size, len(tokenized)))]
            c, r = model_sequence_logprobs(ref_model,
                                           collate_preferences(examples, pad_token_id)).float().cpu().chunk(2)
            chosen.append(c)
            rejected.append(r)
    out = torch.cat(chosen).float(), torch.cat(rejected).float()
    if cache_file is not None:
        save_torch(cache_file, {"chosen": out[0], "rejected": out[1]})
    return out


def with_reference_logprobs(tokenized, chosen: Tensor, rejected: Tensor):
    """The tokenized dataset with `ref_chosen_logps`/`ref_rejected_logps` columns added (TRL's names)."""
    for name in ("ref_chosen_logps", "ref_rejected_logps"):
        if name in tokenized.column_names:
            tokenized = tokenized.remove_columns(name)
    return tokenized.add_column("ref_chosen_logps", chosen.tolist()).add_column("ref_rejected_logps", rejected.tolist())


def reference_columns(ref_model, tokenized, pad_token_id: int, batch_size: int = 8, cache_dir: str | Path | None = None,
                      show_progress: bool = True):
    """`precompute_reference_logprobs` attached with `with_reference_logprobs`: the dataset DPO trains on."""
    chosen, rejected = precompute_reference_logprobs(ref_model, tokenized, pad_token_id, batch_size, cache_dir,
                                                     show_progress)
    return with_reference_logprobs(tokenized, chosen, rejected)
