"""Data-parallel training under `accelerate launch`: 2 CPU processes (gloo) follow the same loss trajectory
as 1 process with the same global batch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")


def _run(cmd: list[str], out: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(WORKER.parents[1]))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "result.json").read_text())


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate's launcher is not on PATH")
@pytest.mark.parametrize("job", ["sft", "dpo"])
def test_two_processes_match_one(job, tmp_path):
    one = _run([sys.executable, str(WORKER), job, str(tmp_path / "one")], tmp_path / "one")
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    two = _run(launch + [str(WORKER), job, str(tmp_path / "two")], tmp_path / "two")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    h1, h2 = one["history"], two["history"]
    assert [sorted(r) for r in h1] == [sorted(r) for r in h2]  # same steps, evals and metric names
    assert len([r for r in h1 if "loss" in r]) == 3 and len([r for r in h1 if "eval_loss" in r]) == 2
    for r1, r2 in zip(h1, h2):
        for key in r1:
            if key.endswith("accuracies") and abs(r1[key.replace("accuracies", "margins")]) < 1e-4:
                continue  # policy == reference at step 1: margins are rounding noise and their sign a coin flip
            assert r2[key] == pytest.approx(r1[key], rel=1e-4, abs=1e-5), (r1["step"], key)
    losses = [r["loss"] for r in h1 if "loss" in r]
    assert losses[-1] < losses[0]  # the trajectory moves, so agreement is not trivial
