"""Build report/minidpo.pdf: `python -m minidpo report --pdf`.

The build writes the numbers and tables (`report.generate`), then `report/generated/build.tex` (not committed),
which names the commit the PDF is built from (`git describe --always --dirty`), so the title page's "how to cite"
block carries the version (`minidpo.__version__`, written by `generate`) and the commit. It runs latexmk and
fails on a LaTeX error, an undefined reference or citation, or a line or table wider than the text by more than
`OVERFULL_PT` points (what a reader sees as text running into the margin)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .report import generate, report_dir, write_text

OVERFULL_PT = 3.0  # a box this much wider than the text is visible in print; microtype leaves smaller ones
LOG_PROBLEMS = re.compile(r"(LaTeX Warning: (Reference|Citation) .* undefined|There were undefined references"
                          r"|Citation .* undefined|^! )", re.M)
OVERFULL = re.compile(r"^Overfull \\hbox \(([0-9.]+)pt too wide\)(.*)$", re.M)


def overfull_boxes(log: str, limit: float = OVERFULL_PT) -> list[str]:
    """The log's overfull-hbox warnings wider than `limit` points, each with where LaTeX says it is."""
    return [f"{float(pt):.1f}pt too wide{where}" for pt, where in OVERFULL.findall(log) if float(pt) > limit]


def commit_of(folder: Path) -> str:
    """The commit of the checkout holding `folder` (`git describe --always --dirty --abbrev=12`), "... with
    uncommitted changes" when its tree differs from that commit, "unknown" outside a checkout. Build the PDF you
    commit from a clean tree, so its title page names the commit that holds its sources."""
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=folder,
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    commit = done.stdout.strip()
    if done.returncode != 0 or not commit:
        return "unknown"
    return commit.removesuffix("-dirty") + " with uncommitted changes" if commit.endswith("-dirty") else commit


def build_pdf(root: Path | None = None, profile: str = "cpu") -> Path:
    """latexmk -> report/minidpo.pdf; raise if LaTeX failed, left references or citations undefined, or set a
    box more than `OVERFULL_PT` wider than the text."""
    report = report_dir(root)
    if shutil.which("latexmk") is None:
        raise FileNotFoundError("latexmk is not installed "
                                "(Debian: apt-get install latexmk texlive-latex-recommended texlive-science)")
    generate(root, profile)
    write_text(report / "generated" / "build.tex",
               "% written by `python -m minidpo report --pdf`; not committed\n"
               f"\\def\\minidpocommit{{{commit_of(report)}}}\n")
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-jobname=minidpo", "main.tex"]
    done = subprocess.run(cmd, cwd=report, capture_output=True, text=True)
    log = (report / "minidpo.log").read_text(errors="replace") if (report / "minidpo.log").exists() else done.stdout
    problems = LOG_PROBLEMS.findall(log) + overfull_boxes(log)
    if done.returncode != 0 or problems:
        tail = "\n".join(log.splitlines()[-40:])
        raise RuntimeError(f"LaTeX build failed (exit {done.returncode}; problems: {problems[:10]}):\n{tail}")
    return report / "minidpo.pdf"
