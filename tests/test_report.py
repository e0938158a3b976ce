"""The report cites only results that exist, only references in refs.bib, and builds when LaTeX is present."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from minidpo.experiments import report as rep
from minidpo.experiments import report_build
from minidpo.stats import Comparison, Interval

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "report"


def test_every_cited_result_exists_in_a_results_file():
    keys = rep.cited_keys(REPORT)
    assert len(keys) > 20  # the experiments section cites its numbers
    cache: dict = {}
    for key in keys:
        value = rep.lookup(key, ROOT / "results", cache)  # raises KeyError naming the citation if missing
        rep.format_value(value, key.partition("|")[2])


def test_a_missing_result_is_an_error_naming_it(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "demo.json").write_text(json.dumps({"a": {"b": [1.5, 2.5]}}))
    assert rep.lookup("demo:a:b:1|.2f", tmp_path / "results") == 2.5
    with pytest.raises(KeyError, match=r"demo.json has no 'c'"):
        rep.lookup("demo:a:c", tmp_path / "results")
    with pytest.raises(KeyError, match="no results file"):
        rep.lookup("nothing:a", tmp_path / "results")
    (tmp_path / "report" / "sections").mkdir(parents=True)
    (tmp_path / "report" / "main.tex").write_text(r"ok \res{demo:a:b:0|.1f}, 95\% sure % \res{commented:out}" "\n" r"bad \res{demo:a:zzz}")
    assert rep.cited_keys(tmp_path / "report") == ["demo:a:b:0|.1f", "demo:a:zzz"]
    with pytest.raises(KeyError, match="zzz"):
        rep.generate(tmp_path)


def test_formats():
    assert rep.format_value(0.8751, ".3f") == "0.875"
    assert rep.format_value(-0.5, ".2f") == r"\ensuremath{-}0.50"
    assert rep.format_value(0.16, "pct") == "16.0"
    assert rep.format_value(2029.9, "min") == "33.8"
    assert rep.format_value(1e-5, "sci") == r"\ensuremath{1\times 10^{-5}}"
    assert rep.format_value([0, 1, 2], "len") == "3" and rep.format_value([0.05, 0.2, 1.0], "list") == "0.05, 0.2, 1"
    with pytest.raises(TypeError):
        rep.format_value({"a": 1}, ".3f")


def test_generated_tables_carry_the_results_numbers(tmp_path):
    results = json.loads((ROOT / "results" / "instruction_cpu.json").read_text())
    table = rep.instruction_table(results)
    assert table.count(r"\\") - 1 == len(results["arms"])
    for arm, row in results["arms"].items():
        assert f"{row['kl']['estimate']:.2f} [{row['kl']['low']:.2f}" in table
        assert f"{100 * row['rude_rate']['estimate']:.1f} [{100 * row['rude_rate']['low']:.1f}" in table
    primary = rep.primary_table(results)
    assert primary.count(r"\\") - 1 == len(results["primary"])
    assert all(f"{p['comparison']['verdict']} & {p['holm']}" in primary for p in results["primary"])
    checks = rep.checks_table(results)
    edits = sum(len(e["checks"]) for e in results["instrument_checks"]["edits"])
    assert checks.count(r"\\") - 1 == len(results["instrument_checks"]["aa"]) + edits
    assert rep.secondary_table(results).count(r"\\") - 1 == len(results["secondary"])
    judge = rep.judge_validation_table(results)
    assert f"{results['judge']['test_pair_accuracy']['estimate']:.2f}" in judge
    frontier_file = ROOT / "results" / "frontier_cpu.json"
    if frontier_file.exists():
        frontier = json.loads(frontier_file.read_text())
        table = rep.frontier_table(frontier)
        points = [p for curves in frontier["curves"].values() for c in curves for p in c["points"]]
        # a row per curve point, SFT, Preferred-FT and each best-of-N; plus the header
        assert table.count(r"\\") - 1 == len(points) + 2 + len(frontier["reference_points"]["Best-of-N"])
        assert all(f"{min(p['seed_rewards']):+.3f}".replace("+", "$+$").replace("-", "$-$") in table for p in points)
        matched = rep.matched_kl_table(frontier)
        rows = [r for m in frontier["matched_kl"].values() for r in m["readings"]]
        assert matched.count(r"\\") - 1 == len(rows) + len(frontier["matched_kl"])  # a row per reading, a verdict per method
        assert all(m["verdict"] in matched for m in frontier["matched_kl"].values())
    variants = json.loads((ROOT / "results" / "variants_cpu.json").read_text())  # committed: notebook 09's cpu run
    table = rep.variants_table(variants)
    assert table.count(r"\\") - 1 == len(variants["dpo"]) + len(variants["variant_runs"])
    family = json.loads((ROOT / "results" / "family_cpu.json").read_text())  # committed: notebook 10's cpu run
    table = rep.family_arms_table(family)
    assert table.count(r"\\") - 1 == len(family["arms"])  # a row per arm, with its primary verdict
    assert all(a["verdicts"][a["verdicts"]["primary"]]["verdict"] in table for a in family["arms"].values())
    grid = rep.family_grid_table(family)
    tuned = [a for a in family["arms"].values() if a["grid"] is not None]
    assert grid.count(r"\\") - 1 == sum(len(a["grid"]["values"]) for a in tuned)
    assert grid.count("chosen") == len(tuned)  # one choice per grid


def test_every_cited_verdict_resolves_and_agrees_with_the_librarys_comparisons():
    verdicts = rep.cited_verdicts(REPORT)
    assert len(verdicts) > 10  # the result sections say "higher" only through \verdict
    cache: dict = {}
    words = {key: rep.verdict_word(key, ROOT / "results", cache) for key in verdicts}  # raises, naming the citation
    assert set(words.values()) <= {"higher", "lower", "no clear difference", "mixed", "DPO higher", "DPO lower",
                                   "no overlap", "inconclusive"}  # the last two: the frontier's (frontier_verdicts)
    # the macro reads a stored comparison as the library does: each primary comparison of the headline run
    from minidpo.stats import Comparison
    results = json.loads((ROOT / "results" / "instruction_cpu.json").read_text())
    for i, p in enumerate(results["primary"]):
        key = f"instruction_cpu:primary:{i}:comparison"
        assert rep.verdict_word(key, ROOT / "results") == Comparison.from_dict(p["comparison"]).verdict.value, key


PLANTED = {  # intervals with a known verdict, in every shape a results file stores
    "up": {"mean": 0.05, "ci_low": 0.01, "ci_high": 0.09, "n": 200},        # above 0: higher
    "down": {"mean": -0.05, "ci_low": -0.09, "ci_high": -0.01, "n": 200},   # below 0: lower
    "straddle": {"mean": 0.01, "ci_low": -0.02, "ci_high": 0.04, "n": 200}, # contains 0: no clear difference
    "touch": {"mean": 0.05, "ci_low": 0.0, "ci_high": 0.1, "n": 200},       # ends at 0: not excluded
    "rate_up": {"rate": 0.6, "ci_low": 0.53, "ci_high": 0.67, "n": 200},    # above 1/2
    "rate_down": {"rate": 0.4, "ci_low": 0.33, "ci_high": 0.47, "n": 200},  # below 1/2, above 0
    "rate_tie": {"rate": 0.55, "ci_low": 0.48, "ci_high": 0.62, "n": 200},  # contains 1/2
    "pair": [-0.12, -0.03],                                                 # a [low, high] list (reward_ci)
    "interval": Interval(-0.01, -0.03, 0.02, "paired bootstrap over prompts", 96).as_dict(),
    "comparison": Comparison("judge", "DPO", "ref", Interval(0.41, 0.34, 0.48, "Wilson score", 200), 0.5).as_dict(),
    "stale": {**Comparison("judge", "DPO", "ref", Interval(0.41, 0.34, 0.48, "Wilson score", 200), 0.5).as_dict(), "verdict": "higher"},
    "matched_kl": {"PPO": {"verdict": "no clear difference"}, "GT": {"verdict": "DPO higher"}, "bad": {"verdict": "DPO beats PPO"}},
    "swapped": {"mean": 0.0, "ci_low": 0.1, "ci_high": -0.1},
    "number": 0.3,
}


def test_a_verdict_is_computed_from_the_interval_and_the_null(tmp_path):
    """`\\verdict{file:path|null}` on planted intervals. Mutation table (the mutation of `rep.verdict_word` or
    `stats.verdict`, and the assertion that catches it):

        "higher" and "lower" swapped                       up|0 -> higher, down|0 -> lower, rate_down|0.5 -> lower
        a tie called by the estimate's sign (no interval)  straddle|0 and rate_tie|0.5 -> no clear difference
        `>=` for `>` (an interval ending at the null)      touch|0 -> no clear difference
        the cited null ignored (always 0)                  rate_down|0.5 -> lower while rate_down|0 -> higher
        the cited null ignored (always 1/2)                up|0 -> higher, rate_down|0 -> higher
        only ci_low/ci_high read                           pair (a [low, high] list), interval (low/high) resolve
        a stored Comparison's null or verdict not checked  comparison|0 and stale raise
        a stored verdict string printed unchecked          matched_kl:bad:verdict raises
        a missing null read as 0                           up (no |null) raises
        any null accepted                                  up|0.7 raises
        low > high accepted                                swapped|0 raises
    """
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "demo.json").write_text(json.dumps(PLANTED))
    word = lambda key: rep.verdict_word(key, tmp_path / "results")  # noqa: E731
    assert word("demo:up|0") == "higher" and word("demo:down|0") == "lower"
    assert word("demo:straddle|0") == "no clear difference" and word("demo:touch|0") == "no clear difference"
    assert word("demo:rate_up|0.5") == "higher" and word("demo:rate_down|0.5") == "lower"
    assert word("demo:rate_tie|0.5") == "no clear difference"
    assert word("demo:rate_down|0") == "higher" and word("demo:rate_tie|0") == "higher"  # the null decides
    assert word("demo:pair|0") == "lower" and word("demo:interval|0") == "no clear difference"
    assert word("demo:comparison") == word("demo:comparison|0.5") == "lower"  # a Comparison carries its own null
    assert word("demo:matched_kl:PPO:verdict") == "no clear difference" and word("demo:matched_kl:GT:verdict") == "DPO higher"
    for key, error, match in [
        ("demo:comparison|0", ValueError, "null is 0.5"), ("demo:stale", ValueError, "stored verdict 'higher'"),
        ("demo:matched_kl:bad:verdict", TypeError, "not a verdict"), ("demo:matched_kl:PPO:verdict|0", ValueError, "no null"),
        ("demo:up", ValueError, "say the null"), ("demo:up|0.7", ValueError, "one of 0, 0.5"), ("demo:up|zero", ValueError, "not a number"),
        ("demo:swapped|0", ValueError, "low <= high"), ("demo:number|0", TypeError, "not an interval"),
        ("demo:up:ci_low|0", TypeError, "not an interval"), ("demo:nothing|0", KeyError, r"\\verdict\{demo:nothing\|0\}"),
    ]:
        with pytest.raises(error, match=match):
            word(key)


def test_verdict_macros_are_generated_and_a_bad_one_stops_the_build(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "demo.json").write_text(json.dumps(PLANTED))
    (tmp_path / "report" / "sections").mkdir(parents=True)
    (tmp_path / "report" / "main.tex").write_text(
        r"DPO: \verdict{demo:up|0}; judge: \verdict{demo:rate_tie|0.5}; frontier: \verdict{demo:matched_kl:PPO:verdict}; "
        r"\res{demo:matched_kl:GT:verdict|} % \verdict{demo:commented|0}" "\n")
    assert rep.cited_verdicts(tmp_path / "report") == ["demo:up|0", "demo:rate_tie|0.5", "demo:matched_kl:PPO:verdict"]
    generated = rep.generate(tmp_path)[0].read_text()
    assert r"\csname verdict@demo:up|0\endcsname{higher}" in generated
    assert r"\csname verdict@demo:rate_tie|0.5\endcsname{no clear difference}" in generated
    assert r"\csname verdict@demo:matched_kl:PPO:verdict\endcsname{no clear difference}" in generated
    assert r"\csname res@demo:matched_kl:GT:verdict|\endcsname{DPO higher}" in generated
    (tmp_path / "report" / "sections" / "bad.tex").write_text(r"\verdict{demo:straddle} and \res{demo:matched_kl:bad:verdict|}")
    with pytest.raises(KeyError) as info:
        rep.generate(tmp_path)
    assert "demo:straddle" in str(info.value) and "demo:matched_kl:bad:verdict" in str(info.value)


def test_every_citation_is_in_the_bibliography():
    bib = set(re.findall(r"@\w+\{([^,\s]+),", (REPORT / "refs.bib").read_text()))
    cited = set()
    for path in rep.tex_sources(REPORT):
        for group in re.findall(r"\\cite[tp]?\*?(?:\[[^\]]*\])?\{([^}]*)\}", path.read_text()):
            cited |= {k.strip() for k in group.split(",")}
    assert cited and not (cited - bib), f"cited but not in refs.bib: {sorted(cited - bib)}"


CITE = re.compile(r"\\cite(?:t|p|alp|alt|author|year)?\*?(?:\[[^\]]*\]){0,2}\{([^}]*)\}")


def cited_bib_keys(text: str) -> set[str]:
    """The keys of every \\cite, \\citet, \\citep, \\citealp, ... in `text`, comments left out."""
    text = "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in text.splitlines())
    return {k.strip() for group in CITE.findall(text) for k in group.split(",") if k.strip()}


def test_every_bibliography_entry_is_cited():
    """The reverse of `test_every_citation_is_in_the_bibliography`: every refs.bib entry is cited by some .tex source
    of the report (`rep.tex_sources`: main.tex and every file in sections/). Mutations caught: an entry left in
    refs.bib but never cited (a reference the PDF silently drops); a cite to a key missing from refs.bib (see the
    test above, and the planted cases here); a cite form (\\citet, \\citealp, optional notes) the scan misses."""
    bib = set(re.findall(r"@\w+\{([^,\s]+),", (REPORT / "refs.bib").read_text()))
    cited = set().union(*(cited_bib_keys(path.read_text()) for path in rep.tex_sources(REPORT)))
    uncited = sorted(bib - cited)
    assert not uncited, f"in refs.bib but cited nowhere in the report (cite them or remove them): {uncited}"
    assert cited <= bib, f"cited but not in refs.bib: {sorted(cited - bib)}"
    # the scan is not vacuous: every cite form is read, a commented-out cite is not
    planted = r"\citet{a} \citep[see][p.~2]{b, c} (\citealp{d}, App.~A) \cite{e} % \citep{f}"
    assert cited_bib_keys(planted) == {"a", "b", "c", "d", "e"}


def test_every_figure_exists():
    for path in rep.tex_sources(REPORT):
        for name in re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]*)\}", path.read_text()):
            assert (ROOT / "figures" / name).exists(), f"{path.name} includes a missing figure {name}"


@pytest.mark.skipif(shutil.which("latexmk") is None and not os.environ.get("MINIDPO_REQUIRE_LATEX"),
                    reason="latexmk not installed (CI installs it and sets MINIDPO_REQUIRE_LATEX=1)")
def test_the_pdf_builds_without_undefined_references(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(REPORT, copy / "report", ignore=shutil.ignore_patterns("minidpo.pdf", "*.aux", "*.log", "*.fls", "*.fdb_latexmk", "*.bbl", "*.blg", "*.out"))
    shutil.copytree(ROOT / "results", copy / "results")
    shutil.copytree(ROOT / "figures", copy / "figures")
    for name in ("requirements-dev.txt", "CITATION.cff"):  # \trlversion reads the TRL pin, \minidporeleased the date
        shutil.copy2(ROOT / name, copy / name)
    pdf = report_build.build_pdf(copy)
    assert pdf.stat().st_size > 100_000
    assert report_build.commit_of(copy / "report") == "unknown"  # a copy outside any checkout names no commit


def test_overfull_boxes_wider_than_the_limit_are_problems():
    """Catches: the overfull check dropped or its limit ignored (a table running into the margin builds)."""
    log = ("Overfull \\hbox (12.5pt too wide) in alignment at lines 3--9\n"
           "Overfull \\hbox (0.9pt too wide) in paragraph at lines 40--41\n"
           "Underfull \\hbox (badness 10000) in paragraph at lines 5--6\n")
    assert report_build.overfull_boxes(log) == ["12.5pt too wide in alignment at lines 3--9"]
    assert report_build.overfull_boxes(log, limit=0.5) == ["12.5pt too wide in alignment at lines 3--9",
                                                            "0.9pt too wide in paragraph at lines 40--41"]


def test_the_generated_macros_carry_the_packages_version():
    """Catches: a version typed into the report instead of read from `minidpo.__version__`."""
    import minidpo
    text = (REPORT / "generated" / "results.tex").read_text()
    assert f"\\def\\minidpoversion{{{minidpo.__version__}}}" in text
    main = (REPORT / "main.tex").read_text()
    assert "\\minidpoversion" in main and "pdftitle" in main and "\\minidpocommit" in main


def test_no_table_is_shrunk_to_fit():
    """Catches: a wide table squeezed with resizebox or a tiny font instead of laid out to fit (illegible in print)."""
    for path in rep.tex_sources(REPORT):
        text = path.read_text()
        assert "\\resizebox" not in text and "\\scriptsize" not in text and "\\tiny" not in text, path.name


def test_count_and_len_read_a_dict_of_records():
    """Catches: a count that ignores its value (every arm counted) or reads the wrong field."""
    arms = {"A": {"v": {"w": "no clear difference"}}, "B": {"v": {"w": "DPO higher"}}, "C": {"v": {}}}
    assert rep.format_value(arms, "count:v:w=no clear difference") == "1"
    assert rep.format_value(arms, "count:v:w=DPO higher") == "1"
    assert rep.format_value(list(arms.values()), "count:v:w=lower") == "0"
    assert rep.format_value(arms, "len") == "3"
    with pytest.raises(ValueError, match="count"):
        rep.format_value(arms, "count:v:w")
    with pytest.raises(TypeError):
        rep.format_value(arms, ".2f")


def test_the_trl_version_is_read_from_the_pin(tmp_path):
    """Catches: a TRL version typed into the report rather than read from requirements-dev.txt."""
    (tmp_path / "req.txt").write_text("pytest>=8\ntrl==1.16.*  # the peer\n")
    assert rep.pinned_version(tmp_path / "req.txt", "trl") == "1.16"
    with pytest.raises(KeyError, match="torch"):
        rep.pinned_version(tmp_path / "req.txt", "torch")


def test_the_samples_table_shows_every_arms_first_reply_in_test_order():
    """Catches: replies of another seed or sample set shown, prompts picked out of test order, a reply run into the
    margin uncut, LaTeX specials unescaped, or the table drifting from the examples the results file names."""
    from minidpo.experiments.report_tables import samples_table

    arms = {"reference": {}, "dpo_beta0.1": {}}
    samples = [{"prompt_id": pid, "arm": arm, "seed": seed, "sample_set": ss,
                "reply": f"{arm} {pid} s{seed}{ss} 50% & more" + " w" * 60 * (pid == 7)}
               for pid in (7, 3, 9) for arm in arms for seed in (0, 1) for ss in (0, 1)]
    examples = [{"prompt": "Say hi_there", "reference": "reference 7 s00 50% & more" + " w" * 60},
                {"prompt": "Count", "reference": "reference 3 s00 50% & more"}]
    results = {"arms": arms, "examples": examples}
    table = samples_table(results, samples, prompts=2, words=10)
    assert table.index("Test prompt 7") < table.index("Test prompt 3") and "Test prompt 9" not in table
    assert "s01" not in table and "s10" not in table and r"50\% \& more" in table and r"hi\_there" in table
    assert r"\ldots{}" in table  # prompt 7's long reply is cut
    results["examples"][1]["reference"] = "something else"
    with pytest.raises(ValueError, match="prompt 3"):
        samples_table(results, samples, prompts=2)



def test_the_abstract_and_conclusion_cite_the_selected_dpo_arm():
    """Catches: validation selecting another beta while the abstract and conclusion (which cite fixed list positions
    and the `dpo_beta0.1` arm) go on printing beta=0.1's readings under the selected beta."""
    r = json.loads((ROOT / "results" / "instruction_cpu.json").read_text())
    selected = r["selected_arm"]
    for i in (2, 3, 4, 5):  # the primary comparisons the abstract and conclusion cite by position
        assert r["primary"][i]["comparison"]["a"] == selected
    for i in (2, 3):
        assert r["displacement"][i]["a"].startswith(selected + " ")
    text = (REPORT / "main.tex").read_text() + (REPORT / "sections" / "conclusion.tex").read_text()
    assert f"arms:{selected}:kl" in text  # the KL they quote is the selected arm's
