"""Autograding of the exercise notebooks with otter-grader (https://otter-grader.readthedocs.io).

Every notebook 01-10 has an exercise notebook. Its *master* (`notebooks/solutions/NN_*.ipynb`, otter-assign
format) holds the prompts, the solutions and the tests; the hidden tests never reach students. From the
masters otter-assign makes the *student versions* (`notebooks/exercises/`, solutions and hidden tests
stripped; their public checks in `notebooks/exercises/tests/`) and the *autograders* (zip files, built on demand
under `runs/grade/`).

    python -m minidpo.grade notebooks/exercises/06_dpo_training.ipynb   # one student's copy: score per exercise
    python -m minidpo.grade --make-students                              # rebuild notebooks/exercises/ from the masters
    python -m minidpo.grade --folder submissions/ --csv grades.csv       # every *.ipynb in a folder, one CSV row each
    python -m minidpo.grade ... --time-limit 300                         # seconds per submission (default 600)

Grading executes the submission in a fresh kernel (otter's non-containerised `otter run`), so it runs the
student's code: grade inside a container or VM you trust (`otter grade` does it with Docker, same zip files).

A check must not be passable by calling minidpo's own implementation of the thing the student writes: the
tests run the student's function under `forbid(...)`, which watches Python calls and fails when one enters a
forbidden library function, however it was reached (an import alias, a lambda, a helper).
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
MASTERS = ROOT / "notebooks" / "solutions"
STUDENTS = ROOT / "notebooks" / "exercises"
CACHE = ROOT / "runs" / "grade"
PASS_MARK = 0.6
TIME_LIMIT_S = 600.0  # per submission: an honest one grades in well under a minute


# ----------------------------------------------------------------------------- the guard the tests use


@contextmanager
def forbid(*functions: Callable, reason: str = "write it yourself") -> Iterator[None]:
    """Fail if, inside the block, any call enters one of `functions` (compared by code object, so aliases and
    wrappers are caught). Raises AssertionError naming the function after the block."""
    codes = {getattr(f, "__code__", None): f"{f.__module__}.{f.__qualname__}" for f in functions}
    codes.pop(None, None)
    hits: list[str] = []

    def profiler(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            hits.append(codes[frame.f_code])

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        yield
    finally:
        sys.setprofile(previous)
    if hits:
        raise AssertionError(f"your code calls {hits[0]} from minidpo: {reason}")


def answer_digest(answer) -> str:
    """A short digest of a multiple-choice answer, so a hidden test can check it without printing it."""
    return hashlib.sha256(str(answer).strip().lower().encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------- masters -> student versions + autograders


def masters() -> list[Path]:
    return sorted(MASTERS.glob("[0-9][0-9]_*.ipynb"))


def _assign(master: Path, out: Path) -> None:
    """otter assign MASTER OUT (no PDFs; the tests are run by grading the solutions instead)."""
    cmd = [sys.executable, "-m", "otter", "assign", "--no-pdfs", "--no-run-tests", str(master), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"otter assign failed for {master.name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def build(master: Path) -> dict[str, Path]:
    """The student version, the solution version and the autograder zip of one master, cached by its content."""
    digest = hashlib.sha256(master.read_bytes()).hexdigest()[:16]
    out = CACHE / f"{master.stem}-{digest}"
    if not (out / "done").exists():
        shutil.rmtree(out, ignore_errors=True)
        _assign(master, out)
        (out / "done").write_text("")
    return {"student": out / "student" / master.name, "student_tests": out / "student" / "tests",
            "solution": out / "autograder" / master.name,
            "autograder": Path(glob.glob(str(out / "autograder" / "*.zip"))[0])}


def student_text(built_student: Path) -> str:
    """The student notebook otter assign made, with cell ids set from the cell positions (otter draws them at random,
    so two builds of one master would differ only in ids)."""
    nb = json.loads(Path(built_student).read_text())
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"{Path(built_student).stem}-{i}"
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def make_students(dest: Path = STUDENTS) -> list[Path]:
    """Write the student version of every master to `dest` (what the repository commits), with its public
    checks in `dest/tests/<assignment>/` (where the notebook's `otter.Notebook(..., tests_dir=...)` looks)."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for master in masters():
        built = build(master)
        target, tests = dest / master.name, dest / "tests" / master.stem
        target.write_text(student_text(built["student"]))
        shutil.rmtree(tests, ignore_errors=True)
        shutil.copytree(built["student_tests"], tests)
        written += [target, tests]
    return written


# ----------------------------------------------------------------------------- grading


def assignment_name(notebook: Path) -> str:
    """The otter assignment a notebook belongs to (its metadata), so a renamed submission still finds its master."""
    meta = json.loads(Path(notebook).read_text()).get("metadata", {}).get("otter", {})
    name = meta.get("assignment_name")
    if not name:
        raise ValueError(f"{notebook}: not an exercise notebook (no metadata.otter.assignment_name); "
                         f"grade a copy of a notebook from notebooks/exercises/")
    return name


def master_for(notebook: Path) -> Path:
    name = assignment_name(notebook)
    for master in masters():
        if master.stem == name:
            return master
    raise ValueError(f"{notebook}: no master notebooks/solutions/{name}.ipynb for assignment {name!r}")


def grade(notebook: Path, quiet: bool = True, debug: bool = False, time_limit_s: float | None = TIME_LIMIT_S) -> dict:
    """Execute `notebook` in a fresh kernel under its autograder; {exercise: (score, possible)} and the total.
    debug=True raises on the first cell that errors (otter's debug mode) instead of grading what ran.

    The grading runs in a child process (its own process group, so the kernel it starts goes with it) that is
    killed after `time_limit_s` seconds: a submission that never returns scores 0 with the error "timed out",
    and a folder's other submissions are still graded. `time_limit_s=None` grades in this process, unlimited."""
    notebook = Path(notebook).resolve()
    if time_limit_s is None:
        return _grade_here(notebook, quiet, debug)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "minidpo.grade", str(notebook), "--report-json", str(out), "--time-limit", "0",
               *(["--debug"] if debug else [])]
        child = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL if quiet else None,
                                 stderr=subprocess.PIPE, text=True)
        try:
            _, err = child.communicate(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return {"notebook": notebook.name, "assignment": "", "scores": {}, "messages": {}, "total": 0.0,
                    "possible": 0.0, "error": f"timed out after {time_limit_s:g} s: scored 0"}
        if not out.exists():
            raise RuntimeError(f"grading {notebook.name} failed (exit {child.returncode}):\n{err[-3000:]}")
        report = json.loads(out.read_text())
    if "not_gradable" in report:
        raise ValueError(report["not_gradable"])
    return {**report, "scores": {name: tuple(sp) for name, sp in report["scores"].items()}}


def _grade_here(notebook: Path, quiet: bool, debug: bool) -> dict:
    """`grade` in this process, without a time limit."""
    import otter.api

    zip_path = build(master_for(notebook))["autograder"]
    with tempfile.TemporaryDirectory() as tmp:
        # otter runs the submission under the name it had when assigned
        copy = Path(tmp) / f"{assignment_name(notebook)}.ipynb"
        shutil.copyfile(notebook, copy)
        results = otter.api.grade_submission(str(copy), str(zip_path), quiet=quiet, debug=debug)
    scores = {name: (float(r.score), float(r.possible)) for name, r in results.results.items()}
    messages = {name: [t.message for t in r.test_case_results if not t.passed and not t.test_case.hidden]
                for name, r in results.results.items()}
    total, possible = sum(s for s, _ in scores.values()), sum(p for _, p in scores.values())
    return {"notebook": notebook.name, "assignment": assignment_name(notebook), "scores": scores,
            "messages": messages, "total": total, "possible": possible}


def print_report(report: dict, pass_mark: float) -> bool:
    print(f"{report['notebook']} ({report['assignment']})" + (f": {report['error']}" if report.get("error") else ""))
    for name, (score, possible) in report["scores"].items():
        mark = "ok " if score == possible else "   "
        print(f"  {mark}{name:<24} {score:g} / {possible:g}")
        for message in report["messages"][name]:
            print("      " + message.strip().splitlines()[-1][:160])
    fraction = report["total"] / report["possible"] if report["possible"] else 0.0
    passed = fraction >= pass_mark
    print(f"  total {report['total']:g} / {report['possible']:g} ({fraction:.0%}); pass mark {pass_mark:.0%}: "
          f"{'passed' if passed else 'not passed'}")
    return passed


def grade_folder(folder: Path, csv_path: Path, debug: bool = False,
                 time_limit_s: float | None = TIME_LIMIT_S) -> list[dict]:
    """Grade every *.ipynb under `folder` (Jupyter's `.ipynb_checkpoints` copies skipped) into one CSV row each:
    file (its path relative to `folder`), assignment, one column per exercise, total; each submission under its own
    time limit, so one that hangs scores 0 and the others are still graded."""
    reports = []
    for nb in sorted(Path(folder).rglob("*.ipynb")):
        if ".ipynb_checkpoints" in nb.parts:  # Jupyter's autosave copies are not submissions
            continue
        name = nb.relative_to(folder).as_posix()  # per-student subfolders keep same-named files apart
        try:
            reports.append({**grade(nb, debug=debug, time_limit_s=time_limit_s), "notebook": name})
        except ValueError as e:  # not an exercise notebook: say so in the table rather than stop
            reports.append({"notebook": name, "assignment": "", "scores": {}, "total": 0.0, "possible": 0.0,
                            "error": str(e)})
    columns = sorted({q for r in reports for q in r["scores"]})
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "assignment", *columns, "total", "possible", "error"])
        for r in reports:
            w.writerow([r["notebook"], r["assignment"], *[r["scores"].get(q, ("", ""))[0] for q in columns],
                        r["total"], r["possible"], r.get("error", "")])
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidpo.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", help="a student's copy of an exercise notebook")
    parser.add_argument("--pass-mark", type=float, default=PASS_MARK, help="fraction of points to pass (default 0.6)")
    parser.add_argument("--make-students", action="store_true", help="rebuild notebooks/exercises/ from the masters")
    parser.add_argument("--folder", help="grade every *.ipynb in this folder")
    parser.add_argument("--csv", default="grades.csv", help="with --folder: where the table goes (default grades.csv)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S,
                        help=f"seconds per submission; past it, 0 points (default {TIME_LIMIT_S:g}; 0: no limit)")
    parser.add_argument("--debug", action="store_true", help="stop on the first cell that raises (otter's debug mode)")
    parser.add_argument("--report-json", help=argparse.SUPPRESS)  # the child process of `grade` writes its report here
    args = parser.parse_args(argv)
    limit = args.time_limit or None
    if args.make_students:
        for path in make_students():
            print("wrote", path.relative_to(ROOT))
        return 0
    if args.folder:
        reports = grade_folder(Path(args.folder), Path(args.csv), debug=args.debug, time_limit_s=limit)
        for r in reports:
            print(f"{r['notebook']}: {r['total']:g} / {r['possible']:g}"
                  + (f"  ({r['error']})" if r.get("error") else ""))
        print("wrote", args.csv)
        return 0
    if not args.notebook:
        parser.error("give a notebook, --folder or --make-students")
    if args.report_json:  # the child of `grade`: grade here, hand the report over as JSON
        try:
            report = _grade_here(Path(args.notebook).resolve(), quiet=True, debug=args.debug)
        except ValueError as e:  # not an exercise notebook: the parent raises it as such
            report = {"not_gradable": str(e)}
        Path(args.report_json).write_text(json.dumps(report))
        return 0
    report = grade(Path(args.notebook), debug=args.debug, time_limit_s=limit)
    return 0 if print_report(report, args.pass_mark) else 1


if __name__ == "__main__":
    sys.exit(main())
