"""Masters -> student versions and autograders, and which master grades a submission.

A *master* (`notebooks/solutions/NN_*.ipynb`, otter-assign format: a first raw cell `# ASSIGNMENT CONFIG`) holds
the prompts, the solutions and the tests. otter-assign makes from it the *student version* (solutions and hidden
tests stripped; its public checks beside it) and the *autograder* (a zip), cached by the master's content under
`runs/grade/` in a clone, or `~/.cache/minidpo/grade/` where minidpo is an installed package
(`MINIDPO_GRADE_CACHE` sets it). The masters come from the clone, or from any folder (`--masters DIR`), e.g. a
teacher's private copy with their own hidden inputs.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "notebooks" / "solutions"
STUDENTS = ROOT / "notebooks" / "exercises"
CACHE = Path(os.environ.get("MINIDPO_GRADE_CACHE") or (ROOT / "runs" / "grade" if (ROOT / "notebooks").is_dir()
                                                      else Path.home() / ".cache" / "minidpo" / "grade"))


def masters(directory: Path | None = None) -> list[Path]:
    """The masters in `directory` (default: the clone's notebooks/solutions/)."""
    directory = Path(directory or MASTERS)
    if not directory.is_dir():
        raise ValueError(f"no masters folder {directory}: pass --masters DIR (a copy of the repository's "
                         f"notebooks/solutions/) when minidpo is an installed package")
    return sorted(directory.glob("[0-9][0-9]_*.ipynb"))


def is_master(notebook: Path) -> bool:
    """A master starts with otter-assign's `# ASSIGNMENT CONFIG` raw cell."""
    cells = json.loads(Path(notebook).read_text()).get("cells", [])
    return bool(cells) and cells[0].get("cell_type") == "raw" and \
        "".join(cells[0].get("source", "")).lstrip().startswith("# ASSIGNMENT CONFIG")


def _assign(master: Path, out: Path) -> None:
    """otter assign MASTER OUT (no PDFs; the tests are run by grading the solutions instead)."""
    cmd = [sys.executable, "-m", "otter", "assign", "--no-pdfs", "--no-run-tests", str(master), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"otter assign failed for {master.name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def build(master: Path) -> dict[str, Path]:
    """The student version, the solution version and the autograder zip of one master, cached by its content."""
    digest = hashlib.sha256(Path(master).read_bytes()).hexdigest()[:16]
    out = CACHE / f"{Path(master).stem}-{digest}"
    if not (out / "done").exists():  # built aside, then moved into place: a second grader never sees half a build
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix=f".{Path(master).stem}-"))
        _assign(Path(master), tmp / "build")
        (tmp / "build" / "done").write_text("")
        if out.exists() and not (out / "done").exists():  # a build cut short by an older grader
            shutil.rmtree(out, ignore_errors=True)
        try:
            os.replace(tmp / "build", out)
        except OSError:  # another grader finished the same build first
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return {"student": out / "student" / Path(master).name, "student_tests": out / "student" / "tests",
            "solution": out / "autograder" / Path(master).name,
            "autograder": Path(glob.glob(str(out / "autograder" / "*.zip"))[0])}


def build_all(master_paths, jobs: int = 2) -> dict[Path, dict[str, Path] | Exception]:
    """`build` of each master, `jobs` otter-assign processes at a time: {master: its paths, or what it raised}."""
    def attempt(master: Path) -> dict[str, Path] | Exception:
        try:
            return build(master)
        except Exception as e:  # noqa: BLE001 -- the caller says which master failed, and how
            return e

    unique = sorted({Path(m) for m in master_paths})
    with ThreadPoolExecutor(max(1, jobs)) as pool:  # each build is a child process: threads only wait
        return dict(zip(unique, pool.map(attempt, unique)))


def student_text(built_student: Path) -> str:
    """The student notebook otter assign made, with cell ids set from the cell positions (otter draws them at random,
    so two builds of one master would differ only in ids)."""
    nb = json.loads(Path(built_student).read_text())
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"{Path(built_student).stem}-{i}"
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def make_students(dest: Path = STUDENTS, directory: Path | None = None) -> list[Path]:
    """Write the student version of every master to `dest` (what the repository commits), with its public
    checks in `dest/tests/<assignment>/` (where the notebook's `otter.Notebook(..., tests_dir=...)` looks)."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for master, built in build_all(masters(directory)).items():
        if isinstance(built, Exception):
            raise built
        target, tests = dest / master.name, dest / "tests" / master.stem
        target.write_text(student_text(built["student"]))
        shutil.rmtree(tests, ignore_errors=True)
        shutil.copytree(built["student_tests"], tests)
        written += [target, tests]
    return written


def assignment_name(notebook: Path) -> str:
    """The otter assignment a notebook belongs to (its metadata), so a renamed submission still finds its master."""
    meta = json.loads(Path(notebook).read_text()).get("metadata", {}).get("otter", {})
    name = meta.get("assignment_name")
    if not name:
        raise ValueError(f"{notebook}: not an exercise notebook (no metadata.otter.assignment_name); "
                         f"grade a copy of a notebook from notebooks/exercises/")
    return name


def master_for(notebook: Path, directory: Path | None = None) -> Path:
    """The master that grades `notebook`: itself when it is one, else the one named by its assignment."""
    if is_master(notebook):
        return Path(notebook)
    name = assignment_name(notebook)
    for master in masters(directory):
        if master.stem == name:
            return master
    raise ValueError(f"{notebook}: no master {name}.ipynb for assignment {name!r} in {directory or MASTERS}")
