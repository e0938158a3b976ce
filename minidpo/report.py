"""Numbers and tables for the LaTeX report, taken from results/*.json and nothing else.

    python -m minidpo.report          # write report/generated/*.tex
    python -m minidpo.report --pdf    # ... then build report/minidpo.pdf with latexmk and check its log

In the report a number is written `\\res{<file>:<path>|<format>}`: `<file>` is a results file without
`.json` (e.g. `pipeline_cpu`), `<path>` the keys (and list indices) down to a value, separated by `:`, and
`<format>` a Python format spec (`.3f`, `d`, ...), `pct` (x100, one decimal), `min` (seconds as minutes),
`sci` (1e-05 as 1 x 10^-5) or `list` (a list of numbers, comma-separated).
This module finds every such citation in report/*.tex and report/sections/*.tex, looks it up, and writes one
macro per citation to report/generated/results.tex; a citation no results file provides is an error.
Tables (frontier, beta sweep, win rates) are generated whole from the same files.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

CITATION = re.compile(r"\\res\{([^}]*)\}")


def report_dir(root: Path | None = None) -> Path:
    return (root or Path(__file__).resolve().parents[1]) / "report"


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
    if isinstance(value, dict) or (isinstance(value, list) and fmt != "list"):
        raise TypeError(f"a citation must name a single value (or a list with |list), got a {type(value).__name__}")
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


def _escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"), ("_", r"\_"),
                 ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}")):
        text = text.replace(a, b)
    return text


def _num(x: float, fmt: str = "+.3f") -> str:
    s = format(x, fmt)
    return s.replace("-", "$-$").replace("+", "$+$")


def _tabular(columns: str, header: str, rows: list[str]) -> str:
    return "\n".join([f"\\begin{{tabular}}{{{columns}}}", r"\toprule", header + r" \\", r"\midrule", *rows,
                      r"\bottomrule", r"\end{tabular}"]) + "\n"


def _reward_cells(r: dict) -> str:
    """`true reward & [95% CI]` of one scored run."""
    lo, hi = r["reward_ci"]
    return f"{_num(r['reward'])} & [{_num(lo)}, {_num(hi)}]"


def frontier_table(results: dict) -> str:
    """One row per run of the frontier experiment: method, knob, true reward [95% CI], KL +- s.e., train time."""
    rows = []
    runs = [("SFT", "--", results["sft"], None)]
    runs += [("DPO", f"$\\beta={r['beta']:g}$", r, r["train"]["seconds"]) for r in results["dpo"]]
    runs += [("PPO", f"$\\beta_{{\\mathrm{{KL}}}}={r['kl_coef']:g}$", r, r["train"]["seconds"]) for r in results["ppo"]]
    runs += [("PPO-GT", f"$\\beta_{{\\mathrm{{KL}}}}={r['kl_coef']:g}$", r, r["train"]["seconds"]) for r in results.get("ppo_gt", [])]
    runs += [("Preferred-FT", "--", results["preferred_ft"], results["preferred_ft"]["train"]["seconds"])]
    runs += [("Best-of-$N$", f"$N={r['n']}$", r, None) for r in results["best_of_n"]["rows"]]
    for method, knob, r, seconds in runs:
        kl = f"{r['kl']:.2f}" + (f" $\\pm$ {r['kl_se']:.2f}" if r.get("kl_se") else " (formula)" if method.startswith("Best") else "")
        time = f"{seconds:.0f}" if seconds is not None else "--"
        rows.append(f"{method} & {knob} & {_reward_cells(r)} & {kl} & {time} \\\\")
    return _tabular("llrcrr", r"method & knob & true reward & 95\% CI & KL (nats) & train (s)", rows)


def variants_table(results: dict) -> str:
    rows = []
    for r in [*results["dpo"], *results["variant_runs"]]:
        acc = [h for h in r["history"] if "eval_rewards/accuracies" in h][-1]["eval_rewards/accuracies"]
        method = "DPO (sigmoid)" if r["method"] == "DPO" else _escape(r["method"])
        rows.append(f"{method} & {r['beta']:g} & {_reward_cells(r)} & {r['kl']:.2f} $\\pm$ {r['kl_se']:.2f} & {acc:.2f} \\\\")
    return _tabular("lrrcrr", r"loss & $\beta$ & true reward & 95\% CI & KL (nats) & held-out pair acc.", rows)


def beta_sweep_table(results: dict) -> str:
    rows = []
    for r in sorted(results["beta_sweep"], key=lambda r: r["beta"]):
        h = r["dpo_vs_sft_at_t1"]
        rows.append(f"{r['beta']:g} & {r['kl_to_reference']:.2f} & {h['rate']:.3f} & [{h['ci_low']:.3f}, {h['ci_high']:.3f}] & "
                    f"{r['eval']['eval_rewards/accuracies']:.3f} & {r['mean_words']:.1f} & {100 * r['politeness_rate']:.0f}\\% \\\\")
    return _tabular("rrrcrrr", r"$\beta$ & KL (nats) & DPO vs SFT & 95\% CI & held-out pair acc. & words & polite", rows)


def win_rate_table(results: dict) -> str:
    temps = sorted(results["head_to_head"]["dpo_vs_sft"], key=float)
    rows = []
    for name, by_t in [*results["win_rates_vs_data"].items(), ("DPO vs SFT", results["head_to_head"]["dpo_vs_sft"])]:
        cells = [f"{by_t[t]['rate']:.3f} [{by_t[t]['ci_low']:.2f}, {by_t[t]['ci_high']:.2f}]" for t in temps]
        label = name if name == "DPO vs SFT" else f"{name.upper() if name != 'base' else 'base'} vs data"
        rows.append(f"{label} & " + " & ".join(cells) + r" \\")
    return _tabular("l" + "c" * len(temps), "win rate & " + " & ".join(f"$T={t}$" for t in temps), rows)


TABLES = {
    "frontier_table.tex": ("frontier_cpu", frontier_table),
    "variants_table.tex": ("frontier_cpu", variants_table),
    "beta_sweep_table.tex": ("pipeline_cpu", beta_sweep_table),
    "win_rate_table.tex": ("pipeline_cpu", win_rate_table),
}


def generate(root: Path | None = None) -> list[Path]:
    """Write report/generated/results.tex (one macro per citation) and the tables; return the files written."""
    report = report_dir(root)
    results_dir = report.parent / "results"
    out = report / "generated"
    out.mkdir(exist_ok=True)
    cache: dict = {}
    lines, problems = ["% generated by `python -m minidpo.report` from results/*.json -- do not edit"], []
    for key in cited_keys(report):
        try:
            value = format_value(lookup(key, results_dir, cache), key.partition("|")[2])
        except (KeyError, TypeError, ValueError) as e:
            problems.append(str(e).strip('"'))
            continue
        lines.append(f"\\expandafter\\def\\csname res@{key}\\endcsname{{{value}}}")
    if problems:
        raise KeyError("the report cites results that no results file provides:\n  " + "\n  ".join(problems))
    written = [out / "results.tex"]
    written[0].write_text("\n".join(lines) + "\n")
    for name, (source, make) in TABLES.items():
        file = results_dir / f"{source}.json"
        if file.exists():
            (out / name).write_text("% generated from results/" + file.name + "\n" + make(json.loads(file.read_text())))
            written.append(out / name)
    return written


LOG_PROBLEMS = re.compile(r"(LaTeX Warning: (Reference|Citation) .* undefined|There were undefined references|Citation .* undefined|^! )", re.M)


def build_pdf(root: Path | None = None) -> Path:
    """latexmk -> report/minidpo.pdf; raise if LaTeX failed or left references or citations undefined."""
    report = report_dir(root)
    if shutil.which("latexmk") is None:
        raise FileNotFoundError("latexmk is not installed (Debian: apt-get install latexmk texlive-latex-recommended texlive-science)")
    generate(root)
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-jobname=minidpo", "main.tex"]
    done = subprocess.run(cmd, cwd=report, capture_output=True, text=True)
    log = (report / "minidpo.log").read_text(errors="replace") if (report / "minidpo.log").exists() else done.stdout
    problems = LOG_PROBLEMS.findall(log)
    if done.returncode != 0 or problems:
        tail = "\n".join(log.splitlines()[-40:])
        raise RuntimeError(f"LaTeX build failed (exit {done.returncode}; {len(problems)} problem(s) in the log):\n{tail}")
    return report / "minidpo.pdf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minidpo.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdf", action="store_true", help="also build report/minidpo.pdf with latexmk and check the log")
    args = parser.parse_args(argv)
    for path in generate():
        print(path)
    if args.pdf:
        print(build_pdf())
    return 0


if __name__ == "__main__":
    sys.exit(main())
