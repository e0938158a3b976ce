"""Time one DPO optimizer step: minidpo vs TRL's DPOTrainer on the same model and batch, in one run.

    python bench/dpo_step.py                    # GPT-2-small shape (random init), then SmolLM2-135M: ~20 min
    python bench/dpo_step.py --quick            # 4 layers, width 256: under 3 minutes
    python bench/dpo_step.py --model gpt2       # one model only (gpt2 | smollm2 | all)
    python bench/dpo_step.py --device cuda --bf16 --shape gpt2-medium --pairs 16   # on a GPU
    python bench/dpo_step.py --model gpt2 --profile   # where minidpo's step spends its time, by kind of op

Every variant starts from the same weights, sees the same batch (random token ids; prompts 32-128 and
responses 16-128 tokens, seeded) and updates with AdamW at the same learning rate:

  trl                  TRL's DPOTrainer, default loss, explicit reference model run every step
  trl_precompute       TRL's DPOTrainer with precompute_ref_log_probs=True (reference log-probs in the batch)
  minidpo_live_ref     minidpo's DPOStep, reference model run every step
  minidpo              minidpo's DPOStep with reference log-probs precomputed (the experiments' default): the
                       LM head only at the positions that predict a response token, GPT-2's GELU as one fused
                       kernel (`models.fused_gelu`, as `load_model` gives every GPT-2; TRL runs HF's module)
  minidpo_compiled     the same with the policy under torch.compile (`TrainConfig.torch_compile`, the opt-in
                       fast path); compiled in the warm-up round, whose loss is checked against `minidpo`'s
  ablation_full_logits minidpo, but the LM head and log-softmax over every position of the padded batch

The runs alternate, the first round is a warm-up and is not counted; median, min and max of the rest are
printed. Before timing, the script checks that TRL and minidpo compute the same log-probs and loss. Peak
memory is measured per variant in a fresh child process that builds only what that variant needs and runs
two steps (CPU: peak RSS; GPU: peak allocated). MFU counts 6N FLOPs per policy token plus 2N per
reference token actually computed (N = parameters), over the fp32 (or bf16) matmul peak measured in the
same run. The last line is JSON.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minidpo.data import collate_preferences  # noqa: E402
from minidpo.logprobs import model_sequence_logprobs, sequence_logprobs  # noqa: E402
from minidpo.losses import dpo_loss  # noqa: E402
from minidpo.models import fused_gelu, tiny_gpt2, tiny_tokenizer  # noqa: E402
from minidpo.loop import disable_dropout, make_optimizer  # noqa: E402
from minidpo.train import DPOConfig, DPOStep  # noqa: E402

SHAPES = {
    "tiny": dict(n_layer=4, n_embd=256, n_head=4),
    "gpt2-small": dict(n_layer=12, n_embd=768, n_head=12),
    "gpt2-medium": dict(n_layer=24, n_embd=1024, n_head=16),
}
VARIANTS = ("trl", "trl_precompute", "minidpo_live_ref", "minidpo", "minidpo_compiled", "ablation_full_logits")
LR = 1e-6


def make_examples(n_pairs: int, vocab: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rand = lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))  # noqa: E731
    ids = lambda n: torch.randint(1, vocab, (n,), generator=g).tolist()  # noqa: E731
    return [{"prompt_ids": ids(rand(32, 128)), "chosen_ids": ids(rand(16, 128)), "rejected_ids": ids(rand(16, 128))}
            for _ in range(n_pairs)]


def machine(device: str) -> str:
    """The hardware a table was measured on: the GPU's name, or the CPU model (with its family and model numbers,
    which tell e.g. AMD's Zen 3 from Zen 4 where the name is only "AMD EPYC"), torch's SIMD kernels (its CPU
    capability: AVX2 and AVX-512 machines round and run otherwise) and thread count."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    from minidpo.experiments.measure import cpu_model, cpuinfo

    fields = cpuinfo()
    family = f" (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else ""
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{cpu_model()}{family}, torch CPU capability {capability}, {torch.get_num_threads()} threads"


def matmul_peak_gflops(device: str, dtype: torch.dtype, n: int = 1024, reps: int = 10, trials: int = 5) -> float:
    """GFLOP/s of an n^3 matmul: the best of `trials` timings of `reps` products. The best, because a bound is what
    the machine can do (one timing of 20 products read 160 GFLOP/s where runs minutes before and after read 194-203)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a @ b
    best = float("inf")
    for _ in range(trials):
        sync()
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 * reps / best / 1e9


def build_model(args):
    """(reference model in eval mode, tokenizer, description)."""
    torch.manual_seed(0)
    if args.model == "smollm2":
        from minidpo.models import load_model

        model, tok = load_model("smollm2-135m-instruct")
        desc = "SmolLM2-135M-Instruct (real weights)"
    else:
        shape = dict(SHAPES["tiny" if args.quick else args.shape], vocab_size=50257, n_positions=1024)
        model, tok = tiny_gpt2(**shape), tiny_tokenizer()
        desc = f"GPT-2 shape {args.shape if not args.quick else 'tiny'} {shape} (random init)"
    disable_dropout(model)  # as both training loops do (TRL: disable_dropout=True); copies inherit it
    return model.to(args.device).eval(), tok, desc


class Setup:
    """Builds, on demand, what each variant needs: so a memory child builds only its own variant's models."""

    def __init__(self, args):
        self.args = args
        self.ref, self.tok, self.desc = build_model(args)
        self.examples = make_examples(args.pairs, self.ref.config.vocab_size, seed=0)
        self.batch = collate_preferences(self.examples, self.tok.pad_token_id)
        with torch.no_grad():
            rc, rr = model_sequence_logprobs(self.ref, self.batch).chunk(2)
        self.cached = dict(self.batch, ref_chosen_logps=rc.cpu(), ref_rejected_logps=rr.cpu())
        self.cached_examples = [dict(ex, ref_chosen_logps=float(c), ref_rejected_logps=float(r))
                                for ex, c, r in zip(self.examples, rc, rr)]

    def policy(self):
        return copy.deepcopy(self.ref).train()

    def trl_trainer(self, precompute: bool):
        import trl
        from datasets import Dataset

        a = self.args
        policy = self.policy()
        # TRL's defaults, except fp32 on CPU and no gradient checkpointing (its bf16 + checkpointing
        # defaults make a CPU step ~5x slower), and no grad clipping (minidpo's bench step does not clip)
        cfg = trl.DPOConfig(output_dir=tempfile.mkdtemp(), beta=0.1, learning_rate=LR, per_device_train_batch_size=a.pairs,
                            report_to="none", bf16=a.bf16, fp16=False, use_cpu=a.device == "cpu", gradient_checkpointing=False,
                            max_length=None, precompute_ref_log_probs=precompute, max_grad_norm=1e9)
        text = Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
        trainer = trl.DPOTrainer(model=policy, ref_model=copy.deepcopy(self.ref), args=cfg, train_dataset=text,
                                 processing_class=self.tok)
        trainer.create_optimizer_and_scheduler(num_training_steps=100)
        trainer.current_gradient_accumulation_steps = 1  # normally set inside Trainer.train()
        batch = trainer.data_collator(self.cached_examples if precompute else self.examples)

        def step():
            trainer.training_step(policy, batch)
            trainer.optimizer.step()
            trainer.optimizer.zero_grad()

        return step, trainer, batch

    def minidpo_step(self, variant: str):
        policy = fused_gelu(self.policy())  # as minidpo's `load_model` gives a GPT-2 (TRL's variants: HF's module)
        optimizer, _ = make_optimizer(policy, DPOConfig(optimizer="adamw", learning_rate=LR, warmup_steps=0))
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.args.bf16 else _null()
        if variant == "minidpo_live_ref":
            objective, batch = DPOStep(DPOConfig(beta=0.1), ref_model=fused_gelu(copy.deepcopy(self.ref))), self.batch
        elif variant in ("minidpo", "minidpo_compiled"):
            objective, batch = DPOStep(DPOConfig(beta=0.1)), self.cached
        else:
            objective, batch = _full_logits_objective, self.cached

        model = torch.compile(policy) if variant == "minidpo_compiled" else policy

        def step(timers: dict | None = None) -> float:
            clock = _Clock(self.args.device, timers)
            with autocast:
                loss, _ = objective(model, batch)
            clock("forward")
            loss.backward()
            clock("backward")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            clock("optimizer")
            return loss.item()

        return step

    def runner(self, variant: str):
        if variant.startswith("trl"):
            return self.trl_trainer(precompute=variant == "trl_precompute")[0]
        return self.minidpo_step(variant)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class _Clock:
    def __init__(self, device: str, timers: dict | None):
        self.device, self.timers, self.t = device, timers, time.perf_counter()

    def __call__(self, name: str) -> None:
        if self.timers is None:
            return
        if self.device == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        self.timers[name] = self.timers.get(name, 0.0) + now - self.t
        self.t = now


def _dpo_from_logps(logps, batch):
    c, r = logps.chunk(2)
    device = c.device
    out = dpo_loss(c, r, batch["ref_chosen_logps"].to(device), batch["ref_rejected_logps"].to(device), beta=0.1)
    return out.losses.mean(), {}


def _full_logits_objective(model, batch):
    device = next(model.parameters()).device
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return _dpo_from_logps(sequence_logprobs(logits, ids, batch["response_mask"].to(device)), batch)


def peak_memory_gib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    # VmHWM, the high-water mark of this process's own memory: ru_maxrss would also count the pages of the
    # parent that forked us (Linux carries the pre-exec peak over), so every child would report the parent's
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def memory_child(args) -> None:
    """Child process: build only this variant's models, run two steps, print the peak memory as JSON."""
    setup = Setup(args)
    step = setup.runner(args.memory_of)
    if args.memory_of != "minidpo_live_ref":  # the others hold their own copy of the reference, or need none
        setup.ref = None
        gc.collect()
    for _ in range(2):
        step()
    print(json.dumps({"variant": args.memory_of, "peak_gib": peak_memory_gib(args.device)}))


def measure_memory(args, variant: str) -> float:
    cmd = [sys.executable, __file__, "--memory-of", variant, "--model", args.model, "--pairs", str(args.pairs),
           "--device", args.device, "--shape", args.shape] + (["--quick"] if args.quick else []) + (["--bf16"] if args.bf16 else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_gib"]


# torch.profiler op names -> the kind of work they do (first match wins; the rest is "other")
OP_KINDS = [
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("attention", ("aten::_scaled_dot_product", "aten::_flash_attention", "aten::scaled_dot_product")),
    ("layer norm", ("aten::native_layer_norm",)),
    ("GELU / tanh", ("aten::gelu", "aten::tanh", "aten::pow")),
    ("softmax / logsumexp", ("aten::logsumexp", "aten::_softmax", "aten::_log_softmax", "aten::exp")),
    ("optimizer", ("aten::_fused_adamw",)),
    ("copies / layout", ("aten::copy_", "aten::clone", "aten::contiguous", "aten::cat", "aten::index", "aten::gather",
                         "aten::scatter", "aten::index_put", "aten::nonzero", "aten::masked")),
    ("allocation / fill", ("aten::empty", "aten::zero_", "aten::fill_", "aten::zeros", "aten::ones")),
    ("element-wise", ("aten::add", "aten::mul", "aten::div", "aten::sub", "aten::where", "aten::sum", "aten::mean",
                      "aten::neg", "aten::sigmoid", "aten::log", "aten::threshold", "aten::rsub")),
]


def profile_step(args) -> None:
    """Two profiled `minidpo` steps (after a warm-up): the self time of every aten op, summed by kind (`OP_KINDS`)."""
    from torch.profiler import ProfilerActivity, profile

    setup = Setup(args)
    step = setup.runner("minidpo")
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for _ in range(2):
            step()
        wall = (time.perf_counter() - t) / 2
    kinds: dict[str, float] = {}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        kind = next((k for k, prefixes in OP_KINDS if event.key.startswith(prefixes)), "other aten")
        kinds[kind] = kinds.get(kind, 0.0) + event.self_cpu_time_total / 1e6 / 2
    ops = sum(kinds.values())
    print(f"\n{setup.desc}; {machine(args.device)}; {args.pairs} pairs")
    print(f"one step {wall:.2f} s under the profiler, {ops:.2f} s in aten ops "
          f"({wall - ops:.2f} s outside them: Python, autograd bookkeeping, the profiler itself)")
    print("| kind | s per step | share of step |\n| --- | ---: | ---: |")
    for kind, sec in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {sec:.2f} | {sec / wall:.0%} |")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def bench_one(args) -> dict:
    import trl

    setup = Setup(args)
    batch = setup.batch
    # --- agreement before timing: TRL's log-probs and loss against ours, same weights and batch
    step, trainer, trl_batch = setup.trl_trainer(precompute=False)
    with torch.no_grad():
        trl_c, trl_r = trainer.compute_ref_log_probs(trainer.ref_model, trl_batch)
        ours = model_sequence_logprobs(setup.ref, batch)
        logp_diff = (ours - torch.cat([trl_c, trl_r])).abs().max().item()
        probe = setup.policy()
        loss_ours = DPOStep(DPOConfig(beta=0.1), ref_model=setup.ref)(probe, batch)[0].item()
        loss_trl = trainer._compute_loss(trainer.model, trl_batch, False).item()
    del probe
    runners = {"trl": step}
    for v in VARIANTS[1:]:
        runners[v] = setup.runner(v)
    times: dict[str, list[float]] = {k: [] for k in runners}
    first_loss: dict[str, float] = {}  # the warm-up step's loss: same weights and batch, so compiled = plain
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    for round_ in range(args.rounds + 1):
        for name, fn in runners.items():
            sync()
            t = time.perf_counter()
            out = fn()
            sync()
            if round_:  # round 0 is the warm-up
                times[name].append(time.perf_counter() - t)
            else:
                first_loss[name] = out
    timers: dict[str, float] = {}
    for _ in range(2):  # where the headline step's time goes (extra rounds, synchronised timers)
        runners["minidpo"](timers)
    timers = {k: v / 2 for k, v in timers.items()}

    med = {k: statistics.median(v) for k, v in times.items()}
    n_params = sum(p.numel() for p in setup.ref.parameters())
    tokens = int(batch["attention_mask"].sum())
    padded_tokens = batch["attention_mask"].numel()
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    peak = matmul_peak_gflops(args.device, dtype)
    ref_tokens = {"trl": padded_tokens, "minidpo_live_ref": tokens}  # reference tokens actually computed per step
    mfu = {k: (6 * n_params * tokens + 2 * n_params * ref_tokens.get(k, 0)) / med[k] / (peak * 1e9) for k in med}
    memory = {} if args.no_memory else {v: measure_memory(args, v) for v in VARIANTS[:4]}

    print(f"\nmodel: {setup.desc}, {n_params / 1e6:.1f}M params; {dtype} on {args.device}: {machine(args.device)}")
    print(f"batch: {args.pairs} pairs, {tokens} real tokens ({padded_tokens} when padded); "
          f"TRL optimizer: {type(trainer.optimizer).__name__}; matmul peak {peak:.0f} GFLOP/s")
    compiled_diff = abs(first_loss["minidpo_compiled"] - first_loss["minidpo"])
    if compiled_diff > 1e-4:  # float32 rounding of a loss near log 2 is ~1e-7; another objective moves it by far more
        raise SystemExit(f"the compiled step computes another loss: {first_loss}")
    print(f"agreement: max |log-prob diff| {logp_diff:.2e} nats, |loss diff| {abs(loss_ours - loss_trl):.2e}; "
          f"compiled vs plain first-step |loss diff| {compiled_diff:.2e}")
    print(f"{'step':<22}{'median s':>9}{'min s':>8}{'max s':>8}{'vs trl':>8}{'vs trl_pre':>11}{'MFU':>6}{'peak GiB':>9}")
    for k, v in times.items():
        mem = f"{memory[k]:>9.2f}" if k in memory else f"{'':>9}"
        print(f"{k:<22}{med[k]:>9.2f}{min(v):>8.2f}{max(v):>8.2f}{med['trl'] / med[k]:>7.2f}x"
              f"{med['trl_precompute'] / med[k]:>10.2f}x{mfu[k]:>6.2f}{mem}")
    total = sum(timers.values())
    print("minidpo step, where the time goes: " + ", ".join(f"{k} {v:.2f} s ({v / total:.0%})" for k, v in timers.items()))
    return {
        "model": setup.desc,
        "speedup_vs_trl": med["trl"] / med["minidpo"],
        "speedup_vs_trl_precompute": med["trl_precompute"] / med["minidpo"],
        "speedup_vs_trl_live_ref": med["trl"] / med["minidpo_live_ref"],
        "tokens_per_s": tokens / med["minidpo"],
        "peak_rss_gib" if args.device == "cpu" else "peak_gpu_gib": memory.get("minidpo"),
        "peak_gib_trl": memory.get("trl"),
        "peak_gib_trl_precompute": memory.get("trl_precompute"),
        "mfu": mfu["minidpo"],
        "speedup_vs_trl_compiled": med["trl"] / med["minidpo_compiled"],
        "mfu_compiled": mfu["minidpo_compiled"],
        "compiled_loss_abs_diff": compiled_diff,
        "matmul_peak_gflops": peak,
        "machine": machine(args.device),
        "median_s": med,
        "step_breakdown_s": timers,
        "logp_max_abs_diff": logp_diff,
        "loss_abs_diff": abs(loss_ours - loss_trl),
        "pairs": args.pairs,
        "tokens": tokens,
        "torch": torch.__version__,
        "trl": trl.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny GPT-2 shape only")
    ap.add_argument("--model", choices=("gpt2", "smollm2", "all"), default="all")
    ap.add_argument("--shape", choices=tuple(SHAPES), default="gpt2-small", help="GPT-2 shape (random init)")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds after one warm-up round")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (GPUs only)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-variant memory children")
    ap.add_argument("--profile", action="store_true", help="profile minidpo's step by kind of op instead of timing")
    ap.add_argument("--memory-of", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bf16 and args.device == "cpu":
        ap.error("--bf16 is for GPUs: on this CPU bf16 is ~100x slower than fp32")
    if args.memory_of:
        return memory_child(args)
    if args.profile:
        args.model = "smollm2" if args.model == "smollm2" else "gpt2"
        return profile_step(args)
    models = ["gpt2"] if args.quick or args.model == "gpt2" else ["smollm2"] if args.model == "smollm2" else ["gpt2", "smollm2"]
    results = []
    for m in models:
        args.model = m
        results.append(bench_one(args))
    headline = dict(results[0])
    if len(results) > 1:
        headline["smollm2"] = {k: results[1][k] for k in ("speedup_vs_trl", "speedup_vs_trl_precompute", "tokens_per_s", "mfu")}
    headline["quick"] = args.quick
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
