"""Numbers and tables for the LaTeX report, taken from results/*.json and nothing else.

    python -m minidpo report          # write report/generated/*.tex
    python -m minidpo report --pdf    # ... then build report/minidpo.pdf with latexmk and check its log

In the report a number is written `\\res{<file>:<path>|<format>}`: `<file>` is a results file without
`.json` (e.g. `instruction_cpu`), `<path>` the keys (and list indices) down to a value, separated by `:`, and
`<format>` a Python format spec (`.3f`, `d`, ...), `pct` (x100, one decimal), `min` (seconds as minutes),
`sci` (1e-05 as 1 x 10^-5), `list` (a list of numbers, comma-separated) or `len` (how many in a list).
This module finds every such citation in report/*.tex and report/sections/*.tex, looks it up, and writes one
macro per citation to report/generated/results.tex; a citation no results file provides is an error.
Tables (frontier, beta sweep, win rates; `report_tables`) are generated whole from the same files.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from ..utils import atomic_write, read_json
from .report_tables import (family_instruction_table, family_sentiment_table, frontier_table, guard_table, instruction_table,
                            judge_validation_table, matched_kl_table, variants_table)

CITATION = re.compile(r"\\res\{([^}]*)\}")


def report_dir(root: Path | None = None) -> Path:
    return (root or Path(__file__).resolve().parents[2]) / "report"


def tex_sources(report: Path) -> list[Path]:
    return sorted(report.glob("*.tex")) + sorted((report / "sections").glob("*.tex"))


def cited_keys(report: Path) -> list[str]:
    """Every `\\res{...}` key in the report's sources, in order of first appearance."""
    keys: list[str] = []
    for path in tex_sources(report):
        text = "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in path.read_text().splitlines())  # drop comments
        for key in CITATION.findall(text):
            if key not in keys:
                keys.append(key)
    return keys


def lookup(key: str, results_dir: Path, _cache: dict | None = None):
    """The value a citation names; KeyError naming the citation and the missing step if there is none."""
    spec = key.split("|", 1)[0]
    name, _, path = spec.partition(":")
    cache = _cache if _cache is not None else {}
    if name not in cache:
        file = results_dir / f"{name}.json"
        if not file.exists():
            raise KeyError(f"\\res{{{key}}}: no results file {file}")
        cache[name] = json.loads(file.read_text())
    value = cache[name]
    for step in path.split(":") if path else []:
        if isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            raise KeyError(f"\\res{{{key}}}: {name}.json has no {step!r} at this point of the path")
    return value


def format_value(value, fmt: str) -> str:
    if isinstance(value, dict) or (isinstance(value, list) and fmt not in ("list", "len")):
        raise TypeError(f"a citation must name a single value (or a list with |list or |len), got a {type(value).__name__}")
    if fmt == "len":  # how many: [0, 1, 2] -> 3
        return str(len(value))
    if fmt == "pct":
        return f"{100 * value:.1f}"
    if fmt == "min":
        return f"{value / 60:.1f}"
    if fmt == "":
        return str(value)
    if fmt == "list":  # [0.05, 0.2, 1.0] -> 0.05, 0.2, 1
        return ", ".join(f"{v:g}" for v in value)
    if fmt == "sci":  # 1e-05 -> 1\times 10^{-5}
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"\\ensuremath{{{mantissa}\\times 10^{{{int(exponent)}}}}}"
    out = format(value, fmt)
    return "\\ensuremath{-}" + out[1:] if out.startswith("-") else out  # a true minus sign, in text or maths


TABLES = {  # table file -> (the experiment whose results_<profile>.json it reads, how)
    "frontier_table.tex": ("frontier", frontier_table),
    "matched_kl_table.tex": ("frontier", matched_kl_table),
    "variants_table.tex": ("family", variants_table),
    "instruction_table.tex": ("instruction", instruction_table),
    "guard_table.tex": ("instruction", guard_table),
    "judge_validation_table.tex": ("instruction", judge_validation_table),
    "family_sentiment_table.tex": ("family", family_sentiment_table),
    "family_instruction_table.tex": ("family", family_instruction_table),
}


def generate(root: Path | None = None, profile: str = "cpu") -> list[Path]:
    """Write report/generated/results.tex (one macro per citation) and the tables from the `profile`'s results
    files (results/<experiment>_<profile>.json); return the files written."""
    report = report_dir(root)
    results_dir = report.parent / "results"
    out = report / "generated"
    out.mkdir(exist_ok=True)
    cache: dict = {}
    lines, problems = ["% generated by `python -m minidpo report` from results/*.json -- do not edit"], []
    for key in cited_keys(report):
        try:
            value = format_value(lookup(key, results_dir, cache), key.partition("|")[2])
        except (KeyError, TypeError, ValueError) as e:
            problems.append(str(e).strip('"'))
            continue
        lines.append(f"\\expandafter\\def\\csname res@{key}\\endcsname{{{value}}}")
    if problems:
        raise KeyError("the report cites results that no results file provides:\n  " + "\n  ".join(problems))
    written = [write_text(out / "results.tex", "\n".join(lines) + "\n")]
    for name, (experiment, make) in TABLES.items():
        file = results_dir / f"{experiment}_{profile}.json"
        if file.exists():
            written.append(write_text(out / name, "% generated from results/" + file.name + "\n" + make(read_json(file))))
    return written


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), binary=False)


LOG_PROBLEMS = re.compile(r"(LaTeX Warning: (Reference|Citation) .* undefined|There were undefined references|Citation .* undefined|^! )", re.M)


def build_pdf(root: Path | None = None, profile: str = "cpu") -> Path:
    """latexmk -> report/minidpo.pdf; raise if LaTeX failed or left references or citations undefined."""
    report = report_dir(root)
    if shutil.which("latexmk") is None:
        raise FileNotFoundError("latexmk is not installed (Debian: apt-get install latexmk texlive-latex-recommended texlive-science)")
    generate(root, profile)
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-jobname=minidpo", "main.tex"]
    done = subprocess.run(cmd, cwd=report, capture_output=True, text=True)
    log = (report / "minidpo.log").read_text(errors="replace") if (report / "minidpo.log").exists() else done.stdout
    problems = LOG_PROBLEMS.findall(log)
    if done.returncode != 0 or problems:
        tail = "\n".join(log.splitlines()[-40:])
        raise RuntimeError(f"LaTeX build failed (exit {done.returncode}; {len(problems)} problem(s) in the log):\n{tail}")
    return report / "minidpo.pdf"


def main(pdf: bool = False, profile: str = "cpu") -> int:
    """`python -m minidpo report [--pdf] [--profile cpu]`."""
    for path in generate(profile=profile):
        print(path)
    if pdf:
        print(build_pdf(profile=profile))
    return 0
