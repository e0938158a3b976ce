"""DPO with minidpo's training loop, on one process or many. The script is the same either way:

    python examples/dpo_distributed.py --model tiny-gpt2 --steps 4                      # seconds, any machine
    python examples/dpo_distributed.py --model smollm2-135m-instruct --steps 50     # offline default model
    accelerate launch --multi_gpu --num_processes 2 examples/dpo_distributed.py --model gpt2-medium
    accelerate launch --config_file configs/fsdp_gpt2_large.yaml examples/dpo_distributed.py --model gpt2-large

(`--multi_gpu` is accelerate's name for its torch.distributed launcher: on a machine without GPUs it starts
CPU processes that talk over gloo.) Every process loads the model and data and computes the same
reference log-probs; training splits each batch across the processes (data parallel), and the main
process writes the trained model to --output-dir. With --batch-size B and N processes each process
handles B/N pairs per micro-batch, and the result equals a one-process run with batch B.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from minidpo.data import load_instruction_preferences, split_dataset, tokenize_preferences
from minidpo.logprobs import reference_columns
from minidpo.models import MODELS, load_model
from minidpo.train import DPOConfig, train_dpo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help=f"one of {sorted(MODELS)}, a hub name or a local folder")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=8, help="pairs per optimizer step, over all processes")
    ap.add_argument("--lr", type=float, default=5e-6)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--n-train", type=int, default=600)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (GPUs; not with an FSDP mixed-precision config)")
    ap.add_argument("--output-dir", default="runs/dpo_distributed")
    args = ap.parse_args()

    records, _ = load_instruction_preferences(drop_invalid=True)
    splits = split_dataset(records, n_validation=48, n_test=100, seed=0, n_train=args.n_train)
    model, tokenizer = load_model(args.model, tokenizer_texts=[r["prompt"] + r["chosen"] for r in splits["train"]])
    data = {}
    for split in ("train", "validation"):
        tokenized, _ = tokenize_preferences(splits[split], tokenizer, max_length=512, max_prompt_length=256, overlong="drop")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        data[split] = reference_columns(model.to(device), tokenized, tokenizer.pad_token_id)
    config = DPOConfig(
        output_dir=str(Path(args.output_dir) / "checkpoints"), max_steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.lr, beta=args.beta, optimizer="adamw", warmup_steps=min(10, args.steps // 5),
        eval_every=max(1, args.steps // 2), save_every=max(1, args.steps // 2),
        gradient_checkpointing=args.gradient_checkpointing, bf16=args.bf16,
    )
    history = train_dpo(model, data["train"], data["validation"], config, tokenizer.pad_token_id)
    if int(os.environ.get("RANK", "0")) == 0:
        final = [h for h in history if "eval_loss" in h][-1]
        print({k: round(v, 4) for k, v in final.items()})
        if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
            # the model's parameters are shards here; the checkpoint holds the gathered full state dict
            print(f"weights: torch.load('{config.output_dir}/checkpoint.pt')['model']")
        else:
            model.save_pretrained(Path(args.output_dir) / "final")
            tokenizer.save_pretrained(Path(args.output_dir) / "final")


if __name__ == "__main__":
    main()
