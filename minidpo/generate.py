"""Seeded sampling from a causal LM, batched with left padding and the KV cache (HF `generate`)."""

from __future__ import annotations

import torch
from tqdm import tqdm

from .batching import tokenize_prompts
from .utils import batch_seed, evaluating


@torch.inference_mode()
def generate_responses(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 16,
    show_progress: bool = True,
) -> tuple[list[str], list[list[int]]]:
    """One sampled response per prompt (temperature 0 = greedy), in the order of `prompts`.

    Prompts are tokenized exactly as in training (`minidpo.data.tokenize_prompts`). Each batch reseeds
    torch with `utils.batch_seed(seed, batch number)`, so the same seed gives the same text whatever ran before.
    Top-k is off: only temperature and top-p shape the distribution. Generation stops at EOS; the EOS and anything
    after it are not returned. Returns (texts, token_ids): the decoded replies, and each reply's token ids
    exactly as drawn (ending in the EOS when one was sampled), for scoring them without re-tokenizing.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = tokenize_prompts(tokenizer, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))  # similar lengths pad less
    device = next(model.parameters()).device
    outputs: dict[int, str] = {}
    token_ids: dict[int, list[int]] = {}
    starts = range(0, len(order), batch_size)
    with evaluating(model):
        for b, start in enumerate(tqdm(starts, desc=f"sampling T={temperature}", disable=not show_progress)):
            index = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in index)
            ids = torch.full((len(index), width), pad, dtype=torch.long)
            mask = torch.zeros((len(index), width), dtype=torch.long)
            for row, i in enumerate(index):  # left padding: every prompt ends where generation starts
                ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]) :] = 1
            torch.manual_seed(batch_seed(seed, b))
            sampling = (dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=0) if temperature > 0
                        else dict(do_sample=False))
            generated = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
            for row, i in enumerate(index):
                new = generated[row, width:].tolist()
                if tokenizer.eos_token_id in new:
                    token_ids[i] = new[: new.index(tokenizer.eos_token_id) + 1]
                    new = new[: new.index(tokenizer.eos_token_id)]
                else:
                    token_ids[i] = new  # stopped at max_new_tokens (generate pads only after an EOS)
                outputs[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return [outputs[i] for i in range(len(prompts))], [token_ids[i] for i in range(len(prompts))]
