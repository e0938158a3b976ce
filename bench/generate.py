"""Sampling speed against its matmul bounds: minidpo's decode loop (`minidpo.generate`) and HF `generate`.

For each batch size, replies of up to `--new-tokens` tokens are sampled at temperature 1 for `--prompts` prompts
(the instruction data's test prompts in the model's chat format: real lengths). The forwards the loop must make
for the replies it drew: per batch (prompts sorted by length, `batch` at a time) one prefill of the padded
prompts, with the LM head at the last position only, then one forward per reply token after the first, over the
rows still generating. Two bounds on their time:

    peak      their FLOPs at the rate of a square 1024^3 matmul measured in the same run:
              prefill 2 * N_body * (prompt tokens, padded) + 2 * N_head * rows
              decode  (2 * N_body + 2 * N_head) * (reply tokens - rows) + attention 4 * layers * width * context
    at batch  the model's own linear layers, timed alone (in forward order, weights streaming from memory as in
              a forward) at each forward's number of rows, plus the attention FLOPs at the peak rate

N_body = parameters outside the embedding, N_head = vocabulary x width (the LM head). `ratio` = seconds / bound.
A decode step multiplies a few rows by every weight, so its matmuls run far below the square-matmul rate; the
second bound is the time those matmuls take at the batch sizes used, and its ratio is the cost of everything
else (attention's reads of the KV cache, the cache's upkeep, sampling, element-wise ops, Python). HF `generate`
(multinomial sampling, every row kept to the longest reply) does more work than either bound counts; its ratios
are against the bounds of its own replies, so the two compare.

    python bench/generate.py                       # SmolLM2-135M-Instruct (offline), batch sizes 16 32 64 128
    python bench/generate.py --batch-sizes 64 --prompts 64
    python bench/generate.py --batch-sizes 64 --no-hf --compile regional   # does a compiled decode pay?

`--compile regional` compiles each decoder layer's MLP and RMSNorms (`torch.compile(dynamic=True)`), `layers`
each whole decoder layer, after the plain runs; the compiled loop is timed after a compiling round and its replies
are compared with the plain loop's (compiled kernels round float32 otherwise, so some replies change).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from transformers.pytorch_utils import Conv1D

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dpo_step import machine, matmul_peak_gflops  # noqa: E402

from minidpo.batching import tokenize_prompts  # noqa: E402
from minidpo.data import format_prompt, load_instruction_preferences  # noqa: E402
from minidpo.generate import generate_responses, left_padded  # noqa: E402
from minidpo.models import SMOLLM2_NAME, load_model  # noqa: E402


def forwards(prompt_ids: list[list[int]], reply_ids: list[list[int]], batch_size: int):
    """The forwards the decode loop needs for these replies, as (body rows, head rows, context per row): per batch
    one prefill of the padded prompts, then a forward per reply token after the first over the rows still going."""
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        padded = max(len(prompt_ids[i]) for i in index)
        yield len(index) * padded, len(index), 0
        for t in range(1, max(len(reply_ids[i]) for i in index)):  # token t is drawn from token t - 1's forward
            rows = sum(len(reply_ids[i]) > t for i in index)
            yield rows, rows, padded + t


def _in_size(layer) -> int:
    """A linear layer's input width: `nn.Linear`, or GPT-2's `Conv1D` (the same product, weight transposed)."""
    return layer.in_features if isinstance(layer, torch.nn.Linear) else layer.nx


class Bounds:
    """The two bounds of the module docstring for a model: FLOPs at the square-matmul peak, and the model's linear
    layers timed at each forward's rows (memoised: decode forwards repeat row counts)."""

    def __init__(self, model, peak_gflops: float):
        cfg = model.config
        self.model, self.peak = model, peak_gflops * 1e9
        self.attention_per_context = 4 * cfg.num_hidden_layers * cfg.hidden_size  # FLOPs per row and position
        self.head = model.get_output_embeddings()
        self.n_head = self.head.weight.numel()
        self.n_body = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
        self.body = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, Conv1D)) and m is not self.head]
        self.timed: dict[tuple[int, int], float] = {}

    @torch.inference_mode()
    def linear_seconds(self, body_rows: int, head_rows: int) -> float:
        """Seconds of the model's linear layers alone at these rows (the faster of two passes)."""
        if (body_rows, head_rows) not in self.timed:
            inputs = {n: torch.randn(body_rows, n) for n in {_in_size(m) for m in self.body}}
            head_input = torch.randn(head_rows, self.head.in_features)
            best = float("inf")
            for _ in range(2):
                t = time.perf_counter()
                for m in self.body:
                    m(inputs[_in_size(m)])
                self.head(head_input)
                best = min(best, time.perf_counter() - t)
            self.timed[body_rows, head_rows] = best
        return self.timed[body_rows, head_rows]

    def of(self, prompt_ids: list[list[int]], reply_ids: list[list[int]], batch_size: int) -> tuple[float, float]:
        """(peak bound, at-batch bound) in seconds for these replies drawn at this batch size."""
        peak = at_batch = 0.0
        for body_rows, head_rows, context in forwards(prompt_ids, reply_ids, batch_size):
            attention = self.attention_per_context * context * head_rows / self.peak  # decode rows only
            peak += (2 * self.n_body * body_rows + 2 * self.n_head * head_rows) / self.peak + attention
            at_batch += self.linear_seconds(body_rows, head_rows) + attention
        return peak, at_batch


def hf_generate(model, tokenizer, prompts: list[str], new_tokens: int, batch_size: int) -> list[list[int]]:
    """HF `generate`, sampling at temperature 1 (top-k off), left padding: the path minidpo used before."""
    encoded = tokenize_prompts(tokenizer, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out: dict[int, list[int]] = {}
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        ids, mask = left_padded([encoded[i] for i in index], tokenizer.pad_token_id)
        width = ids.shape[1]
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=True,
                                 temperature=1.0, top_k=0, top_p=1.0, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
        for row, i in enumerate(index):
            new = gen[row, width:].tolist()
            out[i] = new[: new.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in new else new
    return [out[i] for i in range(len(prompts))]


def timed_row(name: str, run, bs: int, rounds: int, bounds: Bounds, prompt_ids) -> dict:
    """Time `run` (median of `rounds`), print its table row and return it, with the last round's replies."""
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        replies = run()
        times.append(time.perf_counter() - t)
    seconds = statistics.median(times)
    tokens = sum(len(r) for r in replies)
    peak_s, batch_s = bounds.of(prompt_ids, replies, bs)
    print(f"| {name} | {bs} | {seconds:.1f} | {tokens} | {tokens / seconds:.0f} | {peak_s:.1f} | "
          f"{seconds / peak_s:.2f} | {batch_s:.1f} | {seconds / batch_s:.2f} |", flush=True)
    return {"sampler": name, "batch_size": bs, "seconds": seconds, "reply_tokens": tokens,
            "tokens_per_s": tokens / seconds, "peak_bound_s": peak_s, "peak_ratio": seconds / peak_s,
            "at_batch_bound_s": batch_s, "at_batch_ratio": seconds / batch_s, "replies": replies}


def compile_decode(model, how: str) -> None:
    """`torch.compile(dynamic=True)` in place: each decoder layer's MLP and RMSNorms (`regional`) or each whole
    decoder layer (`layers`), and the final norm."""
    for layer in model.model.layers:
        parts = [layer] if how == "layers" else [layer.mlp, layer.input_layernorm, layer.post_attention_layernorm]
        for part in parts:
            part.compile(dynamic=True)
    model.model.norm.compile(dynamic=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=SMOLLM2_NAME)
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds per variant (median), after one warm-up")
    ap.add_argument("--no-hf", action="store_true", help="skip HF generate")
    ap.add_argument("--compile", choices=["regional", "layers"], help="then time a compiled decode (docstring)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    torch.manual_seed(0)
    model, tokenizer = load_model(args.model)
    model.eval()
    records, _ = load_instruction_preferences(drop_invalid=True)
    prompts = [format_prompt(tokenizer, r["instruction"], r["input"]) for r in records.select(range(args.prompts))]
    prompt_ids = tokenize_prompts(tokenizer, prompts)
    peak = matmul_peak_gflops("cpu", torch.float32)
    print(f"{args.model}: {len(prompts)} prompts, up to {args.new_tokens} new tokens, matmul peak {peak:.0f} GFLOP/s;"
          f" {machine('cpu')}")
    print("| sampler | batch | median s | reply tokens | tokens/s | peak bound s | ratio | at-batch bound s | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    generate_responses(model, tokenizer, prompts[:8], max_new_tokens=8, batch_size=8, show_progress=False)  # warm-up
    bounds = Bounds(model, peak)
    rows, plain = [], {}  # plain: minidpo's replies per batch size, to compare a compiled loop's with
    for bs in args.batch_sizes:
        variants = {"minidpo": lambda bs=bs: generate_responses(model, tokenizer, prompts, batch_size=bs,
                                                                max_new_tokens=args.new_tokens, show_progress=False)[1]}
        if not args.no_hf:
            variants["hf_generate"] = lambda bs=bs: hf_generate(model, tokenizer, prompts, args.new_tokens, bs)
        for name, run in variants.items():
            rows.append(timed_row(name, run, bs, args.rounds, bounds, prompt_ids))
            replies = rows[-1].pop("replies")
            if name == "minidpo":
                plain[bs] = replies
    if args.compile:
        compile_decode(model, args.compile)  # wraps only: compiling happens at the first call of each shape
        for bs in args.batch_sizes:
            def run(bs=bs):
                return generate_responses(model, tokenizer, prompts, max_new_tokens=args.new_tokens, batch_size=bs,
                                          show_progress=False)[1]
            t = time.perf_counter()
            run()  # compiles (each new shape may compile again)
            compiling = time.perf_counter() - t
            rows.append(timed_row(f"minidpo_compiled_{args.compile}", run, bs, args.rounds, bounds, prompt_ids))
            rows[-1]["compiling_round_s"] = compiling
            print(f"compiled ({args.compile}), batch {bs}: compiling round {compiling:.1f} s, "
                  f"{compiling - rows[-1]['seconds']:.1f} s more than a compiled round", flush=True)
            changed = sum(a != b for a, b in zip(plain[bs], rows[-1].pop("replies"), strict=True))
            rows[-1]["replies_changed"] = changed
            print(f"compiled ({args.compile}), batch {bs}: {changed} of {len(prompts)} replies not the plain loop's")
    print(json.dumps({"model": args.model, "prompts": len(prompts), "new_tokens": args.new_tokens,
                      "matmul_peak_gflops": peak, "machine": machine("cpu"), "torch": torch.__version__,
                      "rows": rows}))


if __name__ == "__main__":
    main()
