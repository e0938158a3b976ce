"""DPO's family against TRL 1.16 on the same tiny model and batch (the peer for each loss TRL has).

- `sigmoid_norm` and RPO (`loss_type=["sigmoid", "sft"]`, weights [1, alpha]): TRL's DPOTrainer loss on its own
  collated batch vs our `DPOStep` on ours (same token ids, tests/test_trl_agreement.py);
- SimPO (`CPOTrainer.cpo_loss` with `loss_type="simpo"`) and ORPO (`ORPOTrainer.odds_ratio_loss`): TRL's loss
  function on our length-averaged log-probs vs ours on the same sums and lengths;
- KTO: TRL's KTOTrainer loss on the pairs read as 2B unpaired examples, with the mismatched completions our
  collator makes (TRL's rule: completions cycled by one), vs our `DPOStep`.
R-DPO and Plackett-Luce DPO are not in TRL: tests/test_family.py pins them to their papers' formulas.
Tolerances: each log-prob's float32 tolerance propagated through the loss (tests/precision.py).
"""

import copy
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

trl = pytest.importorskip("trl", reason="TRL is the peer implementation (pip install -e '.[dev]')")

from precision import propagated_tol, sum_tol  # noqa: E402
from test_trl_agreement import _logps_and_tols  # noqa: E402

from minidpo.data import collate_preferences  # noqa: E402
from minidpo.losses import dpo_loss  # noqa: E402
from minidpo.train import DPOConfig, DPOStep  # noqa: E402

BETA = 0.1


@pytest.fixture(scope="module")
def models(tiny):
    ref = copy.deepcopy(tiny[0]).eval()
    policy = copy.deepcopy(ref)
    g = torch.Generator().manual_seed(1)  # fixed: whatever ran before, the same policy (and KTO's z > 0, asserted there)
    with torch.no_grad():  # the policy differs from the reference, so log-ratios are not zero
        for p in policy.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return policy, ref, tiny[1]


def _pair_tols(policy, ref, batch):
    (pl, pt), (rl, rt) = _logps_and_tols(policy, batch), _logps_and_tols(ref, batch)
    lengths = batch["response_mask"][:, 1:].sum(1).double().chunk(2)
    return [*pl.chunk(2), *rl.chunk(2)], [*pt.chunk(2), *rt.chunk(2)], lengths


@pytest.mark.parametrize("loss_type, trl_types, weights", [("sigmoid_norm", ["sigmoid_norm"], [1.0]),
                                                          ("rpo", ["sigmoid", "sft"], [1.0, 0.7])])
def test_dpo_trainer_losses_agree(models, tokenized, tmp_path, loss_type, trl_types, weights):
    policy, ref, tok = models
    data = tokenized.select(range(6))
    text = Dataset.from_dict({k: list(data[k]) for k in ("prompt", "chosen", "rejected")})
    args = trl.DPOConfig(output_dir=str(tmp_path), beta=BETA, per_device_train_batch_size=6, report_to="none", bf16=False,
                         use_cpu=True, max_length=None, loss_type=trl_types, loss_weights=weights)
    trainer = trl.DPOTrainer(model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args, train_dataset=text,
                             processing_class=tok)
    examples = [data[i] for i in range(len(data))]
    theirs = trainer.data_collator([{k: ex[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for ex in examples])
    ours = collate_preferences(examples, tok.pad_token_id)
    assert torch.equal(ours["input_ids"], theirs["input_ids"])
    trainer.model.train()
    with torch.no_grad():
        trl_loss = trainer._compute_loss(trainer.model, theirs, return_outputs=False)
        our_loss, _ = DPOStep(DPOConfig(beta=BETA, loss_type=loss_type, rpo_alpha=weights[-1] if loss_type == "rpo" else 1.0),
                              ref_model=ref)(policy.eval(), ours)  # eval: no dropout, as TRL disables it
    inputs, tols, (lc, lr) = _pair_tols(policy, ref, ours)
    extra = {"rpo_alpha": weights[-1]} if loss_type == "rpo" else {}
    fn = lambda pc, pr, rc, rr: dpo_loss(pc, pr, rc, rr, BETA, loss_type, chosen_lengths=lc, rejected_lengths=lr, **extra).losses.mean()  # noqa: E731
    assert abs(our_loss.item() - trl_loss.item()) <= propagated_tol(fn, inputs, tols)


def _fake_trainer(**fields):
    """What TRL's loss methods read from `self`: their hyperparameters and an accelerator's device."""
    return SimpleNamespace(accelerator=SimpleNamespace(device=torch.device("cpu")), label_smoothing=0.0, alpha=0.0, **fields)


def _length_averaged(seed=0, n=8):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 40, (2, n), generator=g).double()
    logps = -lengths * torch.rand(2, n, generator=g, dtype=torch.float64) * 3  # per-token log-probs in (-3, 0)
    return logps[0], logps[1], lengths[0], lengths[1]


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.4])
def test_simpo_matches_trl_cpo_simpo(gamma):
    from trl.experimental.cpo import CPOTrainer

    pc, pr, lc, lr = _length_averaged(1)
    beta = 2.0
    theirs, their_c, their_r = CPOTrainer.cpo_loss(_fake_trainer(beta=beta, simpo_gamma=gamma, loss_type="simpo"),
                                                   pc / lc, pr / lr)
    out = dpo_loss(pc, pr, None, None, beta, "simpo", chosen_lengths=lc, rejected_lengths=lr, simpo_gamma=gamma)
    ours = out.losses
    assert torch.allclose(ours, theirs, rtol=0, atol=sum_tol(float(theirs.abs().max()) + 10, 8, torch.finfo(torch.float64).eps))
    # the logged rewards/* are TRL's: beta x the length-averaged log-prob (catches beta x the summed one)
    tol = 4 * torch.finfo(torch.float64).eps * beta * (pc / lc).abs().max().item()
    assert torch.allclose(out.chosen_rewards, their_c, rtol=0, atol=tol)
    assert torch.allclose(out.rejected_rewards, their_r, rtol=0, atol=tol)


def test_orpo_matches_trl_odds_ratio_loss_plus_nll():
    from trl.experimental.orpo import ORPOTrainer

    pc, pr, lc, lr = _length_averaged(2)
    lam = 0.25
    or_losses, their_c, their_r, *_ = ORPOTrainer.odds_ratio_loss(_fake_trainer(beta=lam), pc / lc, pr / lr)
    nll = -pc.sum() / lc.sum()  # TRL's NLL: cross-entropy over every chosen token of the batch
    theirs = nll - or_losses.mean()  # ORPOTrainer.get_batch_loss_metrics: loss = policy_nll_loss - losses.mean()
    out = dpo_loss(pc, pr, None, None, lam, "orpo", chosen_lengths=lc, rejected_lengths=lr)
    ours = out.losses.mean()
    # the logged rewards/* are TRL's ORPO metrics: beta x the length-averaged log-prob (TRL computes them in float32)
    tol = 4 * torch.finfo(torch.float32).eps * lam * (pc / lc).abs().max().item()
    assert torch.allclose(out.chosen_rewards, their_c.double(), rtol=0, atol=tol)
    assert torch.allclose(out.rejected_rewards, their_r.double(), rtol=0, atol=tol)
    # TRL computes the odds ratio in float32 (`.float()`): float32 roundings of the log-odds terms, each below 10
    assert abs(ours.item() - theirs.item()) <= sum_tol(abs(theirs.item()) + 10, 16, torch.finfo(torch.float32).eps)


def test_kto_matches_trl_kto_trainer(models, tokenized, tmp_path):
    ref, policy, tok = models  # roles swapped: the perturbed model is the reference, so that KTO's z > 0 here
    data = tokenized.select(range(4))
    examples = [data[i] for i in range(len(data))]
    ours = collate_preferences(examples, tok.pad_token_id, mismatched=True)
    # the pairs as 2B unpaired examples [chosen...; rejected...], each with the completion of the example before it
    completions = [ex["chosen_ids"] for ex in examples] + [ex["rejected_ids"] for ex in examples]
    unpaired = [{"prompt_ids": ex["prompt_ids"], "completion_ids": c, "KL_completion_ids": k, "label": i < len(examples)}
                for i, (ex, c, k) in enumerate(zip(examples * 2, completions, completions[-1:] + completions[:-1]))]
    text = Dataset.from_dict({"prompt": list(data["prompt"]) * 2, "completion": list(data["chosen"]) + list(data["rejected"]),
                              "label": [True] * 4 + [False] * 4})
    args = trl.KTOConfig(output_dir=str(tmp_path), beta=BETA, per_device_train_batch_size=8, report_to="none", bf16=False,
                         use_cpu=True, max_length=None)
    trainer = trl.KTOTrainer(model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref), args=args, train_dataset=text,
                             processing_class=tok)
    theirs = trainer.data_collator(unpaired)
    assert torch.equal(ours["mismatched_input_ids"], theirs["KL_input_ids"])
    trainer.model.train()
    with torch.no_grad():
        trl_loss = trainer._compute_loss(trainer.model, theirs, return_outputs=False)
        our_loss, _ = DPOStep(DPOConfig(beta=BETA, loss_type="kto"), ref_model=ref)(policy.eval(), ours)  # eval: no dropout, as TRL disables it
    inputs, tols, _ = _pair_tols(policy, ref, ours)
    mism = {k.removeprefix("mismatched_"): v for k, v in ours.items() if k.startswith("mismatched_")}
    (pm, pmt), (rm, rmt) = _logps_and_tols(policy, mism), _logps_and_tols(ref, mism)
    fn = lambda pc, pr, rc, rr, m: dpo_loss(pc, pr, rc, rr, BETA, "kto", mismatched_logratios=m).losses.mean()  # noqa: E731
    assert (pm - rm).mean() > 10 * (pmt + rmt).max(), "the KL estimate z is clamped to 0 here: the test would not see it"
    tol = propagated_tol(fn, inputs + [pm - rm], tols + [pmt + rmt])
    assert abs(our_loss.item() - trl_loss.item()) <= tol
