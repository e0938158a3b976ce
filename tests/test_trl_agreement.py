"""Agreement with TRL's DPOTrainer (the peer) on the same tiny model, tokenizer and batch.

TRL is in the dev extra; the test is skipped (with the reason shown) where it is not installed.
What is compared:
- tokenization: TRL's own preprocessing of the text records gives our prompt/chosen/rejected ids;
- collation: TRL's collator gives our [chosen; rejected] batch and our response mask;
- per-sequence log-probs (TRL's `compute_ref_log_probs`, its fused LM head) and the loss of
  `sigmoid`, `ipo` (length-normalised, as TRL does) and `hinge`, plus TRL's logged reward metrics.
TRL 1.16 has no `label_smoothing` on `sigmoid` (its cDPO is the separate `robust`/`exo_pair` losses), so
our cDPO is pinned to its formula in test_losses.py instead.
"""

import copy

import pytest
import torch
from datasets import Dataset

trl = pytest.importorskip("trl", reason="TRL is the peer implementation (pip install -e '.[dev]')")

from precision import assert_close_tol, logprob_tol, propagated_tol  # noqa: E402

from minidpo.data import collate_preferences  # noqa: E402
from minidpo.logprobs import model_sequence_logprobs  # noqa: E402
from minidpo.losses import dpo_loss  # noqa: E402
from minidpo.train import DPOConfig, DPOStep  # noqa: E402


def _logps_and_tols(model, batch):
    """Our per-sequence log-probs and the float32 tolerance of each (tests/precision.py)."""
    with torch.no_grad():
        logps = model_sequence_logprobs(model.eval(), batch)
    n_tokens = int(batch["response_mask"].sum(1).max())
    return logps, logprob_tol(logps, n_tokens, model.config.n_embd)


@pytest.fixture(scope="module")
def setup(tiny, tokenized, tmp_path_factory):
    # TRL (through accelerate) patches the forward of the models it is given, and deep copies of a patched
    # model still run the original's forward: give it copies so the shared fixture stays clean.
    ref, tok = copy.deepcopy(tiny[0]), tiny[1]
    policy = copy.deepcopy(ref)
    with torch.no_grad():  # make the policy differ from the reference so log-ratios are not zero
        for p in policy.parameters():
            p.add_(0.02 * torch.randn_like(p))
    data = tokenized.select(range(6))
    text = Dataset.from_dict({k: list(data[k]) for k in ("prompt", "chosen", "rejected")})
    args = trl.DPOConfig(
        output_dir=str(tmp_path_factory.mktemp("trl")), beta=0.1, per_device_train_batch_size=6, report_to="none",
        bf16=False, fp16=False, use_cpu=True, gradient_checkpointing=False, max_length=None, dataset_num_proc=None,
        precompute_ref_log_probs=False,
    )
    trainer = trl.DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=text, processing_class=tok)
    return trainer, policy, ref, tok, data


def test_same_token_ids_as_trl(setup):
    trainer, _, _, _, data = setup
    ours = {k: list(data[k]) for k in ("prompt_ids", "chosen_ids", "rejected_ids")}
    theirs = {k: list(trainer.train_dataset[k]) for k in ("prompt_ids", "chosen_ids", "rejected_ids")}
    assert ours == theirs


def test_same_batch_and_logprobs_as_trl(setup):
    trainer, policy, ref, tok, data = setup
    examples = [data[i] for i in range(len(data))]
    ours = collate_preferences(examples, tok.pad_token_id)
    theirs = trainer.data_collator([{k: ex[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for ex in examples])
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    assert torch.equal(ours["attention_mask"], theirs["attention_mask"])
    assert torch.equal(ours["response_mask"], theirs["completion_mask"])
    for model in (policy, ref):
        model.eval()
        with torch.no_grad():
            trl_c, trl_r = trainer.compute_ref_log_probs(model, theirs)
        mine, tol = _logps_and_tols(model, ours)
        assert_close_tol(mine, torch.cat([trl_c, trl_r]), tol)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo", "hinge"])
def test_same_loss_and_metrics_as_trl(setup, loss_type):
    trainer, policy, ref, tok, data = setup
    examples = [data[i] for i in range(len(data))]
    theirs = trainer.data_collator([{k: ex[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for ex in examples])
    trainer.loss_types, trainer.loss_weights = [loss_type], [1.0]
    trainer._metrics["train"].clear()
    policy.train()
    ref.eval()
    with torch.no_grad():
        trl_loss = trainer._compute_loss(policy, theirs, return_outputs=False)
        our_loss, metrics = DPOStep(DPOConfig(beta=0.1, loss_type=loss_type), ref_model=ref)(
            policy, collate_preferences(examples, tok.pad_token_id)
        )
    # Tolerances: each log-prob's float32 tolerance, propagated through the loss or metric (tests/precision.py).
    batch = collate_preferences(examples, tok.pad_token_id)
    (policy_logps, policy_tol), (ref_logps, ref_tol) = _logps_and_tols(policy, batch), _logps_and_tols(ref, batch)
    lengths = batch["response_mask"][:, 1:].sum(1).double().chunk(2)
    inputs = [*policy_logps.chunk(2), *ref_logps.chunk(2)]
    tols = [*policy_tol.chunk(2), *ref_tol.chunk(2)]

    def loss(pc, pr, rc, rr):
        kw = dict(chosen_lengths=lengths[0], rejected_lengths=lengths[1]) if loss_type == "ipo" else {}
        return dpo_loss(pc, pr, rc, rr, beta=0.1, loss_type=loss_type, **kw).losses.mean()

    assert abs(our_loss.item() - trl_loss.item()) <= propagated_tol(loss, inputs, tols)
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    metric_fns = {
        "rewards/chosen": lambda pc, pr, rc, rr: 0.1 * (pc - rc).mean(),
        "rewards/rejected": lambda pc, pr, rc, rr: 0.1 * (pr - rr).mean(),
        "rewards/margins": lambda pc, pr, rc, rr: 0.1 * ((pc - rc) - (pr - rr)).mean(),
        "logps/chosen": lambda pc, pr, rc, rr: pc.mean(),
        "logps/rejected": lambda pc, pr, rc, rr: pr.mean(),
    }
    for key, fn in metric_fns.items():
        assert abs(metrics[key] - logged[key]) <= propagated_tol(fn, inputs, tols), key
    # accuracy counts margins > 0: exact, unless a margin lies within its tolerance of 0
    margins = 0.1 * ((inputs[0] - inputs[2]) - (inputs[1] - inputs[3]))
    assert (margins.abs() > 0.1 * sum(tols)).all(), "a margin within rounding of 0: accuracy could differ by a flip"
    assert metrics["rewards/accuracies"] == logged["rewards/accuracies"]
