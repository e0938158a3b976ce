"""Time one DPO optimizer step: minidpo vs TRL's DPOTrainer on the same model and batch, in one process.

    python bench/dpo_step.py           # GPT-2-small shape (12 layers, width 768, vocab 50257), 4 pairs
    python bench/dpo_step.py --quick   # 4 layers, width 256: a couple of minutes

Both sides run fp32 with AdamW at the same learning rate, start from the same weights and see the same
batch (random token ids; prompts 32-128 and responses 16-128 tokens, seeded). The runs alternate
(TRL, minidpo live reference, minidpo cached reference), the first round is a warm-up and is not
counted, and the median and the spread (min-max) of the rest are printed. Before timing, the script
checks that both compute the same log-probs and loss. The last line is JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minidpo.data import collate_preferences  # noqa: E402
from minidpo.logprobs import model_sequence_logprobs  # noqa: E402
from minidpo.models import tiny_gpt2, tiny_tokenizer  # noqa: E402
from minidpo.train import DPOConfig, DPOStep, disable_dropout  # noqa: E402


def make_batch(n_pairs: int, vocab: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rand = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    ids = lambda n: torch.randint(1, vocab, (n,), generator=g).tolist()  # noqa: E731
    return [{"prompt_ids": ids(rand(32, 128)), "chosen_ids": ids(rand(16, 128)), "rejected_ids": ids(rand(16, 128))}
            for _ in range(n_pairs)]


def matmul_peak_gflops(n: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds after one warm-up round")
    args = ap.parse_args()
    import trl

    shape = dict(n_layer=4, n_embd=256, n_head=4) if args.quick else dict(n_layer=12, n_embd=768, n_head=12)
    shape.update(vocab_size=50257, n_positions=512)
    torch.manual_seed(0)
    ref = tiny_gpt2(**shape).eval()
    disable_dropout(ref)  # as both training loops do (TRL: disable_dropout=True); copies inherit it
    tok = tiny_tokenizer()
    examples = make_batch(args.pairs, shape["vocab_size"], seed=0)
    batch = collate_preferences(examples, tok.pad_token_id)
    with torch.no_grad():
        rc, rr = model_sequence_logprobs(ref, batch).chunk(2)
    cached = dict(batch, ref_chosen_logps=rc, ref_rejected_logps=rr)
    lr = 1e-6

    # --- TRL: default config but fp32 on CPU and no gradient checkpointing, explicit reference model
    from datasets import Dataset

    trl_policy = copy.deepcopy(ref).train()
    tmp = tempfile.mkdtemp()
    trl_args = trl.DPOConfig(output_dir=tmp, beta=0.1, learning_rate=lr, per_device_train_batch_size=args.pairs,
                             report_to="none", bf16=False, fp16=False, use_cpu=True, gradient_checkpointing=False,
                             max_length=None, precompute_ref_log_probs=False, max_grad_norm=1e9)
    text = Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
    trainer = trl.DPOTrainer(model=trl_policy, ref_model=copy.deepcopy(ref), args=trl_args, train_dataset=text, processing_class=tok)
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    trainer.current_gradient_accumulation_steps = 1  # normally set inside Trainer.train()
    trl_batch = trainer.data_collator(examples)

    # --- agreement before timing
    with torch.no_grad():
        trl_c, trl_r = trainer.compute_ref_log_probs(trainer.ref_model, trl_batch)  # TRL patched its copy
    ours = model_sequence_logprobs(ref, batch)
    logp_diff = (ours - torch.cat([trl_c, trl_r])).abs().max().item()
    ours_policy = copy.deepcopy(ref).train()
    step_live = DPOStep(DPOConfig(beta=0.1), ref_model=ref)
    step_cached = DPOStep(DPOConfig(beta=0.1))
    with torch.no_grad():
        loss_diff = abs(step_live(ours_policy, batch)[0].item() - trainer._compute_loss(trl_policy, trl_batch, False).item())
    opt_live = torch.optim.AdamW(ours_policy.parameters(), lr=lr)
    cached_policy = copy.deepcopy(ref).train()
    opt_cached = torch.optim.AdamW(cached_policy.parameters(), lr=lr)

    def run_trl():
        trainer.training_step(trl_policy, trl_batch)
        trainer.optimizer.step()
        trainer.optimizer.zero_grad()

    def run_ours(model, opt, step, b):
        def go():
            loss, _ = step(model, b)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return go

    runners = {"trl": run_trl, "minidpo": run_ours(ours_policy, opt_live, step_live, batch),
               "minidpo_cached_ref": run_ours(cached_policy, opt_cached, step_cached, cached)}
    times: dict[str, list[float]] = {k: [] for k in runners}
    for round_ in range(args.rounds + 1):
        for name, fn in runners.items():
            t = time.perf_counter()
            fn()
            if round_:  # round 0 is the warm-up
                times[name].append(time.perf_counter() - t)

    med = {k: statistics.median(v) for k, v in times.items()}
    n_params = sum(p.numel() for p in ref.parameters())
    policy_tokens = int(batch["attention_mask"].sum())
    peak = matmul_peak_gflops()
    useful = 6 * n_params * policy_tokens  # policy forward + backward; the cached-ref step runs no reference
    print(f"model: GPT-2 shape {shape}, {n_params / 1e6:.1f}M params; batch: {args.pairs} pairs, {policy_tokens} tokens")
    print(f"agreement: max |log-prob diff| {logp_diff:.2e} nats, |loss diff| {loss_diff:.2e}")
    print(f"{'step':<20}{'median s':>10}{'min s':>9}{'max s':>9}{'vs TRL':>9}")
    for k, v in times.items():
        print(f"{k:<20}{med[k]:>10.3f}{min(v):>9.3f}{max(v):>9.3f}{med['trl'] / med[k]:>8.2f}x")
    result = {
        "speedup_vs_trl": med["trl"] / med["minidpo_cached_ref"],
        "speedup_vs_trl_live_ref": med["trl"] / med["minidpo"],
        "tokens_per_s": policy_tokens / med["minidpo_cached_ref"],
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "mfu": useful / med["minidpo_cached_ref"] / (peak * 1e9),
        "matmul_peak_gflops": peak,
        "logp_max_abs_diff": logp_diff,
        "loss_abs_diff": loss_diff,
        "quick": args.quick,
        "torch": torch.__version__,
        "trl": trl.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
