"""Sampling speed against its own matmul bound: minidpo's decode loop (`minidpo.generate`) and HF `generate`.

For each batch size, replies of up to `--new-tokens` tokens are sampled at temperature 1 for `--prompts` prompts
(the instruction data's test prompts in the model's chat format: real lengths). The bound is the FLOPs the decode
loop must do for the replies it drew, at the matmul rate measured in the same run (a square 1024^3 matmul):

    prefill   2 * N_body * (prompt tokens, padded) + 2 * N_head * rows   (logits of the last position only)
    decode    (2 * N_body + 2 * N_head) * (reply tokens - rows) + attention 4 * layers * width * context per token

N_body = parameters outside the embedding, N_head = vocabulary x width (the LM head). `ratio` = seconds / bound:
1.0 would be every FLOP at the square-matmul rate. HF `generate` (multinomial sampling, every row kept to the
longest reply) computes more than the bound counts; its ratio is against the same bound, so the two compare.

    python bench/generate.py                       # SmolLM2-135M-Instruct (offline), batch sizes 16 32 64 128
    python bench/generate.py --batch-sizes 64 --prompts 64
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dpo_step import matmul_peak_gflops  # noqa: E402

from minidpo.batching import tokenize_prompts  # noqa: E402
from minidpo.data import format_prompt, load_instruction_preferences  # noqa: E402
from minidpo.generate import generate_responses  # noqa: E402
from minidpo.models import SMOLLM2_NAME, load_model  # noqa: E402


def bound_gflop(model, prompt_ids: list[list[int]], reply_ids: list[list[int]], batch_size: int) -> float:
    """The FLOPs (in GFLOP) the decode loop needs for these replies (module docstring), batches as sampled:
    prompts sorted by length, `batch_size` at a time."""
    cfg = model.config
    width, layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    n_head = vocab * width
    n_body = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    flops = 0.0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        padded = max(len(prompt_ids[i]) for i in index)
        flops += 2 * n_body * padded * len(index) + 2 * n_head * len(index)
        for i in index:
            for t in range(1, len(reply_ids[i])):  # token t is drawn from the forward of token t - 1
                flops += 2 * (n_body + n_head) + 4 * layers * width * (padded + t)
    return flops / 1e9


def hf_generate(model, tokenizer, prompts: list[str], new_tokens: int, batch_size: int) -> list[list[int]]:
    """HF `generate`, sampling at temperature 1 (top-k off), left padding: the path minidpo used before."""
    encoded = tokenize_prompts(tokenizer, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out: dict[int, list[int]] = {}
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in index)
        ids = torch.full((len(index), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(index), width), dtype=torch.long)
        for row, i in enumerate(index):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=True,
                                 temperature=1.0, top_k=0, top_p=1.0, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
        for row, i in enumerate(index):
            new = gen[row, width:].tolist()
            out[i] = new[: new.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in new else new
    return [out[i] for i in range(len(prompts))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=SMOLLM2_NAME)
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds per variant (median), after one warm-up")
    ap.add_argument("--no-hf", action="store_true", help="skip HF generate")
    args = ap.parse_args()

    torch.manual_seed(0)
    model, tokenizer = load_model(args.model)
    model.eval()
    records, _ = load_instruction_preferences(drop_invalid=True)
    prompts = [format_prompt(tokenizer, r["instruction"], r["input"]) for r in records.select(range(args.prompts))]
    prompt_ids = tokenize_prompts(tokenizer, prompts)
    peak = matmul_peak_gflops("cpu", torch.float32)
    print(f"{args.model}: {len(prompts)} prompts, up to {args.new_tokens} new tokens, matmul peak {peak:.0f} GFLOP/s,"
          f" {torch.get_num_threads()} threads")
    print("| sampler | batch | median s | reply tokens | tokens/s | bound s | ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    generate_responses(model, tokenizer, prompts[:8], max_new_tokens=8, batch_size=8, show_progress=False)  # warm-up
    rows = []
    for bs in args.batch_sizes:
        variants = {"minidpo": lambda: generate_responses(model, tokenizer, prompts, max_new_tokens=args.new_tokens,
                                                          batch_size=bs, show_progress=False)[1]}
        if not args.no_hf:
            variants["hf_generate"] = lambda: hf_generate(model, tokenizer, prompts, args.new_tokens, bs)
        for name, run in variants.items():
            times = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                replies = run()
                times.append(time.perf_counter() - t)
            seconds = statistics.median(times)
            tokens = sum(len(r) for r in replies)
            bound = bound_gflop(model, prompt_ids, replies, bs) / peak
            rows.append({"sampler": name, "batch_size": bs, "seconds": seconds, "reply_tokens": tokens,
                         "tokens_per_s": tokens / seconds, "bound_s": bound, "ratio": seconds / bound})
            print(f"| {name} | {bs} | {seconds:.1f} | {tokens} | {tokens / seconds:.0f} | {bound:.1f} | "
                  f"{seconds / bound:.2f} |", flush=True)
    print(json.dumps({"model": args.model, "prompts": len(prompts), "new_tokens": args.new_tokens,
                      "matmul_peak_gflops": peak, "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "rows": rows}))


if __name__ == "__main__":
    main()
