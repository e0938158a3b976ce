"""Does a rerun reproduce a results file? `python -m minidpo reproduce COMMITTED RERUN [--out FILE]`.

Both files are flattened to their computed leaves (`numbers`: every number and string a run computes; timings,
memory, plans, configs, figures and the environment left out, as the golden-number tests do), and compared leaf by
leaf: how many are bitwise identical, how many agree within float32-level tolerance, the largest differences, and
what only one side has; the claims (leaves named "verdict" or "holm") are also counted apart, and any that
changed named. The check, the two runs' commands, compute and environments, and this machine's environment
are written to `--out` (e.g. `results/reproduction_cpu.json`), which the report's reproducibility statement cites.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from .measure import environment
from .runs import portable_path, to_json, write_results

# what a run measures about itself or is told, not what it computes: left out by exact key, or by these endings
VOLATILE = {"timing", "timing_s", "compute_s", "shared_compute_s", "wall_s_this_invocation", "total_s_this_invocation",
            "plan", "frontier_plan", "instruction_plan", "config", "figures", "environment", "command", "trained_now",
            "device", "peak_rss_gib", "peak_rss_gib_this_invocation", "load_and_tokenize_s"}
VOLATILE_ENDINGS = ("seconds", "_rss_gib", "rss_rise_gib")
VERDICT_LEAVES = ("verdict", "holm")  # where a results file states a claim ("higher", "no clear difference", ...)
RTOL, ATOL = 1e-4, 1e-5  # "close": what float32 rounding across CPUs leaves after a few steps (tests/golden_numbers.py)


def numbers(results, path: str = "") -> dict:
    """Every computed leaf of `results` by its path ("a/b/3/c")."""
    out = {}
    join = lambda k: f"{path}/{k}" if path else str(k)  # noqa: E731  (no leading "/": not a file's path)
    if isinstance(results, dict):
        for k, v in results.items():
            if str(k) not in VOLATILE and not str(k).endswith(VOLATILE_ENDINGS):
                out.update(numbers(v, join(k)))
    elif isinstance(results, list):
        for i, v in enumerate(results):
            out.update(numbers(v, join(i)))
    elif isinstance(results, (int, float, str, bool)) or results is None:
        out[path] = results
    return out


def close(a, b, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Equal, or (as floats) within `atol + rtol |b|`; NaN is close to NaN."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool) and (isinstance(a, float) or isinstance(b, float)):
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= atol + rtol * abs(b)
    return a == b


@dataclass(frozen=True)
class Reproduction:
    """A leaf-by-leaf comparison of a rerun's results with the committed ones."""
    compared: int  # leaves both files have
    identical: int  # of those, equal bit for bit (floats as JSON writes them)
    close: int  # of those, equal within RTOL/ATOL (identical ones included)
    max_abs_difference: float  # over the numeric leaves
    only_committed: tuple[str, ...]
    only_rerun: tuple[str, ...]
    largest_differences: tuple[str, ...]  # up to 10 "path: committed -> rerun"
    verdicts_compared: int = 0  # the claims: leaves named "verdict" or "holm" that both files have
    verdicts_same: int = 0
    verdicts_changed: tuple[str, ...] = ()  # "path: committed -> rerun"

    @property
    def exact(self) -> bool:
        return self.identical == self.compared and not self.only_committed and not self.only_rerun


def compare_results(committed: dict, rerun: dict) -> Reproduction:
    a, b = numbers(committed), numbers(rerun)
    shared = [k for k in a if k in b]
    numeric = [k for k in shared if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a[k], b[k]))]
    claims = [k for k in shared if k.rsplit("/", 1)[-1] in VERDICT_LEAVES]
    gaps = sorted(((abs(a[k] - b[k]), k) for k in numeric if not (math.isnan(a[k]) and math.isnan(b[k]))),
                  reverse=True)
    return Reproduction(
        compared=len(shared), identical=sum(a[k] == b[k] for k in shared),
        close=sum(close(b[k], a[k]) for k in shared), max_abs_difference=gaps[0][0] if gaps else 0.0,
        only_committed=tuple(k for k in a if k not in b), only_rerun=tuple(k for k in b if k not in a),
        largest_differences=tuple(f"{k}: {a[k]!r} -> {b[k]!r}" for gap, k in gaps[:10] if gap > 0),
        verdicts_compared=len(claims), verdicts_same=sum(a[k] == b[k] for k in claims),
        verdicts_changed=tuple(f"{k}: {a[k]!r} -> {b[k]!r}" for k in claims if a[k] != b[k]))


def _run_summary(path: Path, results: dict) -> dict:
    return {"file": portable_path(path), "command": results.get("command"), "compute_s": results.get("compute_s"),
            "wall_s_this_invocation": results.get("wall_s_this_invocation"),
            "peak_rss_gib": results.get("peak_rss_gib"), "environment": results.get("environment")}


def main(committed: str, rerun: str, out: str | None = None) -> int:
    """Compare, print the summary, write `out` if given; exit status 0 when every leaf is close, else 1."""
    a, b = json.loads(Path(committed).read_text()), json.loads(Path(rerun).read_text())
    check = compare_results(a, b)
    record = {"what": "a rerun's results compared leaf by leaf with the committed results "
                      "(minidpo.experiments.reproduce)",
              "committed": _run_summary(Path(committed), a), "rerun": _run_summary(Path(rerun), b),
              "check": {**to_json(check), "exact": check.exact, "rtol": RTOL, "atol": ATOL},
              "checked_on": environment()}
    print(json.dumps(record["check"], indent=1))
    if out:
        write_results(out, record)
        print(out)
    return 0 if check.close == check.compared and not check.only_committed and not check.only_rerun else 1
