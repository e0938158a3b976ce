"""Train DPO on a tiny model in a separate process, for the crash-safety test.

    python tests/crash_worker.py OUT_DIR [SLEEP_SECONDS_PER_STEP]

Deterministic: the model, tokenizer and data are built from fixed seeds. Writes OUT_DIR/final.pt (the
weights) and OUT_DIR/history.json when it finishes; checkpoints go to OUT_DIR every step.
"""

import json
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset

from minidpo.data import tokenize_preferences
from minidpo.logprobs import precompute_reference_logprobs
from minidpo.models import tiny_gpt2, tiny_tokenizer
from minidpo.logprobs import with_reference_logprobs
from minidpo.train import DPOConfig, DPOStep, train_dpo

out, delay = Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
torch.set_num_threads(1)
words = "polite kind rude curt thanks please no yes maybe answer question help".split()
rows = [{"prompt": f"Q{i}: {words[i % 12]} {words[(3 * i) % 12]}?", "chosen": f"{words[(i + 1) % 12]} thanks",
         "rejected": f"{words[(i + 5) % 12]} no", "record_id": i} for i in range(16)]
tok = tiny_tokenizer([r["prompt"] + r["chosen"] + r["rejected"] for r in rows], vocab_size=300)
data, _ = tokenize_preferences(Dataset.from_list(rows), tok)
model = tiny_gpt2(vocab_size=len(tok))
data = with_reference_logprobs(data, *precompute_reference_logprobs(model, data, tok.pad_token_id, show_progress=False))

if delay:  # slow each step down so the test can kill us between checkpoints
    real = DPOStep.__call__

    def slow(self, m, b):
        time.sleep(delay)
        return real(self, m, b)

    DPOStep.__call__ = slow

cfg = DPOConfig(output_dir=str(out), max_steps=8, batch_size=4, learning_rate=1e-3, warmup_steps=2, save_every=1,
                eval_every=100, optimizer="adamw", show_progress=False)
history = train_dpo(model, data, None, cfg, tok.pad_token_id)
torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / "final.pt")
(out / "history.json").write_text(json.dumps(history))
