"""The main job end to end in the smoke profile (tiny model, a few steps), through the CLI."""

import json
import math
import subprocess
import sys

import pytest

from minidpo.profiles import get_profile


def test_profiles_and_bad_profile_name(monkeypatch):
    monkeypatch.setenv("MINIDPO_PROFILE", "cpu")
    assert get_profile().model == "smollm2-135m-instruct"
    assert get_profile("smoke").model == "tiny-gpt2"
    with pytest.raises(ValueError, match="not a profile; choose one of"):
        get_profile("huge")


def test_device_follows_the_machine_not_the_profile(monkeypatch):
    import torch

    from minidpo.train import DPOConfig

    monkeypatch.delenv("MINIDPO_DEVICE", raising=False)
    machine = "cuda" if torch.cuda.is_available() else "cpu"
    assert {get_profile(name).device for name in ("smoke", "cpu", "gpu")} == {machine}
    monkeypatch.setenv("MINIDPO_DEVICE", "cpu")
    assert {get_profile(name).device for name in ("smoke", "cpu", "gpu")} == {"cpu"}
    assert get_profile("gpu", device="cuda:1").device == "cuda:1"  # an explicit override wins
    # what the experiments hand the training loop: a CPU profile device keeps accelerate off the GPU
    assert DPOConfig(use_cpu=get_profile("cpu").device == "cpu").use_cpu


def _run(tmp_path, name, *extra):
    cmd = [sys.executable, "-m", "minidpo", "run", "--profile", "smoke", *extra, "--run-dir", str(tmp_path / name / "run"),
           "--results-dir", str(tmp_path / name / "results"), "--figures-dir", str(tmp_path / name / "figures")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / name / "results" / "pipeline_smoke.json").read_text()), done.stdout


def test_smoke_pipeline_writes_results_and_figures_and_is_deterministic(tmp_path):
    results, stdout = _run(tmp_path, "a")
    assert '"dpo_vs_sft"' in stdout
    assert results["data"]["records_read"] == 1100 and results["data"]["dropped"] == {
        "field 'rejected': identical to 'chosen': the pair expresses no preference": 6
    }
    for name in ("sft_loss", "dpo_metrics", "win_rates"):
        assert (tmp_path / "a" / "figures" / f"{name}_smoke.png").stat().st_size > 1000
    for model in ("base", "sft", "dpo"):
        for temp, wr in results["win_rates_vs_data"][model].items():
            assert 0 <= wr["ci_low"] <= wr["rate"] <= wr["ci_high"] <= 1 and wr["n"] == 8
    assert results["dpo"]["train"]["step"] == 4 and "eval_rewards/accuracies" in results["dpo"]["eval"]
    # same seed, same numbers (timings aside)
    again, _ = _run(tmp_path, "b")
    for key in ("win_rates_vs_data", "head_to_head", "examples"):
        assert results[key] == again[key]
    assert results["dpo"]["train"] == again["dpo"]["train"]
    # a different seed changes the split, the training and the samples
    other, _ = _run(tmp_path, "c", "--seed", "1")
    assert other["seed"] == 1 and other["dpo"]["train"] != results["dpo"]["train"]
    assert other["examples"] != results["examples"]


def test_interrupted_pipeline_resumes_from_saved_stages(tmp_path):
    first, _ = _run(tmp_path, "r")
    samples = tmp_path / "r" / "run" / "samples.json"
    data = json.loads(samples.read_text())
    data.pop("dpo@1.0")  # as if killed during the last sampling pass
    samples.write_text(json.dumps(data))
    second, _ = _run(tmp_path, "r")
    assert first["win_rates_vs_data"] == second["win_rates_vs_data"]
    assert second["timing_s"]["sft_s"] < first["timing_s"]["sft_s"] + 1  # SFT was loaded, not retrained


def test_gpu_profile_code_path_with_a_random_gpt2_medium(tmp_path):
    """The `gpu` profile's configuration (optimizer, warm-up, beta, evaluation cadence, sweep) on a random-init
    model of GPT-2-medium's shape (24 layers, width 1024, 355M parameters), a few steps on the CPU: the Colab
    path runs end to end without the hub. Only sizes, the device and the hub-only judge are overridden."""
    from dataclasses import replace

    from minidpo.pipeline import run_pipeline

    gpu = get_profile("gpu")
    few = dict(max_steps=2, batch_size=2, eval_every=1, save_every=2)
    profile = replace(
        gpu, model="random-gpt2-medium", device="cpu", n_train=4, n_validation=2, n_test=2,
        sft={**gpu.sft, **few}, dpo={**gpu.dpo, **few}, temperatures=(1.0,), max_new_tokens=4,
        generation_batch_size=2, sentence_encoder=None, sweep_betas=(gpu.dpo["beta"],),
    )
    results = run_pipeline(profile, run_dir=tmp_path / "run", results_dir=tmp_path / "results",
                           figures_dir=tmp_path / "figures", show_progress=False)
    assert results["dpo"]["config"]["optimizer"] == gpu.dpo["optimizer"] and results["dpo"]["config"]["beta"] == gpu.dpo["beta"]
    assert results["dpo"]["train"]["step"] == 2 and results["sft"]["train"]["step"] == 2
    for stage in ("sft", "dpo"):
        assert all(math.isfinite(v) for h in results[stage]["history"] for v in h.values())
    assert math.isfinite(results["beta_sweep"][0]["kl_to_reference"])
    assert results["head_to_head"]["dpo_vs_sft"]["1.0"]["n"] == 2
