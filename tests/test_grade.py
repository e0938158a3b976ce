"""The exercise notebooks and their grader: solutions get full marks, blank student versions zero (and run
without error), the committed student versions are what otter-assign makes from the masters, and calling
minidpo's own implementation does not pass a check."""

import json
import re
import shutil

import pytest
import torch

from minidpo import grade, preference

from conftest import HANG_LIMIT_S  # the class folder's time limit (the folder is graded in conftest.class_grades)

MAIN_NOTEBOOKS = sorted(p.stem for p in (grade.ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_has_a_master_with_at_least_three_exercises():
    masters = {m.stem: m for m in grade.masters()}
    assert sorted(masters) == MAIN_NOTEBOOKS
    for name, path in masters.items():
        cells = json.loads(path.read_text())["cells"]
        questions = [c for c in cells if c["cell_type"] == "raw" and "".join(c["source"]).startswith("# BEGIN QUESTION")]
        assert len(questions) >= 3, f"{name}: {len(questions)} exercises"


def test_forbid_catches_aliases_and_wrappers():
    alias = preference.bradley_terry_prob
    wrapped = lambda a, b: alias(a, b)  # noqa: E731
    with pytest.raises(AssertionError, match="bradley_terry_prob"):
        with grade.forbid(preference.bradley_terry_prob):
            wrapped(torch.tensor(1.0), torch.tensor(0.0))
    with grade.forbid(preference.bradley_terry_prob):  # writing it yourself is fine
        torch.sigmoid(torch.tensor(1.0))


def test_answer_digest_ignores_case_and_spaces():
    assert grade.answer_digest(" B ") == grade.answer_digest("b") != grade.answer_digest("c")


def test_committed_student_versions_are_what_otter_assign_makes(built):
    for name, paths in built.items():
        committed = grade.STUDENTS / f"{name}.ipynb"
        assert committed.exists(), f"run python -m minidpo.grade --make-students ({name} missing)"
        assert committed.read_text() == grade.student_text(paths["student"]), f"{name}: rebuild with --make-students"
        assert "# BEGIN SOLUTION" not in committed.read_text()
        tests = grade.STUDENTS / "tests" / name
        built_tests = {p.name: p.read_text() for p in paths["student_tests"].glob("*.py")}
        assert built_tests and {p.name: p.read_text() for p in tests.glob("*.py")} == built_tests, name
        assert not any("hidden=True" in t for t in built_tests.values()), f"{name}: a hidden test reached students"


def test_solutions_full_marks_blanks_zero_in_one_csv(built, class_grades):
    reports, rows, _ = class_grades
    assert len(rows) == len(reports) == 2 * len(built) + 2  # + the notes and the hung copy; not the checkpoint
    for row in rows:
        if row["file"] == "notes.ipynb":
            assert "not an exercise notebook" in row["error"]
            continue
        if row["file"] == "ana/hangs.ipynb":
            continue  # the next test's
        assert not row["error"] and float(row["possible"]) > 0
        if row["file"].startswith("solution_"):
            assert float(row["total"]) == float(row["possible"]), row
        else:
            assert float(row["total"]) == 0.0, row


def test_calling_minidpo_does_not_pass_and_the_cli_exit_code(built, class_grades, tmp_path, capsys, monkeypatch):
    """The cheat is graded once; the command line's pass mark and exit code are then checked on that report and on
    the class folder's graded solution (mutation caught: an exit code that ignores `--pass-mark` or the score). The
    command line's own grading runs end to end in the tests of the folder, the masters and the installed package."""
    nb = json.loads(built["01_bradley_terry"]["solution"].read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and "def my_bradley_terry_prob" in src:
            cell["source"] = ["from minidpo.preference import bradley_terry_prob as bt\n",
                              "def my_bradley_terry_prob(r_a, r_b):\n", "    return bt(r_a, r_b)\n"]
    cheat = tmp_path / "cheat.ipynb"
    cheat.write_text(json.dumps(nb))
    report = grade.grade(cheat)
    score, possible = report["scores"]["q1_bradley_terry_prob"]
    # every check (public and hidden) sees the call into minidpo, and the report says so to the student
    messages = report["messages"]["q1_bradley_terry_prob"]
    assert score == 0 < possible and any(m.startswith("hidden check: ") for m in messages)
    assert any("bradley_terry_prob from minidpo" in m for m in messages)
    assert report["total"] == report["possible"] - possible + score  # the other exercises are untouched
    solution = next(r for r in class_grades[0] if r["notebook"] == "solution_01_bradley_terry.ipynb")
    graded = {cheat: report, built["01_bradley_terry"]["solution"]: solution}
    monkeypatch.setattr(grade, "grade", lambda notebook, **_: graded[notebook])
    fraction = report["total"] / report["possible"]
    assert grade.main([str(cheat), "--pass-mark", "1.0"]) == 1 and "not passed" in capsys.readouterr().out
    assert grade.main([str(cheat), "--pass-mark", str(fraction)]) == 0  # the pass mark is what decides
    capsys.readouterr()
    assert grade.main([str(built["01_bradley_terry"]["solution"]), "--pass-mark", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "passed" in out and "not passed" not in out


def test_every_notebook_points_to_its_exercises():
    for stem in MAIN_NOTEBOOKS:
        cells = json.loads((grade.ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
        pointer = [c for c in cells if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## Exercises")]
        assert len(pointer) == 1 and f"exercises/{stem}.ipynb" in "".join(pointer[0]["source"]), stem
        master = json.loads((grade.MASTERS / f"{stem}.ipynb").read_text())["cells"]
        names = [re.search(r"name:\s*(\S+)", "".join(c["source"])).group(1) for c in master
                 if c["cell_type"] == "raw" and "".join(c["source"]).startswith("# BEGIN QUESTION")]
        listed = "".join(pointer[0]["source"])  # the list names every exercise of the master (a renamed one, too)
        for name in names:
            label = re.sub(r"^q\d+_(written_)?", "", name).replace("_", " ")
            assert f"**: {label}\n".lower() in (listed + "\n").lower().replace("-", " "), (stem, name)


def test_a_submission_that_never_returns_times_out_and_the_folder_goes_on(class_grades):
    """Catches: a hung submission blocking the grader (no time limit, or a limit that leaves otter's kernel
    running), one student's time-out stopping a class's folder, submissions in per-student folders named by bare
    file name (indistinguishable), and Jupyter's checkpoint copies graded as submissions. The solutions beside it
    are graded in the same child-process path, so the limit cannot be what makes them score."""
    _, rows, folder = class_grades
    rows = {r["file"]: r for r in rows}
    assert "hangs.ipynb" not in rows and not any("checkpoint" in name for name in rows)  # by path; autosaves skipped
    hung = rows["ana/hangs.ipynb"]
    assert hung["error"].startswith(f"timed out after {HANG_LIMIT_S} s") and float(hung["total"]) == 0
    solution = rows["solution_01_bradley_terry.ipynb"]  # the same notebook without the sleep
    assert not solution["error"] and float(solution["total"]) == float(solution["possible"]) > 0
    assert grade.main([str(folder / "ana" / "hangs.ipynb"), "--time-limit", "5"]) == 1  # the CLI's flag


def test_folder_grading_exits_1_when_any_row_has_an_error(tmp_path, monkeypatch, capsys):
    """The CLI's decision on planted reports (no grading run). Mutation caught: `--folder` exiting 0 while a
    submission timed out (a class's script would never notice), or exiting 1 on a clean folder."""
    clean = {"notebook": "a.ipynb", "total": 3.0, "possible": 3.0, "error": ""}
    hung = {"notebook": "b.ipynb", "total": 0.0, "possible": 0.0, "error": "timed out after 5 s"}
    for reports, code in (([clean], 0), ([clean, hung], 1)):
        monkeypatch.setattr(grade, "grade_folder", lambda *a, reports=reports, **k: reports)
        assert grade.main(["--folder", str(tmp_path), "--csv", str(tmp_path / "g.csv")]) == code
    assert "1 of 2 submissions scored 0 with an error" in capsys.readouterr().err


def test_masters_come_from_any_folder_and_a_master_grades_through_its_key(built, tmp_path, capsys):
    """A teacher's private copy of the masters (`--masters DIR`) grades a student's copy, a master given directly
    is graded through its solution version (full marks: the key checks out), and a student's copy with no master
    in the folder is a clear error naming the assignment. Catches a grader tied to the clone's masters folder."""
    private = tmp_path / "private"
    private.mkdir()
    shutil.copy(grade.MASTERS / "02_kl_constrained_optimum.ipynb", private)
    key = grade.grade(private / "02_kl_constrained_optimum.ipynb", masters_dir=private)
    assert key["assignment"] == "02_kl_constrained_optimum" and key["total"] == key["possible"] > 0
    student = tmp_path / "bob.ipynb"
    shutil.copy(built["02_kl_constrained_optimum"]["solution"], student)
    assert grade.grade(student, masters_dir=private)["total"] == key["possible"]
    with pytest.raises(ValueError, match="outside the masters folder"):  # a submitted master grades nothing
        grade.grade(private / "02_kl_constrained_optimum.ipynb", time_limit_s=None)  # (no child needed to raise)
    with pytest.raises(ValueError, match="no master 01_bradley_terry.ipynb"):
        grade.grade(grade.STUDENTS / "01_bradley_terry.ipynb", masters_dir=private, time_limit_s=None)
    assert grade.main([str(grade.STUDENTS / "01_bradley_terry.ipynb"), "--masters", str(private),
                       "--time-limit", "0"]) == 2
    assert "no master 01_bradley_terry.ipynb" in capsys.readouterr().err
