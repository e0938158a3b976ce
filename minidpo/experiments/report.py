"""Numbers and tables for the LaTeX report, taken from results/*.json and nothing else.

    python -m minidpo report          # write report/generated/*.tex
    python -m minidpo report --pdf    # ... then build report/minidpo.pdf with latexmk and check its log

In the report a number is written `\\res{<file>:<path>|<format>}`: `<file>` is a results file without
`.json` (e.g. `instruction_cpu`), `<path>` the keys (and list indices) down to a value, separated by `:`, and
`<format>` a Python format spec (`.3f`, `d`, ...), `pct` (x100, one decimal), `min` (seconds as minutes),
`sci` (1e-05 as 1 x 10^-5) or `list` (a list of numbers, comma-separated).
This module finds every such citation in report/*.tex and report/sections/*.tex, looks it up, and writes one
macro per citation to report/generated/results.tex; a citation no results file provides is an error.
Tables (frontier, beta sweep, win rates) are generated whole from the same files.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from ..utils import atomic_write, read_json

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


def family_sentiment_table(results: dict) -> str:
    """Notebook 10's sentiment frontier: every method's point, its reply length and training time."""
    rows = []
    for p in results["sentiment"]["points"]:
        seconds = f"{p['train']['seconds']:.0f}" if "train" in p else "--"
        beta = f"{p['beta']:g}" if p.get("beta") is not None else "--"
        rows.append(f"{_escape(p['method'])} & {beta} & {_reward_cells(p)} & {p['kl']:.2f} $\\pm$ {p['kl_se']:.2f} & "
                    f"{p['reply_tokens']:.1f} & {seconds} \\\\")
    return _tabular("lrrcrrr", r"method & $\beta$ & true reward & 95\% CI & KL (nats) & tokens & train (s)", rows)


def family_instruction_table(results: dict) -> str:
    """Notebook 10 on the instruction pairs: judge win rate vs the reference (paired), length-controlled rate,
    words, fidelity, KL."""
    rows = []
    for method, r in results["instruction"]["rows"].items():
        if method == "reference":
            continue
        rows.append(f"{_escape(method)} & {r['beta']:g} & {_ci(r['judge_vs_reference'])} & {r['lc_vs_reference']['rate']:.2f} & "
                    f"{r['mean_words']:.1f} & {r['fidelity']['mean']:.2f} & {r['kl']['kl']:.2f} \\\\")
    ref = results["instruction"]["rows"]["reference"]
    rows.append(f"reference & -- & -- & -- & {ref['mean_words']:.1f} & {ref['fidelity']['mean']:.2f} & 0 \\\\")
    return _tabular("lrcrrrr", r"loss & $\beta$ & judge vs reference & length-controlled & words & fidelity & KL (nats)", rows)


def _arm_label(arm: str) -> str:
    names = {"base": "base", "reference": "reference (SFT on output)", "preferred_ft": "Preferred-FT (SFT on chosen)"}
    return names.get(arm, arm.replace("dpo_beta", "DPO $\\beta=") + "$" if arm.startswith("dpo_beta") else arm)


def _ci(v: dict, key: str = "rate", fmt: str = ".2f") -> str:
    return f"{v[key]:{fmt}} [{v['ci_low']:{fmt}}, {v['ci_high']:{fmt}}]"


def instruction_table(results: dict) -> str:
    """One row per arm of the instruction experiment: sampled KL to the reference, the preference judge's win
    rate against the reference (95% CI; range over refits), length-controlled, and against Preferred-FT."""
    rows = []
    for arm in results["arms"]:
        r = results["results"][arm]
        kl = f"{r['kl']['kl']:.2f} $\\pm$ {r['kl']['se']:.2f}"
        if arm == "reference":
            vs_ref = lc = spread = "--"
        else:
            v = r["judge_vs_reference"]
            vs_ref, lc = _ci(v), _ci(r["lc_vs_reference"])
            spread = f"{min(v['refit_rates']):.2f}--{max(v['refit_rates']):.2f}"
        vs_pft = _ci(r["judge_vs_preferred_ft"]) if "judge_vs_preferred_ft" in r else "--"
        rows.append(f"{_arm_label(arm)} & {kl} & {vs_ref} & {spread} & {lc} & {vs_pft} \\\\")
    return _tabular("lrcccc", r"arm & KL (nats) & judge vs reference & refits & length-controlled & judge vs Preferred-FT", rows)


def guard_table(results: dict) -> str:
    """Guard metrics per arm, with the chosen and rejected replies' base rates: rude and polite marker rates,
    words, content fidelity, and the Sentence-BERT similarity win rate (closeness to chosen vs rejected)."""
    base = results["instruments"]["marker_base_rates"]
    rows = [f"chosen replies (data) & {100 * base['rude']['chosen']:.0f}\\% & {100 * base['polite']['chosen']:.0f}\\% & -- & -- & -- \\\\",
            f"rejected replies (data) & {100 * base['rude']['rejected']:.0f}\\% & {100 * base['polite']['rejected']:.0f}\\% & -- & -- & -- \\\\"]
    for arm in results["arms"]:
        r = results["results"][arm]
        rows.append(f"{_arm_label(arm)} & {100 * r['rude_rate']:.0f}\\% & {100 * r['polite_rate']:.0f}\\% & {r['mean_words']:.1f} & "
                    f"{_ci(r['fidelity'], 'mean')} & {_ci(r['similarity_win_rate'])} \\\\")
    return _tabular("lrrrcc", r"replies & rude & polite & words & fidelity & similarity win rate", rows)


def judge_validation_table(results: dict) -> str:
    """The preference judge's validation: held-out pair accuracy (the positive control), relevance, refits,
    and each probe's rate of preferring the edited answer."""
    v = results["instruments"]["preference_judge"]
    rows = [f"chosen beats rejected (test pairs) & {_ci(v['test_pair_accuracy'])} \\\\"]
    rows += [f"\\quad {h.replace('_', ' ')} half & {a:.2f} \\\\" for h, a in v["test_pair_accuracy_by_half"].items()]
    rows.append(f"\\quad {v['refits']} bootstrap refits & {min(v['refit_test_pair_accuracy']):.2f}--{max(v['refit_test_pair_accuracy']):.2f} \\\\")
    rows.append(f"own chosen reply beats another prompt's & {_ci(v['relevance_accuracy'])} \\\\")
    names = {"canned_opener": "canned polite opener added", "rude_prefix": "rude prefix added", "rude_suffix": "rude suffix added",
             "duplicated": "answer written twice", "polite_off_topic": "polite reply to another prompt"}
    for key, name in names.items():
        rows.append(f"prefers: {name} & {_ci(v['probes'][key], 'prefers_edit')} \\\\")
    rows.append(f"correlation of reward with length & {v['probes']['reward_length_correlation']:+.2f} \\\\")
    return _tabular("lc", r"check (test split) & rate [95\% CI]", rows)


TABLES = {  # table file -> (the experiment whose results_<profile>.json it reads, how)
    "frontier_table.tex": ("frontier", frontier_table),
    "variants_table.tex": ("frontier", variants_table),
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
