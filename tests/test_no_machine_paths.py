"""Nothing committed names a folder of the machine that made it: results, notebook outputs, the report and the
bench store paths relative to the repository (or the run folder)."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# absolute paths as machines write them: POSIX homes and work/scratch roots, macOS, Windows drives, file URLs
ABSOLUTE = re.compile(
    # any absolute POSIX path of two or more components, except system places that name no machine's folders
    r"(?<![\w.~:/-])/(?!(?:proc|dev|sys|etc|bin|usr/bin|usr/share)/)[A-Za-z_][\w.+-]*/[\w.+-]+"
    r"|\b[A-Za-z]:\\\\?(?:Users|home)\b|file://"
)


def _texts():
    """(where, text) for every committed file the rule covers; notebook sources are code, only outputs count."""
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        nb = json.loads(path.read_text())
        for i, cell in enumerate(nb["cells"]):
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                text = "".join(out.get("text", "")) + "".join(out.get("traceback", [])) + str(out.get("evalue", ""))
                text += "".join(data.get("text/plain", "")) + "".join(data.get("text/html", ""))
                yield f"{path.relative_to(ROOT)} cell {i}", text
    for folder in ("results", "report", "bench", "figures"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in {".json", ".jsonl", ".tex", ".bib", ".md", ".py", ".txt", ".csv"}:
                yield str(path.relative_to(ROOT)), path.read_text(errors="replace")
    yield "README.md", (ROOT / "README.md").read_text()


def test_the_rule_finds_machine_paths():
    for text in ['"output_dir": "/work/main/runs/cpu/sft"', "loaded from /home/ana/minidpo/runs", "C:\\Users\\ana",
                 "/Users/ana/x", "/content/minidpo/figures", "/kaggle/working/runs", "/usr/lib/python3/site-packages/minidpo"]:
        assert ABSOLUTE.search(text), text
    for text in ["runs/cpu/sft", "log pi / pi_ref", "https://arxiv.org/abs/2305.18290", "~/.cache/minidpo", "1/2",
                 "/proc/self/statm", "/usr/bin/time -v", "rewards/chosen", "12.3 it/s"]:
        assert not ABSOLUTE.search(text), text


def test_no_absolute_machine_paths_in_committed_outputs():
    found = [f"{where}: {m.group(0)}" for where, text in _texts() for m in [ABSOLUTE.search(text)] if m]
    assert not found, "absolute machine paths (store them relative to the repository):\n" + "\n".join(found[:20])
