"""Train a tiny model with minidpo's SFT or DPO loop; run once plainly and once under `accelerate launch`.

    python tests/distributed_worker.py {sft,dpo} OUT_DIR
    accelerate launch --multi_gpu --num_processes 2 tests/distributed_worker.py {sft,dpo} OUT_DIR

(`--multi_gpu` is accelerate's name for its torch.distributed launcher; without GPUs the processes run on
the CPU and talk over gloo.) Everything is seeded, so every process builds the same model and data; the
main process writes the history to OUT_DIR/history.json.
"""

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MINIDPO_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data"))

from minidpo.data import completions_from_pairs, load_instruction_preferences, tokenize_preferences  # noqa: E402
from minidpo.logprobs import precompute_reference_logprobs  # noqa: E402
from minidpo.models import tiny_gpt2, tiny_tokenizer  # noqa: E402
from minidpo.logprobs import with_reference_logprobs
from minidpo.train import DPOConfig, SFTConfig, train_dpo, train_sft  # noqa: E402


def main(job: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    records, _ = load_instruction_preferences(drop_invalid=True)
    records = records.select(range(24))
    tok = tiny_tokenizer([r["prompt"] + r["chosen"] + r["rejected"] for r in records], vocab_size=400)
    data, _ = tokenize_preferences(records, tok, max_length=512, max_prompt_length=384)
    # 9 training pairs in micro-batches of 4: the last is a single pair, so one process gets none of it
    train, valid = data.select(range(9)), data.select(range(9, 13))
    torch.manual_seed(0)
    model = tiny_gpt2(vocab_size=len(tok))
    common = dict(output_dir=out_dir, batch_size=4, gradient_accumulation_steps=2, max_steps=3, warmup_steps=0,
                  eval_every=2, save_every=2, length_bucketing=False, show_progress=False, optimizer="adamw")
    if job == "sft":
        history = train_sft(model, completions_from_pairs(train), completions_from_pairs(valid), SFTConfig(learning_rate=1e-3, **common), tok.pad_token_id)
    else:
        ref = {}
        for name, split in (("train", train), ("valid", valid)):
            chosen, rejected = precompute_reference_logprobs(model, split, tok.pad_token_id, show_progress=False)
            ref[name] = with_reference_logprobs(split, chosen, rejected)
        history = train_dpo(model, ref["train"], ref["valid"], DPOConfig(learning_rate=1e-3, beta=0.5, **common), tok.pad_token_id)
    if int(os.environ.get("RANK", "0")) == 0:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        Path(out_dir, "result.json").write_text(json.dumps({"world_size": world, "history": history}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
