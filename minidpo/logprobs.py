"""Sequence log-probabilities log pi(y|x): the quantity every DPO formula is written in.

    log pi(y|x) = sum_{t in response} log p(token_t | tokens_<t)

Labels are shifted by one (the logits at position t-1 predict token t); prompt and padding positions
are masked out; the EOS appended to each response counts (it is what teaches the model to stop).

`sequence_logprobs` is the reference definition on full logits. `model_sequence_logprobs` computes the
same numbers faster: it runs the transformer body, keeps the hidden states of response positions only,
and applies the LM head to those. On a 50k-token vocabulary the head is a large share of the compute,
and prompts are often longer than responses.
"""

from __future__ import annotations

import hashlib
import json
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


def _head_and_body(model):
    """(body, lm_head) when the model is body -> linear head with nothing after it, else None."""
    config = model.config
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None  # models that transform logits after the head: use the plain path
    body, head = getattr(model, "base_model", None), model.get_output_embeddings()
    if body is None or body is model or head is None:
        return None
    return body, head


def response_token_logprobs(model, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Log-prob of every response token in the batch, flattened: (token_logps (N,), row_index (N,)).

    Runs the model once on `batch["input_ids"]` (B, T) with its attention mask, then scores only the
    positions that predict a response token.
    """
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    scored = batch["response_mask"][:, 1:].bool()  # position t-1 predicts token t
    targets = input_ids[:, 1:][scored]
    rows = scored.nonzero()[:, 0]
    split = _head_and_body(model)
    if split is None:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        logits = logits[:, :-1][scored]
    else:
        body, head = split
        hidden = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        logits = head(hidden[:, :-1][scored])  # (N, V): the head runs on response positions only
    logits = logits.float()
    token_logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return token_logps, rows


def model_sequence_logprobs(model, batch: dict[str, Tensor]) -> Tensor:
    """log pi(y|x) for every row of the batch, from one forward pass: (B,), equal to
    `sequence_logprobs(model(input_ids).logits, input_ids, response_mask)`."""
    token_logps, rows = response_token_logprobs(model, batch)
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


@torch.no_grad()
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
        c, r = logps.chunk(2)
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
