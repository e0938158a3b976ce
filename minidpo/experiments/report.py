"""Numbers and tables for the LaTeX report, taken from results/*.json and nothing else.

    python -m minidpo report          # write report/generated/*.tex
    python -m minidpo report --pdf    # ... then build report/minidpo.pdf with latexmk and check its log
                                      #     (`report_build`)

In the report a number is written `\\res{<file>:<path>|<format>}`: `<file>` is a results file without
`.json` (e.g. `instruction_cpu`), `<path>` the keys (and list indices) down to a value, separated by `:`, and
`<format>` a Python format spec (`.3f`, `d`, ...), `pct` (x100, one decimal; `+pct` signed), `min` (seconds as minutes),
`sci` (1e-05 as 1 x 10^-5), `list` (a list of numbers, comma-separated), `len` (how many in a list or dict) or
`count:<path>=<value>` (how many entries of a list or dict hold `<value>` at `<path>`).
A claim about a difference is written `\\verdict{<file>:<path>|<null>}`: `<path>` names an interval in a results
file and the macro prints what `minidpo.stats.verdict` says of it against `<null>` (`0` for a difference, `0.5`
for a win rate): "higher", "lower" or "no clear difference". The interval may be stored as
`{"rate" | "mean" | ..., "ci_low", "ci_high", ...}`, as `stats.Interval.as_dict()` (`low`, `high`), as a
`[low, high]` pair, or as a whole `stats.Comparison.as_dict()` (its own null and stored verdict, both checked;
`|<null>` may then be left out). A path that ends at a verdict already stored as a string (the frontier's
`matched_kl:<method>:verdict`: "no clear difference", "DPO higher", ...) is written `\\verdict{<file>:<path>}`
and printed as stored, after checking it is a verdict. So a sentence says "higher" only where its interval does,
and the sentence around the macro must read true for every word it can print ("the judge's verdict on DPO
against its reference: \\verdict{...}").
The README cannot run macros: it writes the same citations in HTML comments beside their values (`readme`), and
`python -m minidpo report` rewrites those values too.

This module finds every such citation in report/*.tex and report/sections/*.tex, looks it up, and writes one
macro per citation to report/generated/results.tex; a citation no results file provides, or a verdict cited on
something that is not an interval, is an error. Tables (frontier, beta sweep, win rates; `report_tables`) are
generated whole from the same files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .. import __version__
from ..stats import Comparison, Interval, Verdict, verdict
from ..utils import atomic_write, read_json
from .report_tables import (budgets_table, checks_table, family_arms_table, family_grid_table, frontier_table,
                            instruction_table, judge_validation_table, matched_kl_table,
                            ppo_stability_table, primary_table, samples_table, secondary_table, variants_table)

CITATION = re.compile(r"\\res\{([^}]*)\}")
VERDICT_CITATION = re.compile(r"\\verdict\{([^}]*)\}")
NULLS = (0.0, 0.5)  # the nulls minidpo tests against: no difference (0) and an indifferent judge (1/2)


def report_dir(root: Path | None = None) -> Path:
    return (root or Path(__file__).resolve().parents[2]) / "report"


def tex_sources(report: Path) -> list[Path]:
    return sorted(report.glob("*.tex")) + sorted((report / "sections").glob("*.tex"))


def cited_keys(report: Path, pattern: re.Pattern = CITATION) -> list[str]:
    """Every `\\res{...}` key (or, with `pattern=VERDICT_CITATION`, every `\\verdict{...}` key) in the report's
    sources, in order of first appearance."""
    keys: list[str] = []
    for path in tex_sources(report):
        text = "\n".join(re.sub(r"(?<!\\)%.*", "", line) for line in path.read_text().splitlines())  # drop comments
        for key in pattern.findall(text):
            if key not in keys:
                keys.append(key)
    return keys


def cited_verdicts(report: Path) -> list[str]:
    """Every `\\verdict{...}` key in the report's sources, in order of first appearance."""
    return cited_keys(report, VERDICT_CITATION)


def lookup(key: str, results_dir: Path, _cache: dict | None = None, kind: str = "res"):
    """The value a citation names; KeyError naming the citation (`\\<kind>{key}`) and the missing step if there is
    none."""
    spec = key.split("|", 1)[0]
    name, _, path = spec.partition(":")
    cache = _cache if _cache is not None else {}
    if name not in cache:
        file = results_dir / f"{name}.json"
        if not file.exists():
            raise KeyError(f"\\{kind}{{{key}}}: no results file {file}")
        cache[name] = json.loads(file.read_text())
    value = cache[name]
    for step in path.split(":") if path else []:
        if isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            raise KeyError(f"\\{kind}{{{key}}}: {name}.json has no {step!r} at this point of the path")
    return value


def _count(records, fmt: str) -> str:
    """`count:<subpath>=<value>`: how many entries of a list or dict have `value` at `subpath` (keys joined by
    `:`), e.g. how many of the family's arms read "no clear difference" against DPO."""
    subpath, sep, wanted = fmt.removeprefix("count:").partition("=")
    if not sep or not subpath:
        raise ValueError(f"|{fmt}: write |count:<path inside each entry>=<value>")
    entries = records.values() if isinstance(records, dict) else records
    hits = 0
    for entry in entries:
        for step in subpath.split(":"):
            entry = entry.get(step) if isinstance(entry, dict) else None
        hits += str(entry) == wanted
    return str(hits)


def format_value(value, fmt: str) -> str:
    if isinstance(value, (dict, list)) and fmt.startswith("count:"):
        return _count(value, fmt)
    if (isinstance(value, dict) and fmt != "len") or (isinstance(value, list) and fmt not in ("list", "len")):
        raise TypeError("a citation must name a single value (or a list with |list or |len, a list or dict with "
                        f"|len or |count:<path>=<value>), got a {type(value).__name__}")
    if fmt == "len":  # how many: [0, 1, 2] -> 3; {"a": .., "b": ..} -> 2
        return str(len(value))
    if fmt in ("pct", "+pct"):  # +pct: with its sign, for a difference of rates
        return format(100 * value, fmt.removesuffix("pct") + ".1f")
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


# every word a verdict can print: a `stats.Verdict` value, or the frontier's and family's "no overlap" and
# "inconclusive" (frontier_verdicts); a stored verdict may also name its subject ("DPO higher")
VERDICT_WORDS = (*(v.value for v in Verdict), "no overlap", "inconclusive")


def is_stored_verdict(value) -> bool:
    """A verdict already written as a string: one of `VERDICT_WORDS`, or "<subject> higher" / "<subject> lower"
    (the frontier's "DPO higher")."""
    return isinstance(value, str) and (value in VERDICT_WORDS or (len(value.split(" ")) == 2 and value.split(" ")[1] in
                                                          (Verdict.HIGHER.value, Verdict.LOWER.value)))


def _checked(key: str, *fields) -> Interval:
    try:
        return Interval(*fields)
    except ValueError as e:
        raise ValueError(f"\\verdict{{{key}}}: {e}") from None


def _interval(value, key: str) -> Interval:
    """The interval a `\\verdict` citation names, from any of the stored shapes (see the module docstring)."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return _checked(key, (value[0] + value[1]) / 2, float(value[0]), float(value[1]), "cited", 0)
    if isinstance(value, dict):
        bounds = [("ci_low", "ci_high"), ("low", "high")]
        for low, high in bounds:
            if isinstance(value.get(low), (int, float)) and isinstance(value.get(high), (int, float)):
                estimate = next((value[k] for k in ("estimate", "rate", "mean", "difference")
                                 if isinstance(value.get(k), (int, float))), (value[low] + value[high]) / 2)
                return _checked(key, float(estimate), float(value[low]), float(value[high]),
                                value.get("method", "cited"), int(value.get("n", 0) or 0))
    raise TypeError(f"\\verdict{{{key}}}: names a {type(value).__name__}, not an interval (a dict with ci_low/ci_high "
                    "or low/high, a [low, high] pair, a stats.Comparison, or a stored verdict string)")


def verdict_word(key: str, results_dir: Path, _cache: dict | None = None) -> str:
    """What `\\verdict{key}` prints: `stats.verdict` of the cited interval against the cited null ("higher",
    "lower", "no clear difference"), or a stored verdict string as stored. Raises KeyError for a missing result,
    TypeError for something that is not an interval, ValueError for a bad or missing null or a stored verdict
    that its own interval contradicts."""
    spec, sep, null_text = key.partition("|")
    value = lookup(key, results_dir, _cache, kind="verdict")
    null = None
    if sep:
        try:
            null = float(null_text)
        except ValueError:
            raise ValueError(f"\\verdict{{{key}}}: the null {null_text!r} is not a number") from None
        if null not in NULLS:
            raise ValueError(f"\\verdict{{{key}}}: the null must be one of {', '.join(f'{n:g}' for n in NULLS)}, "
                             f"got {null_text!r}")
    if isinstance(value, str):
        if not is_stored_verdict(value):
            raise TypeError(f"\\verdict{{{key}}}: {value!r} is not a verdict")
        if null is not None:
            raise ValueError(f"\\verdict{{{key}}}: a stored verdict string carries no null; drop |{null_text}")
        return value
    if isinstance(value, dict) and isinstance(value.get("interval"), dict):  # a stats.Comparison.as_dict()
        c = Comparison.from_dict(value)
        if null is not None and null != c.null:
            raise ValueError(f"\\verdict{{{key}}}: cited against {null:g}, but the comparison's null is {c.null:g}")
        word = verdict(c).value
        if "verdict" in value and value["verdict"] != word:
            raise ValueError(f"\\verdict{{{key}}}: the stored verdict {value['verdict']!r} is not what its interval "
                             f"says ({word!r})")
        return word
    interval = _interval(value, key)
    if null is None:
        raise ValueError(f"\\verdict{{{key}}}: say the null to test against: |0 for a difference, |0.5 for a win rate")
    return verdict(Comparison(spec, "a", "b", interval, null)).value


TABLES = {  # table file -> (the experiment whose results_<profile>.json it reads, how)
    "frontier_table.tex": ("frontier", frontier_table),
    "matched_kl_table.tex": ("frontier", matched_kl_table),
    "budgets_table.tex": ("frontier", budgets_table),
    "ppo_stability_table.tex": ("frontier", ppo_stability_table),
    "variants_table.tex": ("variants", variants_table),
    "instruction_table.tex": ("instruction", instruction_table),
    "primary_table.tex": ("instruction", primary_table),
    "secondary_table.tex": ("instruction", secondary_table),
    "checks_table.tex": ("instruction", checks_table),
    "judge_validation_table.tex": ("instruction", judge_validation_table),
    "family_arms_table.tex": ("family", family_arms_table),
    "family_grid_table.tex": ("family", family_grid_table),
}


def pinned_version(requirements: Path, package: str) -> str:
    """The version `requirements` pins `package` to (`trl==1.16.*` -> `1.16`): the TRL the tests agree with."""
    for line in requirements.read_text().splitlines():
        m = re.fullmatch(rf"\s*{re.escape(package)}\s*==\s*([0-9][0-9.]*?)(?:\.\*)?\s*(?:#.*)?", line)
        if m:
            return m.group(1)
    raise KeyError(f"{requirements.name} pins no version of {package}")


def generate(root: Path | None = None, profile: str = "cpu") -> list[Path]:
    """Write report/generated/results.tex (one macro per citation) and the tables from the `profile`'s results
    files (results/<experiment>_<profile>.json); return the files written."""
    report = report_dir(root)
    results_dir = report.parent / "results"
    out = report / "generated"
    out.mkdir(exist_ok=True)
    cache: dict = {}
    lines, problems = ["% generated by `python -m minidpo report` from results/*.json -- do not edit",
                       f"\\def\\minidpoversion{{{__version__}}}"], []
    cff = report.parent / "CITATION.cff"  # this version's release date, as \minidporeleased
    released = re.search(r"^date-released:\s*['\"]?([0-9-]+)", cff.read_text(), re.M) if cff.exists() else None
    lines.append(f"\\def\\minidporeleased{{{released.group(1) if released else 'unreleased'}}}")
    if (report.parent / "requirements-dev.txt").exists():  # the TRL the tests agree with, as \trlversion
        lines.append(f"\\def\\trlversion{{{pinned_version(report.parent / 'requirements-dev.txt', 'trl')}}}")
    for key in cited_keys(report):
        try:
            value = format_value(lookup(key, results_dir, cache), key.partition("|")[2])
        except (KeyError, TypeError, ValueError) as e:
            problems.append(str(e).strip('"'))
            continue
        if (key.partition("|")[0].rsplit(":", 1)[-1] == "verdict"
                and not is_stored_verdict(lookup(key, results_dir, cache))):
            problems.append(f"\\res{{{key}}}: a stored verdict that is not one ({value!r})")
            continue
        lines.append(f"\\expandafter\\def\\csname res@{key}\\endcsname{{{value}}}")
    for key in cited_verdicts(report):
        try:
            word = verdict_word(key, results_dir, cache)
        except (KeyError, TypeError, ValueError) as e:
            problems.append(str(e).strip('"'))
            continue
        lines.append(f"\\expandafter\\def\\csname verdict@{key}\\endcsname{{{word}}}")
    if problems:
        raise KeyError("the report cites results that no results file provides:\n  " + "\n  ".join(problems))
    written = [write_text(out / "results.tex", "\n".join(lines) + "\n")]
    for name, (experiment, make) in TABLES.items():
        file = results_dir / f"{experiment}_{profile}.json"
        if file.exists():
            written.append(write_text(out / name,
                                      "% generated from results/" + file.name + "\n" + make(read_json(file))))
    instruction, samples = results_dir / f"instruction_{profile}.json", results_dir / f"samples_{profile}.jsonl"
    if instruction.exists() and samples.exists():  # the replies themselves, beside the rates that count them
        rows = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
        written.append(write_text(out / "samples_table.tex", f"% generated from results/{instruction.name} and "
                                  f"results/{samples.name}\n" + samples_table(read_json(instruction), rows)))
    return written


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), binary=False)


def main(pdf: bool = False, profile: str = "cpu") -> int:
    """`python -m minidpo report [--pdf] [--profile cpu]`."""
    for path in generate(profile=profile):
        print(path)
    from .readme import update_readme  # it imports this module
    readme = report_dir().parent / "README.md"
    if readme.exists() and update_readme(readme, readme.parent / "results"):  # the README cites committed results
        print(readme)
    if pdf:
        from .report_build import build_pdf  # it imports this module
        print(build_pdf(profile=profile))
    return 0
