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

from minidpo.data import collate_preferences  # noqa: E402
from minidpo.logprobs import model_sequence_logprobs  # noqa: E402
from minidpo.train import DPOConfig, DPOStep  # noqa: E402


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
            mine = model_sequence_logprobs(model, ours)
        torch.testing.assert_close(mine, torch.cat([trl_c, trl_r]), rtol=1e-6, atol=1e-4)


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
    # 1e-6 absolute, or relative where the loss is large (IPO's ~25: one float32 ulp there is 1.9e-6)
    assert our_loss.item() == pytest.approx(trl_loss.item(), abs=1e-6, rel=1e-6)
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert metrics[key] == pytest.approx(logged[key], rel=1e-5, abs=1e-5), key
