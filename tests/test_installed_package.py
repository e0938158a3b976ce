"""The package as a user installs it (non-editable, e.g. on Colab) works outside the repository.

minidpo is built from a copy of the source and installed with `pip install --target`; notebooks 01 and 06 run
from an empty directory on the smoke profile, importing that copy. Figures and run folders go to the working
directory, and nothing is written inside the installed package.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A non-editable install of this checkout in a fresh --target folder (no dependencies: they are the
    environment's)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "minidpo", src / "minidpo", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-compile", "--target", str(target), str(src)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (target / "minidpo" / "__init__.py").is_file() and not (target / "minidpo").is_symlink()
    return target


@pytest.mark.parametrize("notebook", ["01_bradley_terry", "06_dpo_training"])
def test_notebook_runs_from_an_empty_directory_on_the_installed_package(installed, notebook, tmp_path, monkeypatch):
    work = tmp_path / "empty"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / f"{notebook}.ipynb", work)
    before = _snapshot(installed)
    monkeypatch.setenv("PYTHONPATH", str(installed))  # ahead of the editable install of the checkout
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("MINIDPO_PROFILE", "smoke")
    monkeypatch.delenv("MINIDPO_FIGURES_DIR", raising=False)  # the default place is what is under test
    nb = nbformat.read(work / f"{notebook}.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import minidpo, pathlib; print(pathlib.Path(minidpo.__file__).resolve())"))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(work)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue")
    imported = Path(nb.cells[0].outputs[0]["text"].strip())
    assert imported == (installed / "minidpo" / "__init__.py").resolve()  # the installed copy, not the checkout
    assert _snapshot(installed) == before, "the notebook wrote inside the installed package"
    assert sorted(p.name for p in (work / "figures").glob("*.png")), "figures belong in ./figures"
    if notebook.startswith("06"):
        assert any((work / "runs").iterdir()), "run folders belong in ./runs"


def test_the_grader_works_from_the_installed_package_with_masters_from_a_folder(installed, tmp_path):
    """A teacher with `pip install minidpo` and a private copy of the masters: a master is graded directly through
    its key (full marks), a student's copy without `--masters DIR` is a clear error naming the flag, the autograder
    cache goes to ~/.cache/minidpo/grade, and nothing is written inside the installed package. Catches a grader that
    only finds masters inside a clone, or caches beside the installed code. (`--masters` grading a student's copy:
    tests/test_grade.py, in the clone.)"""
    masters, work, home = tmp_path / "my_masters", tmp_path / "empty", tmp_path / "home"
    for folder in (masters, work, home):
        folder.mkdir()
    shutil.copy(ROOT / "notebooks" / "solutions" / "01_bradley_terry.ipynb", masters)
    shutil.copy(ROOT / "notebooks" / "exercises" / "01_bradley_terry.ipynb", work / "alice.ipynb")
    env = {**os.environ, "PYTHONPATH": str(installed), "PYTHONDONTWRITEBYTECODE": "1", "HOME": str(home)}
    env.pop("MINIDPO_GRADE_CACHE", None)
    before = _snapshot(installed)

    def grade(*args):
        return subprocess.run([sys.executable, "-m", "minidpo.grade", *args, "--time-limit", "300"], cwd=work,
                              env=env, capture_output=True, text=True, timeout=600)

    key = grade(str(masters / "01_bradley_terry.ipynb"), "--masters", str(masters))
    assert key.returncode == 0 and "passed" in key.stdout, key.stdout + key.stderr[-2000:]
    total = key.stdout.strip().splitlines()[-1]
    assert total.split()[1] == total.split()[3], total  # full marks
    no_masters = grade("alice.ipynb")
    assert no_masters.returncode != 0 and "--masters DIR" in no_masters.stderr
    assert any((home / ".cache" / "minidpo" / "grade").iterdir())
    assert _snapshot(installed) == before, "the grader wrote inside the installed package"
