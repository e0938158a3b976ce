import copy
import json
import math
import shutil

import pytest
import torch
from precision import assert_same_adam_run, logprob_tol

from minidpo.data import completions_from_pairs
from minidpo.logprobs import precompute_reference_logprobs
from minidpo.logprobs import with_reference_logprobs
from minidpo.train import DPOConfig, SFTConfig, load_checkpoint, train_dpo, train_sft


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(learning_rate=0.0), "learning_rate must be"),
        (dict(learning_rate=-1e-5), "learning_rate must be"),
        (dict(batch_size=0), "batch_size must be an integer >= 1"),
        (dict(gradient_accumulation_steps=0), "gradient_accumulation_steps"),
        (dict(optimizer="sgd"), "optimizer must be"),
        (dict(max_steps=0), "max_steps must be"),
        (dict(beta=0.0), "beta must be"),
        (dict(loss_type="nope"), "loss_type must be one of"),
        (dict(label_smoothing=0.7), "label_smoothing must be in"),
    ],
)
def test_config_errors_name_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DPOConfig(**kwargs)


def test_sft_fits_the_chosen_replies(tiny, tokenized, tmp_path):
    model, tok = copy.deepcopy(tiny[0]), tiny[1]
    cfg = SFTConfig(output_dir=str(tmp_path), max_steps=30, batch_size=4, learning_rate=3e-3, warmup_steps=0,
                    eval_every=10, save_every=10, show_progress=False)
    history = train_sft(model, completions_from_pairs(tokenized.select(range(8))), completions_from_pairs(tokenized.select(range(8, 12))), cfg, tok.pad_token_id)
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < 0.6 * losses[0]
    assert sum("eval_loss" in h for h in history) == 3
    assert (tmp_path / "checkpoint.pt").exists() and json.loads((tmp_path / "history.json").read_text()) == history


def _dpo_run(tiny, tokenized, out_dir, steps=6, precompute=True, final_checkpoint=True, **overrides):
    policy, tok = copy.deepcopy(tiny[0]), tiny[1]
    ref = copy.deepcopy(tiny[0]).eval()
    data = tokenized.select(range(8))
    if precompute:
        data = with_reference_logprobs(data, *precompute_reference_logprobs(ref, data, tok.pad_token_id, show_progress=False))
    fields = dict(output_dir=str(out_dir), max_steps=steps, batch_size=4, learning_rate=1e-3, warmup_steps=2,
                  eval_every=3, save_every=2, optimizer="adamw", show_progress=False)
    fields.update(overrides)
    cfg = DPOConfig(**fields)
    history = train_dpo(policy, data, data.select(range(4)), cfg, tok.pad_token_id,
                        ref_model=None if precompute else ref, final_checkpoint=final_checkpoint)
    return policy, history


def _alter_nth_dpo_step(monkeypatch, n: int, alter):
    """Make the n-th call of DPOStep return alter(model, loss, metrics) instead of its own result."""
    import minidpo.train as train_module

    real = train_module.DPOStep.__call__
    calls = {"n": 0}

    def patched(self, model, batch):
        calls["n"] += 1
        loss, metrics = real(self, model, batch)
        return alter(model, loss, metrics) if calls["n"] == n else (loss, metrics)

    monkeypatch.setattr(train_module.DPOStep, "__call__", patched)
    return real


def _crash(model, loss, metrics):
    raise KeyboardInterrupt


def test_dpo_learns_the_preferences_and_logs_trl_metrics(tiny, tokenized, tmp_path):
    _, history = _dpo_run(tiny, tokenized, tmp_path, steps=12)
    train = [h for h in history if "rewards/margins" in h]
    # policy == reference at step 1: the loss is log 2 up to the rounding of the margins h (policy and reference
    # log-probs each within their float32 tolerance), and |dL/dh| = beta / 2 there
    lp = torch.tensor([abs(train[0]["logps/chosen"]) + abs(train[0]["logps/rejected"])])
    assert abs(train[0]["loss"] - math.log(2)) <= 0.1 / 2 * 2 * float(logprob_tol(lp, 512, tiny[0].config.n_embd))
    assert train[-1]["rewards/margins"] > 0.1 and train[-1]["rewards/accuracies"] >= 0.75
    assert {"rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected", "grad_norm", "learning_rate"} <= set(train[-1])
    assert any("eval_rewards/accuracies" in h for h in history)


def test_precomputed_reference_equals_live_reference(tiny, tokenized, tmp_path):
    a, ha = _dpo_run(tiny, tokenized, tmp_path / "a", precompute=True)
    b, hb = _dpo_run(tiny, tokenized, tmp_path / "b", precompute=False)
    la = [h["loss"] for h in ha if "loss" in h]
    lb = [h["loss"] for h in hb if "loss" in h]
    # The two runs differ only in the rounding of the reference log-probs (other batch layouts), which each
    # Adam step carries forward (tests/precision.py: adam_divergence_bound). The losses agree far below the
    # ~1e-2 a wrong reference moves them.
    assert la == pytest.approx(lb, abs=1e-5)
    assert_same_adam_run(_params(a), _params(b), [h["learning_rate"] for h in ha if "loss" in h])


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile on a CPU needs a C compiler")
def test_the_compiled_fast_path_trains_as_the_plain_one(tiny, tokenized, tmp_path):
    """`torch_compile=True` (inductor's fused kernels) against the plain loop, one step (compiling costs ~30 s on 2
    cores): the same loss and metrics to float32 rounding, in training and validation, and the same update: the two runs' parameters differ by
    far less than either moved. Catches a compiled path that computes another objective, or that steps no
    parameters or others (a run without the update would differ from the plain one by the whole step)."""
    start = _params(tiny[0])
    plain, hp = _dpo_run(tiny, tokenized, tmp_path / "plain", steps=1, eval_every=100)
    fast, hf = _dpo_run(tiny, tokenized, tmp_path / "fast", steps=1, eval_every=100, torch_compile=True)
    assert len(hp) == len(hf) == 2  # the step's metrics, then the validation pass (also through the compiled model)
    # a batch-mean log-prob's rounding (tests/precision.py), times beta for the rewards; accuracies count margins > 0,
    # and the first step's margins are 0 up to that rounding, so they are not compared
    scale = max(abs(v) for h in hp for k, v in h.items() if "logps" in k)
    tol = float(logprob_tol(torch.tensor(scale), 512, tiny[0].config.n_embd))
    for a, b in zip(hp, hf):
        assert set(a) == set(b)
        for k in (k for k in a if "accuracies" not in k):
            allowed = tol if "logps" in k else DPOConfig().beta * tol if "rewards" in k else 1e-5 * max(1, abs(a[k]))
            assert abs(b[k] - a[k]) <= allowed, (k, a[k], b[k], allowed)
    moved = (_params(plain) - start).abs().mean()
    assert moved > 0 and (_params(fast) - _params(plain)).abs().mean() < 0.01 * moved


def test_gradient_accumulation_matches_a_big_batch(tiny, tokenized, tmp_path):
    a, ha = _dpo_run(tiny, tokenized, tmp_path / "a", steps=2, batch_size=4, gradient_accumulation_steps=2, length_bucketing=False)
    b, hb = _dpo_run(tiny, tokenized, tmp_path / "b", steps=2, batch_size=8, gradient_accumulation_steps=1, length_bucketing=False)
    # equal up to summation order (Adam divides by sqrt(v), which magnifies rounding on near-zero gradients)
    assert_same_adam_run(_params(a), _params(b), [h["learning_rate"] for h in ha if "loss" in h])
    assert [h["loss"] for h in ha if "loss" in h] == pytest.approx([h["loss"] for h in hb if "loss" in h], abs=1e-6)


def test_resume_after_interruption_gives_identical_results(tiny, tokenized, tmp_path, monkeypatch):
    full, h_full = _dpo_run(tiny, tokenized, tmp_path / "full", steps=6)
    # interrupt the second run in step 5, after the checkpoint written at step 4
    import minidpo.train as train_module

    real = _alter_nth_dpo_step(monkeypatch, 5, _crash)
    with pytest.raises(KeyboardInterrupt):
        _dpo_run(tiny, tokenized, tmp_path / "resumed", steps=6, eval_every=100)
    monkeypatch.setattr(train_module.DPOStep, "__call__", real)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["step"] == 4
    resumed, h_resumed = _dpo_run(tiny, tokenized, tmp_path / "resumed", steps=6, eval_every=100)
    assert torch.equal(_params(full), _params(resumed))  # bitwise
    strip = lambda h: [x for x in h if not any(k.startswith("eval_") for k in x)]  # noqa: E731
    assert strip(h_full) == strip(h_resumed)


def test_without_the_final_checkpoint_only_the_last_step_is_not_saved(tiny, tokenized, tmp_path):
    """Catches: `final_checkpoint=False` ignored (a write of the weights and AdamW's two moments that a phased run,
    which keeps the weights itself, does not need), or the periodic checkpoints a crash resumes from skipped with it;
    the history file is the whole run's either way."""
    full, h_full = _dpo_run(tiny, tokenized, tmp_path / "full", steps=5, eval_every=100)
    assert load_checkpoint(tmp_path / "full" / "checkpoint.pt")["step"] == 5
    lean, h_lean = _dpo_run(tiny, tokenized, tmp_path / "lean", steps=5, eval_every=100, final_checkpoint=False)
    assert load_checkpoint(tmp_path / "lean" / "checkpoint.pt")["step"] == 4  # save_every=2: steps 2 and 4 only
    assert json.loads((tmp_path / "lean" / "history.json").read_text()) == h_lean
    assert torch.equal(_params(full), _params(lean)) and h_full == h_lean


def test_non_finite_loss_stops_with_the_step_named(tiny, tokenized, tmp_path, monkeypatch):
    _alter_nth_dpo_step(monkeypatch, 3, lambda model, loss, metrics: (loss * float("nan"), metrics))
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 3, micro-batch 0 .*last good checkpoint"):
        _dpo_run(tiny, tokenized, tmp_path, steps=6, eval_every=100)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2


def test_corrupt_checkpoint_is_reported(tiny, tokenized, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="corrupt or unreadable"):
        _dpo_run(tiny, tokenized, tmp_path, steps=2)


def test_same_seed_same_numbers(tiny, tokenized, tmp_path):
    a, ha = _dpo_run(tiny, tokenized, tmp_path / "a", steps=3)
    b, hb = _dpo_run(tiny, tokenized, tmp_path / "b", steps=3)
    assert torch.equal(_params(a), _params(b)) and ha == hb
    c, hc = _dpo_run(tiny, tokenized, tmp_path / "c", steps=3, seed=1)
    assert not torch.equal(_params(a), _params(c))


def test_non_finite_gradient_stops_with_the_step_named(tiny, tokenized, tmp_path, monkeypatch):
    # finite loss, NaN gradient: d sqrt(t)/dt at t = 0 is inf, times 0
    _alter_nth_dpo_step(
        monkeypatch, 2, lambda model, loss, metrics: (loss + torch.sqrt(0 * next(model.parameters()).sum()), metrics)
    )
    with pytest.raises(FloatingPointError, match=r"gradient norm is nan at step 2 .*fp16 overflow"):
        _dpo_run(tiny, tokenized, tmp_path, steps=4, eval_every=100, save_every=1)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 1  # the last good one is kept
