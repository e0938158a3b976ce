"""Seeded sampling from a causal LM: a plain decode loop with a reserved KV cache and left padding.

Why not `model.generate`? Three things it cannot give us, measured on SmolLM2-135M on a 2-core CPU
(`bench/generate.py`, `bench/RESULTS.md`):
- **One random number per token, per prompt.** `generate` draws with `torch.multinomial`, which spends one
  exponential random number per vocabulary entry (49,152 per row and step: a fifth of the sampling time). We
  draw by inverting the CDF with one uniform, and each prompt has its own stream: a reply depends on the seed,
  the prompt's place in the list and the model, and on the batch it was drawn in only through float32 rounding
  (a batch of another size computes logits that differ by ~1e-5; measured on SmolLM2, 3 of 24 replies of 64
  tokens then took another token somewhere), so the batch size can be chosen for speed.
- **Finished rows leave the batch.** A row that has sampled EOS is dropped from the batch and the KV cache, so a
  batch costs its replies' tokens, not its longest reply times its rows (SmolLM2's replies to the bench's 128
  prompts end after 39 of 64 tokens on average). Dropping copies the cache of the rows that go on; carrying
  finished rows and dropping them only in bulk showed no gain when measured (each costs a full row of compute per
  step). The cache is reserved once per batch (`ReservedLayer`), so a step writes its keys and values in
  place instead of concatenating them onto a new copy of the cache.
- **The model's log-probability of each reply comes with it.** At temperature 1 and top-p 1 that is the
  policy's half of the Monte-Carlo KL estimate (`evaluate.sampled_log_ratios(..., policy_logps=...)`), with no
  second forward pass.
"""

from __future__ import annotations

import inspect

import torch
from tqdm import tqdm
from transformers.cache_utils import Cache, DynamicLayer

from .batching import tokenize_prompts
from .utils import evaluating, prompt_seed


SAMPLER = "inverse-CDF, one uniform stream per prompt"  # in the stage keys of cached samples: a new sampler resamples


def draw(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0) -> torch.Tensor:
    """One token per row of `logits` (rows, vocab) from softmax(logits / temperature), restricted to the top-p
    nucleus, by inverse-CDF sampling: the first token whose cumulative probability exceeds the row's uniform
    (`uniforms`, one in [0, 1) per row). Temperature 0 is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = (logits.double() / temperature if temperature != 1 else logits.double()).softmax(-1)
    order = None
    if top_p < 1:  # keep the most probable tokens until their mass reaches top_p (at least one)
        probs, order = probs.sort(dim=-1, descending=True, stable=True)
        probs = probs * ((probs.cumsum(-1) - probs) < top_p)
    cdf = probs.cumsum(-1)
    token = torch.searchsorted(cdf, (uniforms.double() * cdf[:, -1]).unsqueeze(-1), right=True)
    # u * total can round onto the CDF's end (past every token) or, where the cumulative sum is not sequential (a
    # GPU's scan), onto a token of probability 0: take the last token of positive probability, never one top-p cut
    past = (token == probs.shape[-1]) | (probs.gather(-1, token.clamp(max=probs.shape[-1] - 1)) == 0)
    if past.any():
        token = torch.minimum(token, (probs > 0).cumsum(-1).argmax(-1, keepdim=True))
    return (order.gather(-1, token) if order is not None else token).squeeze(-1)


class ReservedLayer(DynamicLayer):
    """One layer's KV cache in buffers reserved at the prefill for the prompt and `room` more tokens: each decode
    step writes its key and value in place (transformers' `DynamicLayer` concatenates, copying the layer's whole
    cache at every step: 1.4 s of a 29 s sampling run at batch 128 in `bench/generate.py`). `keys` and `values` are
    views of the positions written so far, so attention and the masks see exactly what a DynamicLayer holds. The
    decode loop's operations only (update, dropping rows, reset); the others raise rather than desynchronise."""

    is_croppable = False

    def __init__(self, room: int):
        super().__init__()
        self.room, self.length = room, 0

    def _unsupported(self, *args, **kwargs):
        raise NotImplementedError("a ReservedLayer supports update, batch_select_indices and reset only")

    lazy_initialization = crop = batch_repeat_interleave = reorder_cache = offload = prefetch = _unsupported

    def reset(self) -> None:
        self.keys = self.values = self.key_buffer = self.value_buffer = None
        self.length, self.is_initialized = 0, False

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            rows, heads, length, dim = key_states.shape
            self.key_buffer = key_states.new_empty(rows, heads, length + self.room, dim)
            self.value_buffer = value_states.new_empty(rows, heads, length + self.room, dim)
            self.device, self.is_initialized = key_states.device, True
        end = self.length + key_states.shape[-2]
        if end > self.key_buffer.shape[-2]:
            raise RuntimeError(f"KV cache full: {end} positions, {self.key_buffer.shape[-2]} reserved")
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows `indices`, in new buffers; only the positions written so far are copied. (Filling
        the finished rows' places from the end would copy fewer rows, but a row's place in the batch changes its
        float32 rounding: measured on SmolLM2, 4 of 128 replies then took another token somewhere.)"""
        if not self.is_initialized:
            return
        written = slice(0, self.length)
        for name in ("key_buffer", "value_buffer"):
            old = getattr(self, name)
            new = old.new_empty(len(indices), *old.shape[1:])
            torch.index_select(old[:, :, written], 0, indices, out=new[:, :, written])
            setattr(self, name, new)
        self.keys, self.values = self.key_buffer[:, :, written], self.value_buffer[:, :, written]


def reserved_cache(room: int) -> Cache:
    """A KV cache of `ReservedLayer`s, each with `room` positions beyond the prompt."""
    return Cache(layer_class_to_replicate=lambda: ReservedLayer(room))


def left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of token-id rows padded on the left: every row ends where generation starts."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r) :] = 1
    return ids, mask


def _cache_argument(model) -> str:
    """The name of the forward's KV-cache argument: `cache` from transformers 5.25 on, `past_key_values` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.inference_mode()
def generate_responses(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    batch_size: int = 32,
    show_progress: bool = True,
    return_logps: bool = False,
):
    """One sampled reply per prompt (temperature 0 = greedy), in the order of `prompts`.

    Prompts are tokenized exactly as in training (`minidpo.batching.tokenize_prompts`). Prompt i (its index in
    `prompts`) draws its tokens with the uniforms of `torch.Generator().manual_seed(utils.prompt_seed(seed, i))`,
    so the same seed gives the same replies whatever ran before (and, up to float32 rounding, whatever the batch
    size). Top-k is off: only temperature and top-p shape the distribution. Generation stops at EOS; the EOS and
    anything after it are not returned.

    Returns (texts, token_ids): the decoded replies, and each reply's token ids exactly as drawn (ending in the
    EOS when one was sampled), for scoring them without re-tokenizing. With `return_logps`, also a tensor of each
    reply's log-probability under the model (sum over its token ids, at temperature 1, whatever `temperature`).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    encoded = tokenize_prompts(tokenizer, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))  # similar lengths pad less
    device = next(model.parameters()).device
    token_ids: list[list[int]] = [[] for _ in prompts]
    logps = torch.zeros(len(prompts), dtype=torch.float64)
    starts = range(0, len(order), batch_size)
    with evaluating(model):
        for start in tqdm(starts, desc=f"sampling T={temperature}", disable=not show_progress):
            index = order[start : start + batch_size]
            uniforms = torch.stack([torch.rand(max_new_tokens, dtype=torch.float64,
                                               generator=torch.Generator().manual_seed(prompt_seed(seed, i)))
                                    for i in index])
            ids, mask = (t.to(device) for t in left_padded([encoded[i] for i in index], pad))
            position = (mask.cumsum(-1) - 1).clamp(min=0)  # positions count real tokens only
            kv = reserved_cache(max(max_new_tokens - 1, 0))  # a forward per token drawn, but the last
            cache = {_cache_argument(model): kv, "use_cache": True}
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position, logits_to_keep=1,
                           **cache).logits[:, -1].float()
            live = torch.arange(len(index))  # rows of this batch still generating
            position = position[:, -1]
            for step in range(max_new_tokens):
                token = draw(logits, uniforms[live, step].to(device), temperature, top_p)
                token_logp = logits.log_softmax(-1).gather(-1, token[:, None]).squeeze(-1).double().cpu()
                for row, t, lp in zip(live.tolist(), token.tolist(), token_logp.tolist()):
                    token_ids[index[row]].append(t)
                    logps[index[row]] += lp
                going = token != eos
                if step == max_new_tokens - 1 or not going.any():
                    break
                if not going.all():  # drop finished rows from the batch and the cache (carrying them to drop
                    keep = going.nonzero().squeeze(-1)  # in bulk showed no gain)
                    kv.batch_select_indices(keep)
                    live, token, mask, position = live[keep.cpu()], token[keep], mask[keep], position[keep]
                mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=1)
                position = position + 1
                logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None],
                               **cache).logits[:, -1].float()  # once per step, for draw and log-prob
    texts = [tokenizer.decode(ids[:-1] if ids and ids[-1] == eos else ids, skip_special_tokens=True).strip()
             for ids in token_ids]
    return (texts, token_ids, logps.float()) if return_logps else (texts, token_ids)
