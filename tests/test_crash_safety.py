"""Kill training with SIGKILL after a checkpoint, resume, and get exactly the uninterrupted result."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from minidpo.train import load_checkpoint, save_checkpoint

WORKER = Path(__file__).with_name("crash_worker.py")


def _run(out: Path, delay: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(out), str(delay)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    p = _run(straight)
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]

    p = _run(crashed, delay=1.0)
    deadline = time.time() + 240
    step = 0
    while time.time() < deadline and step < 3:  # wait for the checkpoint of step 3
        time.sleep(0.2)
        if (crashed / "checkpoint.pt").exists():
            step = load_checkpoint(crashed / "checkpoint.pt")["step"]
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert 3 <= step < 8 and not (crashed / "final.pt").exists(), "the kill must land mid-training"

    p = _run(crashed)  # resume: same command, no delay
    assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    a, b = torch.load(straight / "final.pt"), torch.load(crashed / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bitwise
    assert json.loads((straight / "history.json").read_text()) == json.loads((crashed / "history.json").read_text())


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "weights": torch.ones(3)})
    with pytest.raises(Exception):
        save_checkpoint(path, {"step": 2, "unpicklable": lambda: None})  # serialisation fails mid-write
    assert load_checkpoint(path)["step"] == 1
