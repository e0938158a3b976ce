"""Autograding of the exercise notebooks with otter-grader (https://otter-grader.readthedocs.io).

Every notebook 01-10 has an exercise notebook. Its *master* (`notebooks/solutions/NN_*.ipynb`, otter-assign format)
holds the prompts, the solutions and the tests; the hidden tests never reach students. From the masters otter-assign
makes the *student versions* (`notebooks/exercises/`, solutions and hidden tests stripped; their public checks in
`notebooks/exercises/tests/`) and the *autograders* (zip files, built on demand under `runs/grade/`).

    python -m minidpo.grade notebooks/exercises/06_dpo_training.ipynb   # one student's copy: score per exercise
    python -m minidpo.grade --make-students                              # rebuild notebooks/exercises/ from the masters
    python -m minidpo.grade --folder submissions/ --csv grades.csv       # every *.ipynb in a folder, one CSV row each
    python -m minidpo.grade ... --time-limit 300 --masters DIR  # seconds per submission (600); masters from DIR
    python -m minidpo.grade notebooks/solutions/06_dpo_training.ipynb    # a master: checks its key, full marks

Before anything runs, the code the student wrote is scanned (`minidpo.grade_scan`): a submission that could change
what grades it (otter, this module, the profiler, reflection, shell lines, patching an imported module) scores 0,
unrun, with each finding in the report and the CSV. Grading runs the student's code in a fresh kernel (otter's
`otter run`): grade inside a container or VM you trust (`otter grade` does it with Docker, same zip files).

A check must not be passable by calling minidpo's own implementation of the thing the student writes: the tests
run the student's function under `forbid(...)`, which watches Python calls and fails when one enters a forbidden
library function, however it was reached (an import alias, a lambda, a helper).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, Iterator

from .grade_build import (CACHE, MASTERS, ROOT, STUDENTS, assignment_name, build, build_all, is_master, make_students,
                          master_for, masters, student_text)
from .grade_scan import scan_submission

__all__ = ["forbid", "answer_digest", "grade", "grade_folder", "main", "CACHE", "MASTERS", "ROOT", "STUDENTS",
           "assignment_name", "build", "build_all", "is_master", "make_students", "master_for", "masters",
           "student_text"]
PASS_MARK = 0.6
TIME_LIMIT_S = 600.0  # per submission: an honest one grades in well under a minute


# ----------------------------------------------------------------------------- the guard the tests use


@contextmanager
def forbid(*functions: Callable, reason: str = "write it yourself") -> Iterator[None]:
    """Fail if, inside the block, any call enters one of `functions` (compared by code object, so aliases and
    wrappers are caught). Raises AssertionError naming the function after the block."""
    codes = {getattr(f, "__code__", None): f"{f.__module__}.{f.__qualname__}" for f in functions}
    codes.pop(None, None)
    hits: list[str] = []  # forbidden functions entered
    watchdogs = {sys.setprofile: "sys.setprofile", sys.settrace: "sys.settrace"}  # what turns the check off
    tampered: list[str] = []
    watching = [True]

    def profiler(frame, event, arg):
        if not watching[0]:
            return
        if event == "call" and frame.f_code in codes:
            hits.append(codes[frame.f_code])
        elif event == "c_call" and any(arg is f for f in watchdogs):
            tampered.append(next(name for f, name in watchdogs.items() if arg is f))

    previous, previous_threads = sys.getprofile(), threading.getprofile()
    sys.setprofile(profiler)
    threading.setprofile(profiler)  # threads started inside the block (a thread pool) are watched too
    try:
        yield
    finally:
        watching[0] = False
        if sys.getprofile() is not profiler:
            tampered.append("sys.setprofile")
        sys.setprofile(previous)
        threading.setprofile(previous_threads)
    if tampered:
        raise AssertionError(f"your code turns off the grader's check ({tampered[0]}): that scores 0")
    if hits:
        raise AssertionError(f"your code calls {hits[0]} from minidpo: {reason}")


def answer_digest(answer) -> str:
    """A short digest of a multiple-choice answer, so a hidden test can check it without printing it."""
    return hashlib.sha256(str(answer).strip().lower().encode()).hexdigest()[:12]


def grade(notebook: Path, quiet: bool = True, debug: bool = False, time_limit_s: float | None = TIME_LIMIT_S,
          masters_dir: Path | None = None) -> dict:
    """Execute `notebook` in a fresh kernel under its autograder; {exercise: (score, possible)} and the total.
    debug=True raises on the first cell that errors (otter's debug mode) instead of grading what ran. The master
    comes from `masters_dir` (default: the clone's); a master itself is graded through its solution version.

    First the submission's own code is scanned (`grade_scan`): code that could change what grades it scores 0,
    unrun. The grading runs in a child process (its own process group, so the kernel it starts goes with it)
    that is killed after `time_limit_s` seconds: a submission that never returns scores 0 with the error "timed
    out", and a folder's other submissions are still graded. `time_limit_s=None` grades in this process."""
    notebook = Path(notebook).resolve()
    if time_limit_s is None:
        return _grade_here(notebook, quiet, debug, masters_dir)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "minidpo.grade", str(notebook), "--report-json", str(out), "--time-limit", "0",
               *(["--debug"] if debug else []), *(["--masters", str(masters_dir)] if masters_dir else [])]
        child = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL if quiet else None,
                                 stderr=subprocess.PIPE, text=True)
        try:
            _, err = child.communicate(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return _zero(notebook.name, f"timed out after {time_limit_s:g} s: scored 0")
        if not out.exists():
            raise RuntimeError(f"grading {notebook.name} failed (exit {child.returncode}):\n{err[-3000:]}")
        report = json.loads(out.read_text())
    if "not_gradable" in report:
        raise ValueError(report["not_gradable"])
    return {**report, "scores": {name: tuple(sp) for name, sp in report["scores"].items()}}


def _zero(notebook: str, error: str, assignment: str = "", **extra) -> dict:  # timed out, refused, not gradable
    return {"notebook": notebook, "assignment": assignment, "scores": {}, "messages": {}, "total": 0.0,
            "possible": 0.0, "error": error, **extra}


def _submissions(folder: Path) -> list[Path]:
    """The notebooks under `folder` (or `folder` itself), Jupyter's `.ipynb_checkpoints` copies left out."""
    notebooks = [folder] if folder.is_file() else sorted(folder.rglob("*.ipynb"))
    return [nb for nb in notebooks if ".ipynb_checkpoints" not in nb.parts]


def _grade_here(notebook: Path, quiet: bool, debug: bool, masters_dir: Path | None = None) -> dict:
    """`grade` in this process, without a time limit."""
    master = master_for(notebook, masters_dir)
    if notebook == master and notebook.parent.resolve() != Path(masters_dir or MASTERS).resolve():
        raise ValueError(f"{notebook}: a master outside the masters folder is not graded (a submitted master would "
                         f"grade itself); put it in the folder given by --masters")
    built = build(master)
    submission = built["solution"] if notebook == master else notebook  # a master: check its key
    assignment = master.stem
    # written questions (otter's `manual: true`) have no tests, so otter leaves them out of its results and the totals
    # are the autograded points; the report names them, for the teacher to grade by hand
    raw = ["".join(c["source"]) for c in json.loads(master.read_text())["cells"] if c["cell_type"] == "raw"]
    manual = [s.split("name:")[1].split()[0] for s in raw if s.startswith("# BEGIN QUESTION") and "manual: true" in s]
    findings = scan_submission(submission, built["student"])
    if findings:  # code that could change what grades it: refused before it runs
        return _zero(notebook.name, "refused, scored 0: " + "; ".join(str(f) for f in findings[:3])
                     + (f"; and {len(findings) - 3} more" if len(findings) > 3 else ""), assignment,
                     flagged=[str(f) for f in findings], manual=manual)
    import otter.api  # after the scan: a refused submission does without otter's imports (seconds)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / f"{assignment}.ipynb"  # otter runs the submission under the name it had when assigned
        shutil.copyfile(submission, copy)
        results = otter.api.grade_submission(str(copy), str(built["autograder"]), quiet=quiet, debug=debug)
    scores = {name: (float(r.score), float(r.possible)) for name, r in results.results.items()}
    # a hidden check says only its failure message (its source line would show the hidden inputs)
    messages = {name: [f"hidden check: {t.test_case.failure_message or 'failed'}" if t.test_case.hidden
                       else t.message.strip() for t in r.test_case_results if not t.passed]
                for name, r in results.results.items()}
    total, possible = sum(s for s, _ in scores.values()), sum(p for _, p in scores.values())
    return {"notebook": notebook.name, "assignment": assignment, "scores": scores,
            "messages": messages, "total": total, "possible": possible, "manual": manual}


def print_report(report: dict, pass_mark: float) -> bool:
    print(f"{report['notebook']} ({report['assignment']})" + (f": {report['error']}" if report.get("error") else ""))
    for name, (score, possible) in report["scores"].items():
        mark = "ok " if score == possible else "   "
        print(f"  {mark}{name:<24} {score:g} / {possible:g}")
        for message in report["messages"][name]:
            print("      " + message.strip().splitlines()[-1][:160])
    if report.get("manual"):
        print("  graded by hand (written): " + ", ".join(report["manual"]))
    fraction = report["total"] / report["possible"] if report["possible"] else 0.0
    passed = fraction >= pass_mark
    print(f"  total {report['total']:g} / {report['possible']:g} ({fraction:.0%}); pass mark {pass_mark:.0%}: "
          f"{'passed' if passed else 'not passed'}")
    return passed


def grade_folder(folder: Path, csv_path: Path, debug: bool = False, time_limit_s: float | None = TIME_LIMIT_S,
                 masters_dir: Path | None = None, jobs: int = 1) -> list[dict]:
    """Grade every *.ipynb under `folder` (Jupyter's `.ipynb_checkpoints` copies skipped) into one CSV row each:
    file (its path relative to `folder`), assignment, one column per exercise, total; each submission under its own
    time limit, so one that hangs scores 0 and the others are still graded; `jobs` submissions at a time."""
    notebooks = _submissions(Path(folder))
    wanted = []  # each autograder built once (`jobs` at a time) before submissions are graded side by side
    for nb in notebooks:
        with suppress(Exception):  # no master, or one that fails to build: reported on the submission's row below
            wanted += [] if is_master(nb) else [master_for(nb, masters_dir)]
    build_all(wanted, jobs)
    limit = time_limit_s if time_limit_s is not None or jobs <= 1 else 1e9  # side by side: child processes only

    def one(nb: Path) -> dict:
        name = nb.relative_to(folder).as_posix()  # per-student subfolders keep same-named files apart
        try:
            if is_master(nb):
                raise ValueError("a master, not a submission (a submitted master would grade itself)")
            return {**grade(nb, debug=debug, time_limit_s=limit, masters_dir=masters_dir), "notebook": name}
        except Exception as e:  # noqa: BLE001 -- not gradable: say so in the table rather than stop the class
            return _zero(name, f"{type(e).__name__}: {e}"[:500])

    with ThreadPoolExecutor(max(1, jobs)) as pool:  # each grading is a child process: threads only wait
        reports = list(pool.map(one, notebooks))
    columns = sorted({q for r in reports for q in r["scores"]})
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "assignment", *columns, "total", "possible", "error"])
        for r in reports:
            w.writerow([r["notebook"], r["assignment"], *[r["scores"].get(q, ("", ""))[0] for q in columns],
                        r["total"], r["possible"], r.get("error", "")])
    return reports


def scan_folder(folder: Path, masters_dir: Path | None = None) -> int:
    """Print each submission under `folder` (or the one notebook `folder`) that the scan refuses, with its findings;
    1 if any, else 0. Runs no submission: for grades made elsewhere (Gradescope runs otter without this scan)."""
    flagged = 0
    for nb in _submissions(folder):
        name = nb.name if folder.is_file() else nb.relative_to(folder).as_posix()
        try:
            if is_master(nb):
                raise ValueError("a master, not a submission")
            findings = scan_submission(nb, build(master_for(nb, masters_dir))["student"])
        except Exception as e:  # noqa: BLE001 -- listed, and the others still scanned
            print(f"{name}: not scanned ({e})")
            continue
        flagged += bool(findings)
        for f in findings:
            print(f"{name}: {f}")
    print(f"{flagged} submission(s) refused by the scan")
    return 1 if flagged else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidpo.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", nargs="?", help="a student's copy of an exercise notebook")
    parser.add_argument("--pass-mark", type=float, default=PASS_MARK, help="fraction of points to pass (default 0.6)")
    parser.add_argument("--make-students", action="store_true", help="rebuild notebooks/exercises/ from the masters")
    parser.add_argument("--folder", help="grade every *.ipynb in this folder")
    parser.add_argument("--csv", default="grades.csv", help="with --folder: where the table goes (default grades.csv)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S,
                        help=f"seconds per submission; past it, 0 points (default {TIME_LIMIT_S:g}; 0: no limit)")
    parser.add_argument("--jobs", type=int, default=1, help="with --folder: submissions graded at a time (default 1)")
    parser.add_argument("--masters", help="the folder of master notebooks (default: the clone's notebooks/solutions/)")
    parser.add_argument("--scan-only", action="store_true",
                        help="with --folder: list the submissions the scan refuses, run nothing (a Gradescope export)")
    parser.add_argument("--debug", action="store_true", help="stop on the first cell that raises (otter's debug mode)")
    parser.add_argument("--report-json", help=argparse.SUPPRESS)  # the child process of `grade` writes its report here
    args = parser.parse_args(argv)
    limit, masters_dir = args.time_limit or None, args.masters and Path(args.masters).resolve()
    if args.make_students:
        for path in make_students(directory=masters_dir):
            print("wrote", path.relative_to(ROOT))
        return 0
    if args.scan_only:
        if not (args.folder or args.notebook):
            parser.error("--scan-only needs a notebook or --folder")
        return scan_folder(Path(args.folder or args.notebook), masters_dir)
    if args.folder:
        reports = grade_folder(Path(args.folder), Path(args.csv), debug=args.debug, time_limit_s=limit,
                               masters_dir=masters_dir, jobs=args.jobs)
        for r in reports:
            print(f"{r['notebook']}: {r['total']:g} / {r['possible']:g}"
                  + (f"  ({r['error']})" if r.get("error") else ""))
        print("wrote", args.csv)
        if errors := sum(bool(r.get("error")) for r in reports):  # the table is complete; these rows need a look
            print(f"{errors} of {len(reports)} submissions scored 0 with an error (timed out, refused or not "
                  f"gradable): see the error column of {args.csv}", file=sys.stderr)
        return 1 if errors else 0
    if not args.notebook:
        parser.error("give a notebook, --folder or --make-students")
    if args.report_json:  # the child of `grade`: grade here, hand the report over as JSON
        # jsonschema's optional IRI checker compiles a grammar on import (1.2 s of each grading); notebooks need none
        sys.modules.setdefault("rfc3987_syntax", None)
        try:
            report = _grade_here(Path(args.notebook).resolve(), quiet=True, debug=args.debug, masters_dir=masters_dir)
        except ValueError as e:  # not an exercise notebook: the parent raises it as such
            report = {"not_gradable": str(e)}
        Path(args.report_json).write_text(json.dumps(report))
        return 0
    try:
        report = grade(Path(args.notebook), debug=args.debug, time_limit_s=limit, masters_dir=masters_dir)
    except ValueError as e:  # not an exercise notebook, or no master for it
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if print_report(report, args.pass_mark) else 1


if __name__ == "__main__":
    sys.exit(main())
