"""From records to model inputs: tokenize prompts and replies, collate right-padded batches, order batches.

Tokenization follows TRL: the prompt is tokenized as the tokenizer does by default (so a BOS appears
exactly when the tokenizer adds one: Llama yes, GPT-2 and SmolLM2 no), each response without special
tokens, and one EOS is appended to each response so the model learns to stop.

A pair batch stacks [chosen...; rejected...] into 2B right-padded rows with `input_ids`, `attention_mask` and
`response_mask` (1 on reply tokens, the EOS included; TRL's `completion_mask`); an SFT batch is B rows of
prompt + completion.
"""

from __future__ import annotations

from typing import Sequence

import torch
from datasets import Dataset

from .validation import PreferenceDataError


def tokenize_prompts(tokenizer, prompts: list[str]) -> list[list[int]]:
    """Prompt token ids as the tokenizer makes them by default: a BOS only if the tokenizer adds one."""
    return tokenizer(prompts)["input_ids"]


def _encode_prompts(tokenizer, prompts: list[str], max_prompt_length: int) -> tuple[list[list[int]], list[bool]]:
    """Prompt ids cut to their last `max_prompt_length` tokens (a BOS, if any, is kept), and which were cut."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    out, cut = [], []
    for ids in tokenize_prompts(tokenizer, prompts):
        cut.append(len(ids) > max_prompt_length)
        if len(ids) > max_prompt_length:
            keep_bos = bos is not None and ids[0] == bos and bos != eos
            ids = ids[:1] + ids[-(max_prompt_length - 1) :] if keep_bos else ids[-max_prompt_length:]
        out.append(ids)
    return out, cut


def _encode_responses(tokenizer, texts: list[str]) -> list[list[int]]:
    """Response ids without special tokens, ending in exactly one EOS."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; responses need one so the model learns to stop")
    eos = tokenizer.eos_token_id
    return [ids if ids and ids[-1] == eos else ids + [eos]
            for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def tokenize_sft(
    ds: Dataset, tokenizer, response: str = "chosen", max_length: int = 512, max_prompt_length: int = 256
) -> tuple[Dataset, dict[str, int]]:
    """Token ids for supervised fine-tuning on one reply per prompt: `prompt_ids` and `completion_ids` (column
    `response`, ending in one EOS; TRL's prompt-completion layout). Prompts are cut as in
    `tokenize_preferences`; examples still longer than `max_length` are dropped and counted."""
    if not 0 < max_prompt_length < max_length:
        raise ValueError(f"need 0 < max_prompt_length ({max_prompt_length}) < max_length ({max_length})")
    if response not in ds.column_names:
        raise ValueError(f"no column {response!r} to fine-tune on; columns: {ds.column_names}")

    def encode(batch):
        prompt_ids, cut = _encode_prompts(tokenizer, batch["prompt"], max_prompt_length)
        return {"prompt_ids": prompt_ids, "completion_ids": _encode_responses(tokenizer, batch[response]),
                "prompt_truncated": cut}

    keep = [c for c in ("record_id",) if c in ds.column_names]
    out = ds.map(encode, batched=True, remove_columns=[c for c in ds.column_names if c not in keep], desc="tokenizing")
    n_cut = sum(out["prompt_truncated"])
    out = out.remove_columns("prompt_truncated")
    long = {i for i, (p, c) in enumerate(zip(out["prompt_ids"], out["completion_ids"])) if len(p) + len(c) > max_length}
    out = out.select([i for i in range(len(out)) if i not in long]) if long else out
    return out, {"overlong": len(long), "prompt_truncated": n_cut}


def tokenize_preferences(
    ds: Dataset,
    tokenizer,
    max_length: int = 512,
    max_prompt_length: int = 256,
    overlong: str = "error",
) -> tuple[Dataset, dict[str, int]]:
    """Token ids for each pair: `prompt_ids`, `chosen_ids`, `rejected_ids` (each response ends in one EOS).

    Truncation keeps the response: a prompt longer than `max_prompt_length` loses its *start* (a BOS, if
    any, is kept). If prompt + the longer response still exceeds `max_length`, the pair is over-long and
    `overlong` decides: "error" raises naming the record, "drop" drops it (counted in the returned dict),
    "truncate" cuts the responses' ends (they then lose their EOS). The returned counts say how many pairs
    were over-long and how many prompts were shortened.
    """
    if overlong not in ("error", "drop", "truncate"):
        raise ValueError(f"overlong must be 'error', 'drop' or 'truncate', got {overlong!r}")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; responses need one so the model learns to stop")
    if not 0 < max_prompt_length < max_length:
        raise ValueError(f"need 0 < max_prompt_length ({max_prompt_length}) < max_length ({max_length})")

    def encode(batch):
        out = {f"{name}_ids": _encode_responses(tokenizer, batch[name]) for name in ("chosen", "rejected")}
        out["prompt_ids"], out["prompt_truncated"] = _encode_prompts(tokenizer, batch["prompt"], max_prompt_length)
        return out

    tokenized = ds.map(encode, batched=True, desc="tokenizing")
    n_cut = sum(tokenized["prompt_truncated"])
    tokenized = tokenized.remove_columns("prompt_truncated")
    lengths = [
        (len(p) + len(c), len(p) + len(r))
        for p, c, r in zip(tokenized["prompt_ids"], tokenized["chosen_ids"], tokenized["rejected_ids"])
    ]
    too_long = [i for i, (lc, lr) in enumerate(lengths) if max(lc, lr) > max_length]
    counts = {"overlong": len(too_long), "prompt_truncated": n_cut}  # nothing changes silently
    if not too_long:
        return tokenized, counts
    if overlong == "error":
        i = too_long[0]
        lc, lr = lengths[i]
        name, n = ("chosen", lc) if lc >= lr else ("rejected", lr)
        raise PreferenceDataError(
            f"{len(too_long)} over-long pair(s); first: record {tokenized[i]['record_id']}, field {name!r}: "
            f"prompt + response is {n} tokens > max_length={max_length} (after cutting the prompt to "
            f"max_prompt_length={max_prompt_length}). Raise max_length, or pass overlong='drop' or 'truncate'."
        )
    if overlong == "drop":
        bad = set(too_long)
        return tokenized.select([i for i in range(len(tokenized)) if i not in bad]), counts

    def cut(row):
        room = max_length - len(row["prompt_ids"])
        return {"chosen_ids": row["chosen_ids"][:room], "rejected_ids": row["rejected_ids"][:room]}

    return tokenized.map(cut, desc="truncating"), counts


def pair_lengths(tokenized: Dataset) -> list[int]:
    """Tokens of each example's longest sequence (what padding a batch costs): prompt + the longer reply of a
    pair, or prompt + completion of an SFT example."""
    if "completion_ids" in tokenized.column_names:
        return [len(p) + len(c) for p, c in zip(tokenized["prompt_ids"], tokenized["completion_ids"])]
    if "ranked_ids" in tokenized.column_names:
        return [len(p) + max(map(len, r)) for p, r in zip(tokenized["prompt_ids"], tokenized["ranked_ids"])]
    if "chosen_ids" not in tokenized.column_names:  # prompts only (online DPO samples the replies)
        return [len(p) for p in tokenized["prompt_ids"]]
    return [
        len(p) + max(len(c), len(r))
        for p, c, r in zip(tokenized["prompt_ids"], tokenized["chosen_ids"], tokenized["rejected_ids"])
    ]


def completions_from_pairs(tokenized: Dataset, side: str = "chosen") -> Dataset:
    """SFT examples (`prompt_ids`, `completion_ids`) from tokenized pairs: one side of each pair (Preferred-FT
    fine-tunes on the chosen replies)."""
    keep = [c for c in ("record_id", "prompt_ids") if c in tokenized.column_names]
    return tokenized.select_columns(keep + [f"{side}_ids"]).rename_column(f"{side}_ids", "completion_ids")



def _pad(seqs: list[list[int]], value: int, multiple: int | None) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    if multiple:
        width = -(-width // multiple) * multiple
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def _collate(seqs: list[list[int]], response_masks: list[list[int]], pad_token_id: int, multiple: int | None) -> dict:
    if pad_token_id is None:
        raise ValueError("pad_token_id is None: set tokenizer.pad_token (e.g. to tokenizer.eos_token)")
    return {
        "input_ids": _pad(seqs, pad_token_id, multiple),
        "attention_mask": _pad([[1] * len(s) for s in seqs], 0, multiple),
        "response_mask": _pad(response_masks, 0, multiple),
    }


def _prompt_reply_rows(prompts: list, replies: list, pad_token_id: int, multiple: int | None) -> dict:
    seqs = [list(p) + list(r) for p, r in zip(prompts, replies)]
    resp = [[0] * len(p) + [1] * len(r) for p, r in zip(prompts, replies)]
    return _collate(seqs, resp, pad_token_id, multiple)


def collate_preferences(
    examples: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None, mismatched: bool = False
) -> dict[str, torch.Tensor]:
    """Stack chosen and rejected sequences into one right-padded batch of 2B rows: [chosen..., rejected...].

    Returns `input_ids`, `attention_mask` (1 on real tokens) and `response_mask` (1 on response tokens,
    including the EOS) -- TRL's `completion_mask` -- plus `ref_chosen_logps`/`ref_rejected_logps` when the
    examples carry precomputed reference log-probs. With `mismatched=True` (KTO's KL estimate) also
    `mismatched_*`: the same 2B prompts, each with the reply of the row before it (replies cycled by one, as
    TRL's KTO collator does), so no prompt meets its own reply. A batch of one pair has no mismatched reply and
    gets no such rows.
    """
    prompts = [ex["prompt_ids"] for ex in examples] * 2
    replies = [ex["chosen_ids"] for ex in examples] + [ex["rejected_ids"] for ex in examples]
    batch = _prompt_reply_rows(prompts, replies, pad_token_id, pad_to_multiple_of)
    for key in ("ref_chosen_logps", "ref_rejected_logps"):
        if key in examples[0]:
            batch[key] = torch.tensor([ex[key] for ex in examples], dtype=torch.float32)
    if mismatched and len(examples) > 1:
        rows = _prompt_reply_rows(prompts, replies[-1:] + replies[:-1], pad_token_id, pad_to_multiple_of)
        batch.update({f"mismatched_{k}": v for k, v in rows.items()})
    return batch


def collate_rankings(examples: list[dict], pad_token_id: int, pad_to_multiple_of: int | None = None) -> dict:
    """K-way rankings (`prompt_ids`, `ranked_ids`: K replies, best first) as K*B right-padded rows stacked rank
    by rank: [best of each prompt...; second...; ...; worst...], plus `num_ranked` = K. With `ranked_rewards`
    (the scores that ordered them) also `strict` (B, K): whether reply k is strictly better than every later one
    (`losses.plackett_luce_loss` skips the stages a tie leaves unordered)."""
    k = len(examples[0]["ranked_ids"])
    if any(len(ex["ranked_ids"]) != k for ex in examples):
        raise ValueError("every ranking in a batch needs the same number of replies")
    prompts = [ex["prompt_ids"] for ex in examples] * k
    replies = [ex["ranked_ids"][rank] for rank in range(k) for ex in examples]
    batch = {**_prompt_reply_rows(prompts, replies, pad_token_id, pad_to_multiple_of), "num_ranked": k}
    if "ranked_rewards" in examples[0]:
        rewards = torch.tensor([ex["ranked_rewards"] for ex in examples], dtype=torch.float64)
        # best first, so reply k beats every later one exactly when it beats the next; the last stage is 0 anyway
        batch["strict"] = torch.cat([rewards[:, :-1] > rewards[:, 1:],
                                     torch.ones(len(examples), 1, dtype=torch.bool)], 1)
    return batch


def collate_sft(examples: list[dict], pad_token_id: int,
                pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Prompt + completion (`tokenize_sft`'s `completion_ids`), right-padded; B rows."""
    return _prompt_reply_rows([ex["prompt_ids"] for ex in examples], [ex["completion_ids"] for ex in examples],
                              pad_token_id, pad_to_multiple_of)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, bucket: bool = True,
                           min_batch: int = 1) -> list[list[int]]:
    """Shuffle, then (if `bucket`) sort within windows of 50 batches by length so each batch pads little.

    Batches are shuffled again so training does not see lengths in order. Same seed, same batches.
    The last batch may be smaller; one smaller than `min_batch` joins the batch before it (KTO needs two pairs
    for its reference point).
    """
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=g).tolist()
    if bucket:
        window = 50 * batch_size
        order = [
            i for w in range(0, len(order), window) for i in sorted(order[w : w + window], key=lambda j: lengths[j])
        ]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < min_batch:
        last = batches.pop()
        batches[-1] = batches[-1] + last
    perm = torch.randperm(len(batches), generator=g).tolist()
    return [batches[i] for i in perm]
