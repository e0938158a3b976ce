"""The README's numbers and verdict words, from results/*.json, the way the report gets its own (`report`).

Markdown cannot run macros, so the README writes each citation in an HTML comment (invisible once rendered) with
the value beside it:

    <!-- res{frontier_cpu:reward_model:validation_accuracy|.2f} -->0.73<!-- /res -->
    <!-- verdict{frontier_cpu:matched_kl:PPO:verdict} -->**inconclusive**

`res{...}` is the report's `\\res{...}` (`report.lookup`, `report.format_value`: a path into a results file and a
format), printed as plain text (a minus sign, 1e-05 for `sci`); `verdict{...}` is `\\verdict{...}`
(`report.verdict_word`). `python -m minidpo report` rewrites every value from the committed results
(`update_readme`), and tests/test_readme.py fails when a value in the README is not what its citation gives, so a
rerun's numbers reach the README by a command, not by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

from .report import VERDICT_WORDS, format_value, lookup, verdict_word, write_text

# a value is one line without markup: a citation missing its close cannot swallow the prose up to the next one
RES = re.compile(r"<!--\s*res\{(?P<key>[^}]*)\}\s*-->(?P<value>[^<\n]*)<!-- /res -->")
RES_OPEN, RES_CLOSE = re.compile(r"<!--\s*res\{"), "<!-- /res -->"
VERDICT = re.compile(r"<!--\s*verdict\{(?P<key>[^}]*)\}\s*-->(?P<stars>\**)(?P<word>(?:DPO )?(?:"
                     + "|".join(map(re.escape, VERDICT_WORDS)) + r"))?(?P=stars)")


def readme_value(key: str, results_dir: Path, cache: dict | None = None) -> str:
    """What `res{key}` prints in the README: the report's value, as plain text."""
    fmt = key.partition("|")[2]
    value = lookup(key, results_dir, cache)
    try:
        if fmt == "sci":  # the report's 1 x 10^-5, as 1e-05 in plain text
            out = f"{value:.0e}"
        else:
            out = format_value(value, fmt).replace("\\ensuremath{-}", "\u2212")
        return "\u2212" + out[1:] if out.startswith("-") else out  # a minus sign, not a hyphen
    except (TypeError, ValueError) as e:  # e.g. a power that a rerun left undefined (None)
        raise TypeError(f"res{{{key}}}: cannot print {value!r} as {fmt!r} ({e})") from None


def render(text: str, results_dir: Path) -> str:
    """`text` with every `res{...}` value and every verdict word recomputed from `results_dir`. KeyError (naming
    the citation) for a result no file provides; ValueError for a citation without its close."""
    cited = len(RES.findall(text))
    if len(RES_OPEN.findall(text)) != cited or text.count(RES_CLOSE) != cited:
        raise ValueError(f"a res{{...}} citation without its {RES_CLOSE!r}, or with markup or a line break in "
                         "its value")
    cache: dict = {}

    def res(m: re.Match) -> str:
        return f"<!-- res{{{m['key']}}} -->{readme_value(m['key'], results_dir, cache)}<!-- /res -->"

    def word(m: re.Match) -> str:
        return f"<!-- verdict{{{m['key']}}} -->{m['stars']}{verdict_word(m['key'], results_dir, cache)}{m['stars']}"

    return VERDICT.sub(word, RES.sub(res, text))


def update_readme(readme: Path, results_dir: Path) -> bool:
    """Rewrite `readme`'s cited values from `results_dir`; True if any changed."""
    text = readme.read_text()
    new = render(text, results_dir)
    changed = new != text
    if changed:
        write_text(readme, new)
    return changed
