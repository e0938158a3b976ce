"""The README's numbers come from the results files (`minidpo.experiments.readme`): every cited value is what its
citation gives, the headline's results section and the frontier's and family's "What came out" paragraphs type no
number of their own, and the renderer rewrites a stale value and verdict word on planted results."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from minidpo.experiments.readme import RES, VERDICT, readme_value, render, update_readme
from test_prose import README_RESULT_PASSAGES, readme_result_passages

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
NUMBER = re.compile(r"(?<![\w.])[\u2212+-]?\d+(?:\.\d+)?(?:e-?\d+)?%?")


def test_every_cited_value_in_the_readme_is_the_results_value():
    text = README.read_text()
    assert len(RES.findall(text)) >= 100  # the table, comparisons and outcome paragraphs cite their numbers
    cache: dict = {}
    stale = [f"res{{{m['key']}}}: README {m['value']!r}, results {readme_value(m['key'], ROOT / 'results', cache)!r}"
             for m in RES.finditer(text) if m["value"] != readme_value(m["key"], ROOT / "results", cache)]
    assert not stale, "run `python -m minidpo report` to rewrite them:\n" + "\n".join(stale)
    assert render(text, ROOT / "results") == text  # also: every citation is closed (render checks)


ALLOWED = re.compile(r"\b95% interval|\b80% power|\b[Nn]otebook \d+|`[^`]*`|results/\S+|figures/\S+")

HEADLINE = "## Results of the headline run"
# Names with digits in the headline section: read as words, not numbers.
HEADLINE_NAMES = ["SmolLM2-135M-Instruct", "AVX-512"]
# The numbers the headline section types because no results file holds them, each allowed only in the exact phrase
# written here (a phrase no longer in the section fails `test_every_typed_phrase_allowed_in_the_headline_is_used`).
# Prefer a citation to a line here.
HEADLINE_TYPED = {
    "2-core AMD EPYC": "the machine the runs used; the results record torch's threads, not the CPU's cores",
    "2026-12-05": "the date of the fresh-clone rerun; no results file records dates",
    "75-minute budget": "the profile's compute budget, a target set before the run, not a result",
    "60-minute aim": "the same, the time the profile aims at",
    "32 of the 1,536 test replies": "counted from the committed and the rerun's samples files (no results JSON "
                                    "stores the count): `test_the_typed_rerun_counts_are_the_samples_files`",
    "(19 of them": "the same count, the base model's replies among them",
    "at most 3 per sample set": "the same count, the most per sample set of a trained arm",
    "(2 of ": "the rerun's lexicon cut in replies (its dropped markers' rate times the replies cited beside it): "
              "`test_the_typed_rerun_counts_are_the_samples_files`",
    "1-2-grams": "the lexicons' n-gram lengths, a constant of the code (`minidpo.judges._ngrams`), not a result",
    "all 8 checks": "the planted edits times the instruments reading each, both cited beside it; no results file "
                    "stores the product",
}


def typed_numbers(passage: str, names: list[str], phrases: tuple[str, ...] = ()) -> list[str]:
    """The numbers of `passage` that are typed: not in a citation or verdict marker, not in one of `names` (the
    family's arm names, e.g. "Plackett-Luce DPO (K=4)"), not in one of the exact `phrases` (`HEADLINE_TYPED`), not
    an `ALLOWED` phrase (the plan's levels, notebook numbers, code and paths)."""
    passage = VERDICT.sub("", RES.sub("", passage))
    for name in sorted([*names, *phrases], key=len, reverse=True):
        passage = passage.replace(name, "")
    return NUMBER.findall(ALLOWED.sub("", passage))


OUTCOMES = [h for h, start in README_RESULT_PASSAGES.items() if start]  # the "What came out" paragraphs


@pytest.mark.parametrize("heading", OUTCOMES)
def test_the_outcome_paragraphs_type_no_number(heading):
    """Every number of a paragraph that reports a frontier or family run is a citation."""
    arms = list(json.loads((ROOT / "results" / "family_cpu.json").read_text())["arms"])
    typed = typed_numbers(readme_result_passages(README.read_text())[heading], arms)
    assert not typed, f"typed numbers in the README's {heading!r} outcome (cite them as res{{...}}): {typed}"


def test_the_headline_results_type_no_number():
    """Every number of the headline run's results section (setup, timing, reproduction, reference, selection,
    instruments, table, comparisons) is a citation, but the `HEADLINE_TYPED` phrases."""
    typed = typed_numbers(readme_result_passages(README.read_text())[HEADLINE], HEADLINE_NAMES, tuple(HEADLINE_TYPED))
    assert not typed, f"typed numbers in the README's {HEADLINE!r} (cite them as res{{...}}): {typed}"


def test_every_typed_phrase_allowed_in_the_headline_is_used():
    section = readme_result_passages(README.read_text())[HEADLINE]
    unused = [phrase for phrase in [*HEADLINE_TYPED, *HEADLINE_NAMES] if phrase not in section]
    assert not unused, f"allowed phrases the headline section no longer writes (remove them): {unused}"


def _replies(path: Path) -> dict:
    return {(r["prompt_id"], r["arm"], r["seed"], r["sample_set"]): r["reply"]
            for r in map(json.loads, path.read_text().splitlines())}


def test_the_typed_rerun_counts_are_the_samples_files():
    """The fresh-clone paragraph types the replies that came out otherwise and the lexicon cut (`HEADLINE_TYPED`):
    they are what the committed and the rerun's samples and results files give."""
    committed = _replies(ROOT / "results" / "samples_cpu.jsonl")
    rerun = _replies(ROOT / "results" / "reruns" / "avx512" / "samples_cpu.jsonl")
    assert committed.keys() == rerun.keys()
    moved = Counter(key[1:] for key in committed if committed[key] != rerun[key])  # (arm, seed, sample set) -> count
    base = sum(n for (arm, *_), n in moved.items() if arm == "base")
    most_trained = max(n for (arm, *_), n in moved.items() if arm != "base")
    control = json.loads((ROOT / "results" / "reruns" / "avx512" / "instruction_cpu.json").read_text())[
        "lexicons"]["rude"]["base_model_control"]
    cut = min(control["dropped"].values()) * control["replies"]
    section = readme_result_passages(README.read_text())[HEADLINE]
    assert f"{sum(moved.values())} of the {len(committed):,} test replies" in section
    assert f"({base} of them" in section and f"at most {most_trained} per sample set" in section
    assert abs(cut - round(cut)) < 1e-9 and f"({round(cut)} of " in section


def test_the_typed_number_guard_is_not_vacuous():
    """Planted: numbers inside a citation, a verdict marker, an arm name and the allowed phrases beside typed ones;
    only the typed ones come back. Mutations caught: a guard that blanks everything, a number pattern that misses
    decimals, signs, exponents or percentages, an allowed phrase or arm name that leaks its number."""
    planted = ("**What came out** <!-- res{f:a|.2f} -->0.73<!-- /res --> and <!-- verdict{f:b} -->**no clear "
               "difference**; Arm (K=4) at 95% interval with 80% power, notebook 08, `x=3`; reward 0.294 [0.234, 0.352] "
               "at KL 2.00, \u22120.012, 1e-05, 14%")
    assert typed_numbers(planted, ["Arm (K=4)"]) == ["0.294", "0.234", "0.352", "2.00", "\u22120.012", "1e-05", "14%"]
    # an allowed phrase blanks only itself: the same number elsewhere is still typed; "Notebook" at a sentence start
    headline = "all 8 checks, 8 edits; the 75-minute budget, 75 min. Notebook 07 prints them"
    assert typed_numbers(headline, [], ("all 8 checks", "75-minute budget")) == ["8", "75"]


def test_a_citation_without_its_close_is_an_error_not_a_swallowed_paragraph(tmp_path):
    """Mutation caught: a value pattern that runs across prose to the next citation's close (one citation then
    replaces everything between)."""
    text = "<!-- res{exp_cpu:a:x|.2f} -->1.0 and some prose <!-- res{exp_cpu:a:x|.2f} -->2.0<!-- /res -->"
    with pytest.raises(ValueError, match="without its"):
        render(text, tmp_path)


@pytest.fixture
def planted(tmp_path):
    (tmp_path / "exp_cpu.json").write_text(json.dumps({
        "a": {"x": -0.1234, "lr": 1e-05, "seeds": [0, 1, 2], "ci": [0.1, 0.3], "v": "no clear difference"},
        "c": {"metric": "m", "a": "A", "b": "B", "null": 0.0, "verdict": "higher", "rule": "r", "text": "t",
              "interval": {"estimate": 0.2, "low": 0.1, "high": 0.3, "method": "bootstrap", "n": 10}}}))
    return tmp_path


def test_render_rewrites_stale_values_and_verdict_words(planted):
    """Mutations caught: a stale value left as written, LaTeX's minus or \\times in the README, a verdict word not
    recomputed from its interval, the stars of a bold word lost."""
    text = ("x <!-- res{exp_cpu:a:x|.3f} -->0.5<!-- /res -->, lr <!-- res{exp_cpu:a:lr|sci} -->3e-05<!-- /res -->, "
            "seeds <!-- res{exp_cpu:a:seeds|list} --><!-- /res -->; <!-- verdict{exp_cpu:c} -->**lower**, "
            "<!-- verdict{exp_cpu:a:v} -->mixed")
    assert render(text, planted) == (
        "x <!-- res{exp_cpu:a:x|.3f} -->\u22120.123<!-- /res -->, lr <!-- res{exp_cpu:a:lr|sci} -->1e-05<!-- /res -->, "
        "seeds <!-- res{exp_cpu:a:seeds|list} -->0, 1, 2<!-- /res -->; <!-- verdict{exp_cpu:c} -->**higher**, "
        "<!-- verdict{exp_cpu:a:v} -->no clear difference")


def test_signed_percentages_print_a_minus_sign_or_a_plus(planted):
    """`+pct` (a difference of rates) keeps its sign, and a negative value prints a minus sign, not a hyphen.
    Mutations caught: the sign dropped from a positive difference, a hyphen left in the README."""
    assert readme_value("exp_cpu:a:x|+pct", planted) == "\u221212.3"
    assert readme_value("exp_cpu:a:ci:1|+pct", planted) == "+30.0"
    assert readme_value("exp_cpu:a:x|pct", planted) == "\u221212.3"


def test_update_readme_writes_only_on_change_and_a_missing_result_names_its_citation(planted):
    readme = planted / "README.md"
    readme.write_text("<!-- res{exp_cpu:a:x|.2f} -->\u22120.12<!-- /res -->\n")
    assert not update_readme(readme, planted)
    readme.write_text("<!-- res{exp_cpu:a:x|.2f} -->7<!-- /res -->\n")
    assert update_readme(readme, planted) and "\u22120.12<" in readme.read_text()
    readme.write_text("<!-- res{exp_cpu:a:missing|.2f} -->1<!-- /res -->\n")
    with pytest.raises(KeyError, match=r"exp_cpu:a:missing.*no 'missing'"):
        update_readme(readme, planted)


def test_a_value_that_cannot_be_printed_names_its_citation(planted):
    """A rerun can leave a cited number undefined (a power with no counted reading is None): the error must name the
    citation, not end in a bare format error. Mutation caught: the TypeError passed on without the key."""
    data = json.loads((planted / "exp_cpu.json").read_text())
    data["a"]["power"] = None
    (planted / "exp_cpu.json").write_text(json.dumps(data))
    with pytest.raises(TypeError, match=r"res\{exp_cpu:a:power\|\.3f\}: cannot print None"):
        readme_value("exp_cpu:a:power|.3f", planted)
