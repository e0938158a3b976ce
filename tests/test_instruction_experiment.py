"""The instruction experiment (notebooks 04-07) end to end on the smoke profile, through the CLI, and the gpu
plan's code path on a random GPT-2-medium."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from golden_numbers import compare

from minidpo.experiments.profiles import get_profile


def test_profiles_and_bad_profile_name(monkeypatch):
    monkeypatch.setenv("MINIDPO_PROFILE", "cpu")
    assert get_profile().model == "smollm2-135m-instruct"
    assert get_profile("smoke").model == "tiny-gpt2"
    with pytest.raises(ValueError, match="not a profile; choose one of"):
        get_profile("huge")


def test_device_follows_the_machine_not_the_profile(monkeypatch):
    import torch

    monkeypatch.delenv("MINIDPO_DEVICE", raising=False)
    machine = "cuda" if torch.cuda.is_available() else "cpu"
    assert {get_profile(name).device for name in ("smoke", "cpu", "gpu")} == {machine}
    monkeypatch.setenv("MINIDPO_DEVICE", "cpu")
    assert {get_profile(name).device for name in ("smoke", "cpu", "gpu")} == {"cpu"}
    assert get_profile("gpu", device="cuda").device == "cuda"  # an explicit override wins


def _run(tmp_path, name, *extra):
    cmd = [sys.executable, "-m", "minidpo", "run", "--profile", "smoke", *extra, "--run-dir", str(tmp_path / name / "run"),
           "--results-dir", str(tmp_path / name / "results"), "--figures-dir", str(tmp_path / name / "figures")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / name / "results" / "instruction_smoke.json").read_text()), done.stdout


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run, read by the tests below (each copies what it changes)."""
    root = tmp_path_factory.mktemp("instruction")
    results, stdout = _run(root, "a")
    return root, results, stdout


def test_smoke_run_writes_results_samples_and_figures_and_is_deterministic(smoke_run, tmp_path):
    root, results, stdout = smoke_run
    # every number as the redesigned experiment (issue 27) computed it (tests/golden_numbers.py)
    assert not compare(results, "instruction_smoke"), compare(results, "instruction_smoke")[:20]
    assert '"primary (Holm)"' in stdout
    data = results["data"]
    assert data["records_read"] == 1100 and data["records_kept"] == 1094
    assert (data["output_is_chosen"], data["output_is_rejected"]) == (556, 538)  # `output` is one side of every pair
    assert data["split_sizes"] == {"test": 8, "validation": 8, "judge_train": 24, "dpo_train": 24}
    assert data["tokenization"]["sft_reference/dpo_train"] and "sft_preferred/dpo_train" in data["tokenization"]
    share = data["halves_all"]["rude_rewrite"] / data["records_kept"]
    for split, halves in data["halves"].items():  # stratified: each split holds each half in its share, +-1
        assert abs(halves["rude_rewrite"] - share * sum(halves.values())) <= 1, split
    plan = results["plan"]
    assert results["analysis_plan"]["primary_metrics"].keys() == {"rude rate", "polite rate"}  # stored with the run
    assert list(results["arms"]) == ["base", "reference", "preferred_ft", "dpo_beta0.1", "dpo_beta1"]
    for kind in ("rude", "polite"):
        lex = results["lexicons"][kind]
        assert set(lex["markers"]) <= set(lex["candidates"])
        assert lex["validity_judge_split"]["precision"] >= plan["lexicon_precision"] or not lex["markers"]
    ref = results["reference"]
    assert [c["epochs"] for c in ref["checkpoints"]] == plan["reference_checkpoints"]
    assert ref["selected_epochs"] in plan["reference_checkpoints"]
    for name, t in results["trajectories"].items():  # the reference (step 0) and every checkpoint, on validation
        assert [p["epochs"] for p in t["points"]] == [0.0, *plan["checkpoints"]], name
        assert t["points"][0]["kl"] == 0 and all(math.isfinite(p["kl"]) for p in t["points"])
        assert all("logratio/chosen" in p for p in t["points"][1:])
        assert ("rewards/chosen" in t["points"][1]) == (t["method"] == "DPO")
    sel = results["selection"]
    assert sel["selected_beta"] in plan["betas"] and results["selected_arm"] == f"dpo_beta{sel['selected_beta']:g}"
    seeds = {a: len(r["seeds"]) for a, r in results["arms"].items()}
    assert seeds[results["selected_arm"]] == seeds["preferred_ft"] == len(plan["seeds"]) == 2 and seeds["base"] == 1
    assert len(results["primary"]) == 2 * (len(plan["betas"]) + 2)
    assert {p["holm"] for p in results["primary"]} <= {"higher", "lower", "no clear difference"}
    assert all(c["interval"]["method"] == "paired bootstrap over prompts" for c in
               [p["comparison"] for p in results["primary"]] + results["instrument_checks"]["aa"])
    assert [e["edit"] for e in results["instrument_checks"]["edits"]][:2] == ["insert a rude phrase (end)",
                                                                               "insert a polite opener (start)"]
    assert len(results["displacement"]) == 2 * len(results["selection"]["runs"])  # the arms' runs
    assert {m["metric"] for m in results["matched_kl"]} == {"rude rate", "polite rate"}
    assert set(results["examples"][0]) == {"prompt", "reference", "preferred_ft", results["selected_arm"]}
    lines = (root / "a" / "results" / "samples_smoke.jsonl").read_text().splitlines()
    assert len(lines) == 8 * plan["samples_per_prompt"] * sum(seeds.values())
    assert set(json.loads(lines[0])) == {"prompt_id", "arm", "beta", "epochs", "seed", "sample_set", "reply"}
    for name in ("05_reference", "06_trajectories", "07_matched_kl", "07_primary"):
        assert (root / "a" / "figures" / f"{name}_smoke.png").stat().st_size > 1000
    redraw = subprocess.run([sys.executable, "-m", "minidpo", "figures", "--profile", "smoke", "--results-dir",
                             str(root / "a" / "results"), "--figures-dir", str(tmp_path / "redrawn")],
                            capture_output=True, text=True, timeout=300)
    assert redraw.returncode == 0 and len(list((tmp_path / "redrawn").glob("*_smoke.png"))) == 4, redraw.stderr[-2000:]
    # same seed, same numbers (timings aside): the run matched the golden numbers another run wrote (above); a
    # different seed changes the split, training and samples
    other, _ = _run(tmp_path, "c", "--seed", "1")
    assert other["seed"] == 1 and other["arms"] != results["arms"]


def test_interrupted_run_resumes_from_saved_stages(smoke_run, tmp_path):
    root, first, _ = smoke_run
    run = tmp_path / "r" / "run"
    shutil.copytree(root / "a" / "run", run)  # the smoke run's stages, in a folder of this test's own
    dpo_run = first["selection"]["runs"]["dpo_beta1"]  # the run at DPO's chosen learning rate
    sample_stage = next((run / "samples" / "test").glob(f"{dpo_run}@*")) / "1" / "stage.json"
    sample_stage.unlink()  # as if killed while sampling
    (run / dpo_run / "1" / "stage.json").unlink()  # ... or after the last checkpoint's training
    second, _ = _run(tmp_path, "r")
    assert second["arms"] == first["arms"] and second["primary"] == first["primary"]
    # a changed sampling setting resamples, and everything read from samples follows: the checkpoints' validation
    # readings (a phase is its training and its reading) and the test KL (mutation caught: a phase or a KL keyed by
    # the training alone or by the sampling seed alone, served stale after the replies changed)
    names = (f"{dpo_run}/1", "reference/1", f"kl/{sample_stage.parent.parent.name}")
    before = {name: (run / name / "stage.json").read_text() for name in names}
    third, _ = _run(tmp_path, "r", "--set", "max_new_tokens=4")
    after = {name: (run / name / "stage.json").read_text() for name in names}
    assert all(after[name] != before[name] for name in names) and third["plan"]["max_new_tokens"] == 4
    assert third["arms"]["reference"]["mean_words"] <= 4 and third["arms"] != first["arms"]


# The run of the test below, in a child process: its 355M-parameter model, optimizer states and checkpoints
# (~6 GB) are freed with the process instead of staying in the test session's heap for the tests after it.
GPU_PLAN_RUN = """
import sys
from dataclasses import replace
from pathlib import Path

from minidpo.experiments.instruction_results import run_instruction
from minidpo.experiments.measure import peak_rss_gib
from minidpo.experiments.profiles import get_profile

tmp = Path(sys.argv[1])
gpu = get_profile("gpu").instruction
few = dict(batch_size=2, eval_every=1, save_every=2)
plan = replace(gpu, n_test=2, n_validation=2, n_judge=8, n_dpo=4, betas=gpu.betas[:1],
               reference=replace(gpu.reference, **few), reference_checkpoints=(0.5,),
               preferred_ft=replace(gpu.preferred_ft, **few), dpo=replace(gpu.dpo, **few), checkpoints=(1.0,),
               seeds=(0,), samples_per_prompt=2, max_new_tokens=4, generation_batch_size=2, sentence_encoder=None,
               judge_refits=1, judge_l2_grid=(2e-3,), learning_rates=gpu.learning_rates[:1])
profile = get_profile("gpu", model="random-gpt2-medium", device="cpu")
run_instruction(profile, run_dir=tmp / "run", results_dir=tmp / "results", figures_dir=tmp / "figures",
                show_progress=False, plan=plan)
(tmp / "peak_rss_bytes").write_text(str(int(peak_rss_gib() * 2**30)))
"""


def test_gpu_plan_code_path_with_a_random_gpt2_medium(tmp_path):
    """The gpu plan's code path (its optimizers and learning rates, the reference on both replies, Preferred-FT and
    DPO scored at a checkpoint, sampling, KL, judge) on a random-init model of GPT-2-medium's shape (24 layers,
    width 1024, 355M parameters), two steps each on the CPU: the Colab path runs end to end without the hub.
    Sizes, checkpoints, seeds (one: every kept checkpoint writes 1.4 GB), the beta and learning-rate grids, the
    device and the hub-only encoder are overridden (`GPU_PLAN_RUN`); the smoke tests cover seeds."""
    root = Path(__file__).resolve().parents[1]  # this checkout's minidpo, whatever an editable install points at
    subprocess.run([sys.executable, "-c", GPU_PLAN_RUN, str(tmp_path)], check=True, timeout=900, cwd=root)
    results = json.loads((tmp_path / "results" / "instruction_gpu.json").read_text())
    gpu = get_profile("gpu").instruction
    dpo = results["trajectories"][results["selection"]["runs"][f"dpo_beta{gpu.betas[0]:g}"]]["points"]
    assert [p["steps"] for p in dpo] == [0, 2]  # the reference, then one checkpoint (each phase keeps 1.4 GB)
    assert all(math.isfinite(p[k]) for p in dpo for k in ("kl", "rude_rate", "logratio/chosen"))
    assert all(math.isfinite(r["kl"]["estimate"]) for r in results["arms"].values())
    assert results["plan"]["dpo"]["optimizer"] == gpu.dpo.optimizer
    # 355M parameters: weights, gradients and AdamW's two moments are 5.7 GB while a policy trains; the model it
    # started from (base or reference) is parked meanwhile (`models.parked`) and the run stays under 8 GB (mutation
    # caught: the idle model kept in memory during training, 8.8 GB)
    assert int((tmp_path / "peak_rss_bytes").read_text()) < 8e9
