"""Exercises that ask for reasoning and do not leak their answers (issue 31, item 6).

- **Choice items**: in every multiple-choice or prediction item of the masters, the right option is not the
  giveaway longest one (the review found it longest in about 12 of 16 items).
- **Written questions**: every master has at least one question graded by hand (otter's `manual: true`), with a
  model answer that stays in the master, a rubric in TEACHING.md, and points outside the autograded total.
- **Rewritten exercises** (01 q2, 01 q4, 03 q4): their answers are not printed by their main notebook.

The masters are read as files (no otter kernel) except in the last test, which grades one solution version.
"""

import json
import math
import re
from pathlib import Path

import pytest

from minidpo import grade

MASTERS = grade.masters()
TEACHING = grade.ROOT / "TEACHING.md"
ANSWER = re.compile(r'^(\w+) = "([a-e])"  # SOLUTION$', re.M)  # a choice item's key: `x_answer = "b"  # SOLUTION`
MARKER = re.compile(r"(?:(?<=^)|(?<=[\s;,:]))\(([a-e])\)[ \t]+", re.M)  # "- (a) ..." or "... (a) ...; (b) ..."


def questions(master: Path) -> list[dict]:
    """Each question of a master: its config, prompt (the markdown before its solution), solution cells' text,
    the markdown solution cells, and its number of test cells."""
    out, where = [], None
    for cell in json.loads(master.read_text())["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "raw":
            if src.startswith("# BEGIN QUESTION"):
                out.append({"config": src, "name": src.split("name:")[1].split()[0], "prompt": "", "solution": "",
                            "solution_md": [], "tests": 0})
                where = "prompt"
            elif src.startswith(("# BEGIN SOLUTION", "# BEGIN TESTS")):
                where = src.split()[2].lower()
            elif src.startswith(("# END SOLUTION", "# END TESTS", "# END QUESTION")):
                where = None if src.startswith("# END QUESTION") else "after"
            continue
        if where == "prompt" and cell["cell_type"] == "markdown":
            out[-1]["prompt"] += src + "\n\n"
        elif where == "solution":
            out[-1]["solution"] += src + "\n"
            if cell["cell_type"] == "markdown":
                out[-1]["solution_md"].append(src)
        elif where == "tests":
            out[-1]["tests"] += 1
    return out


def option_groups(prompt: str) -> list[dict[str, str]]:
    """The option lists of a prompt, each {letter: text}, in order. An option runs to the next option's marker; the
    last one of a list to the end of its list item (`- (d) ...`) or, written inline, to the end of its sentence."""
    marks = list(MARKER.finditer(prompt))
    groups: list[dict[str, str]] = []
    for i, m in enumerate(marks):
        letter = m.group(1)
        if letter == "a":
            groups.append({})
        else:
            assert groups and chr(ord(letter) - 1) in groups[-1], f"option ({letter}) out of order: {prompt[:80]!r}"
        following = marks[i + 1] if i + 1 < len(marks) and marks[i + 1].group(1) != "a" else None
        if following is not None:
            text = prompt[m.end():following.start()]
        else:
            rest = prompt[m.end():]
            listed = prompt[prompt.rfind("\n", 0, m.start()) + 1:m.start()].strip() == "-"
            end = re.search(r"\n\s*\n|\n\s*- " if listed else r"\.(?:\s|$)|\n\s*\n", rest)
            text = rest[:end.start() if end else len(rest)]
        groups[-1][letter] = re.sub(r"\n\s*-\s*$", "", text.rstrip()).strip().rstrip(";,.").strip()
    return groups


def shown_length(text: str) -> int:
    """About how many characters a student sees once markdown and LaTeX render: `$`, braces, `*`, backticks and
    sub/superscript marks dropped, layout commands (`\\text`, `\\big`, ...) dropped, other commands one glyph."""
    text = re.sub(r"\\(?:text|mathrm|mathbb|operatorname|big|Big|bigg|left|right)\b", "", text)
    text = re.sub(r"\\[,;! ]", " ", text)
    text = re.sub(r"\\[A-Za-z]+", "x", text)
    return len(" ".join(re.sub(r"[{}$*`_^]", "", text).split()))


def choice_items() -> list[tuple[str, str, str, dict[str, str]]]:
    """(master, question, right letter, {letter: option}) for every single-letter answer of every master; a
    question with two answers over one option list (02 q4, 09 q4) is two items, one per answer."""
    items = []
    for master in MASTERS:
        for q in questions(master):
            answers = ANSWER.findall(q["solution"])
            if not answers:
                continue
            groups = option_groups(q["prompt"])
            groups = groups * len(answers) if len(groups) == 1 else groups
            assert len(groups) == len(answers), f"{master.stem} {q['name']}: options not found for {answers}"
            for (variable, letter), options in zip(answers, groups):
                assert letter in options and len(options) >= 3, (master.stem, q["name"], variable, options)
                items.append((master.stem, q["name"], letter, options))
    return items


def test_the_right_option_is_not_given_away_by_its_length():
    """The right option may be the strictly longest in at most a quarter of the choice items, and is never more
    than 1.3 times as long as the longest wrong one. Mutations caught: a right option written out with every
    qualification while the distractors stay one-liners (the review's 12 of 16; e.g. putting back 05 q3's
    four-line option (c), 4.3 times the longest distractor), and a choice item in a format the parser cannot read
    (its options not found), which would escape the check."""
    items = choice_items()
    assert len(items) >= 15, f"only {len(items)} choice items parsed"
    longest, too_long = [], []
    for master, name, letter, options in items:
        right = shown_length(options[letter])
        wrong = max(shown_length(text) for other, text in options.items() if other != letter)
        if right > wrong:
            longest.append(f"{master} {name}")
        if right > 1.3 * wrong:
            too_long.append(f"{master} {name} ({letter}): {right} characters against {wrong}")
    assert not too_long, too_long
    assert len(longest) <= len(items) / 4, f"right option longest in {len(longest)} of {len(items)}: {longest}"


def test_the_parser_reads_both_option_formats():
    listed = "Which?\n\n- (a) one thing;\n- (b) another,\n  longer thing;\n- (c) a third. It goes on.\n\nSet `x`."
    assert option_groups(listed) == [{"a": "one thing", "b": "another,\n  longer thing",
                                      "c": "a third. It goes on"}]
    inline = "Pick (a) $w/4$; (b) about $w/2$, (c) none. Set `y` to it."
    assert option_groups(inline) == [{"a": "$w/4$", "b": "about $w/2$", "c": "none"}]
    assert shown_length(r"$\pi_{\text{ref}}$ is *fixed*") == len("xref is fixed")


def written_questions(master: Path) -> list[dict]:
    return [q for q in questions(master) if "manual: true" in q["config"]]


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_every_master_has_a_written_question_graded_by_hand(master):
    """Each master has a question for otter to leave to the teacher (`manual: true`, points > 0, no tests, a
    markdown model answer), the student version carries its prompt and an answer cell but not the model answer,
    and the first cell's handing-in paragraph says who reads it. Mutations caught: a master without one, a
    written question given test cells (otter would autograde it), a model answer that reaches students."""
    written = written_questions(master)
    assert written, f"{master.stem}: no written question (manual: true)"
    student = "\n".join("".join(c["source"]) for c in json.loads((grade.STUDENTS / master.name).read_text())["cells"])
    for q in written:
        points = re.search(r"^points:\s*(\d+(?:\.\d+)?)\s*$", q["config"], re.M)
        assert points and float(points.group(1)) > 0, f"{master.stem} {q['name']}: give it points"
        assert q["tests"] == 0, f"{master.stem} {q['name']}: a written question has no tests"
        assert q["solution_md"] and all(s.startswith("*Model answer.*") for s in q["solution_md"]), q["name"]
        assert "(written" in q["prompt"], f"{master.stem} {q['name']}: say it is written"
        model_answer = q["solution_md"][0].splitlines()[0]
        assert model_answer not in student, f"{master.stem} {q['name']}: the model answer reached students"
        assert q["prompt"].split("\n")[0] in student, f"{master.stem}: rebuild the student versions"
    assert "_Type your answer here, replacing this text._" in student
    first = next(c for c in json.loads(master.read_text())["cells"] if c["cell_type"] == "markdown")
    assert "written questions are read by your teacher" in "".join(first["source"]), master.stem


def test_the_rubric_covers_every_written_question():
    """TEACHING.md has a rubric section right before the students' section, and every written question has its
    entry there: what a full answer contains, partial credit, common wrong answers. Mutation caught: a written
    question added to a master without a rubric."""
    text = TEACHING.read_text()
    assert "\n## Written questions: rubric\n" in text
    section = text.split("\n## Written questions: rubric\n")[1]
    assert section.split("\n## ")[1].startswith("For students"), "the rubric goes right before '## For students'"
    section = section.split("\n## ")[0]
    entries = re.split(r"\n(?=\*\*\d\d [a-z0-9_]+\*\*)", section)
    for master in MASTERS:
        for q in written_questions(master):
            entry = next((e for e in entries if e.startswith(f"**{master.stem[:2]} {q['name']}**")), None)
            assert entry, f"TEACHING.md: no rubric entry **{master.stem[:2]} {q['name']}**"
            for part in ("Full marks", "Partial", "Common wrong answers"):
                assert part in " ".join(entry.split()), f"{q['name']}: the rubric says nothing under '{part}'"
    assert "written question" in text.split("**What is graded.**")[1].split("\n- **")[0]


def main_notebook_text(stem: str) -> str:
    """Everything a student reads in a main notebook: markdown, code and committed outputs."""
    parts = []
    for cell in json.loads((grade.ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]:
        parts.append("".join(cell["source"]))
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_the_rewritten_exercises_are_not_answered_by_their_main_notebook():
    """01 q2 (scaling the rewards), 03 q4 (IPO's margins on a table of three responses): their answers, computed
    here independently, appear in no markdown, code or output of the main notebook at 3 or 4 decimals, and 01 q4's
    question (two groups never compared) is not one the main notebook discusses. Mutation caught: a rewrite whose
    number the main notebook prints (as cell 6 of notebook 01 answered the old reward-shift question)."""
    sigmoid = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    answers = {"01_bradley_terry": [sigmoid(3.0) - sigmoid(1.0)], "03_dpo_objective": [2 / 3, 4 / 3]}
    for stem, values in answers.items():
        text = main_notebook_text(stem)
        for value in values:
            for digits in (3, 4):
                assert f"{value:.{digits}f}" not in text, f"{stem} prints {value:.{digits}f}"
    assert "never compared" not in main_notebook_text("01_bradley_terry")
    names = {q["name"] for q in questions(grade.MASTERS / "01_bradley_terry.ipynb")}
    assert {"q2_reward_scale", "q4_predict_two_groups"} <= names


def test_the_grader_totals_the_autograded_points_and_names_the_written_questions(class_grades):
    """otter 7 writes no test file for a `manual: true` question, so it is not in otter's results: the grader's
    total is the autograded points, and the report lists the written questions for the teacher (read from the class
    folder's graded solutions, `conftest.class_grades`). Mutations caught: a written question counted into the total
    (the solution would then miss full marks), or a report that does not say which questions are left to the
    teacher."""
    reports = {r["notebook"]: r for r in class_grades[0]}
    report = reports["solution_01_bradley_terry.ipynb"]
    assert report["manual"] == [q["name"] for q in written_questions(grade.MASTERS / "01_bradley_terry.ipynb")] \
        == ["q5_written_noise_scale"]
    assert "q5_written_noise_scale" not in report["scores"]
    assert report["total"] == report["possible"] == 8
    for master in grade.masters():  # every notebook: its written questions named, none of them scored
        solution = reports[f"solution_{master.stem}.ipynb"]
        assert solution["manual"] == [q["name"] for q in written_questions(master)], master.stem
        assert not set(solution["manual"]) & set(solution["scores"]) and solution["total"] == solution["possible"]
