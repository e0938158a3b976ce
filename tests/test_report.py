"""The report cites only results that exist, only references in refs.bib, and builds when LaTeX is present."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from minidpo.experiments import report as rep

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
    table, guard = rep.instruction_table(results), rep.guard_table(results)
    assert table.count(r"\\") - 1 == len(results["arms"]) and guard.count(r"\\") - 1 == len(results["arms"]) + 2
    for arm in results["arms"]:
        row = results["results"][arm]
        assert f"{row['kl']['kl']:.2f}" in table and f"{row['mean_words']:.1f}" in guard
        if arm != "reference":
            assert f"{row['judge_vs_reference']['rate']:.2f} [{row['judge_vs_reference']['ci_low']:.2f}" in table
    judge = rep.judge_validation_table(results)
    assert f"{results['instruments']['preference_judge']['test_pair_accuracy']['rate']:.2f}" in judge
    frontier_file = ROOT / "results" / "frontier_cpu.json"
    if frontier_file.exists():
        frontier = json.loads(frontier_file.read_text())
        table = rep.frontier_table(frontier)
        assert table.count(r"\\") - 1 == (1 + len(frontier["dpo"]) + len(frontier["ppo"]) + len(frontier["ppo_gt"]) + 1
                                            + len(frontier["best_of_n"]["rows"]))
        assert f"{frontier['dpo'][0]['kl']:.2f}" in table
        assert all(f"{min(p['seed_rewards']):+.3f}".replace("+", "$+$").replace("-", "$-$") in table for p in frontier["dpo"] + frontier["ppo"])
        matched = rep.matched_kl_table(frontier)
        rows = [r for m in frontier["matched_kl"].values() for r in m["comparisons"]]
        dominance = [d for m in frontier["matched_kl"].values() for d in m["dominance"]]
        assert matched.count(r"\\") - 1 == len(rows) + len(dominance) + len(frontier["matched_kl"])  # a row per test, a verdict per method
        assert all(m["verdict"] in matched for m in frontier["matched_kl"].values())
    family = json.loads((ROOT / "results" / "family_cpu.json").read_text())  # committed: notebook 10's cpu run
    table = rep.variants_table(family)  # notebook 09's losses, on the sentiment base the family shares
    base = family["sentiment"]["dpo_variants"]
    assert table.count(r"\\") - 1 == len(base["dpo"]) + len(base["variant_runs"])
    table = rep.family_sentiment_table(family)
    assert table.count(r"\\") - 1 == len(family["sentiment"]["points"])
    assert all(f"{p['kl']:.2f} $\\pm$ {p['kl_se']:.2f}" in table for p in family["sentiment"]["points"])
    table = rep.family_instruction_table(family)
    rows = family["instruction"]["rows"]
    assert table.count(r"\\") - 1 == len(rows)
    assert all(f"{r['judge_vs_reference']['rate']:.2f}" in table for m, r in rows.items() if m != "reference")


def test_every_citation_is_in_the_bibliography():
    bib = set(re.findall(r"@\w+\{([^,\s]+),", (REPORT / "refs.bib").read_text()))
    cited = set()
    for path in rep.tex_sources(REPORT):
        for group in re.findall(r"\\cite[tp]?\*?(?:\[[^\]]*\])?\{([^}]*)\}", path.read_text()):
            cited |= {k.strip() for k in group.split(",")}
    assert cited and not (cited - bib), f"cited but not in refs.bib: {sorted(cited - bib)}"


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
    pdf = rep.build_pdf(copy)
    assert pdf.stat().st_size > 100_000
