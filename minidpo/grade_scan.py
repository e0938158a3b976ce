"""What a submission may not do: a static scan of the code a student wrote, run by the grader before it executes
anything.

Otter runs the hidden tests inside the student's own Python session, so code in a submission could replace what
grades it: patch otter's test runner, swap `minidpo.grade.forbid` for a no-op or `answer_digest` for a
match-anything, turn off the profiler `forbid` relies on, rewrite the reference implementation a hidden test
compares against (`minidpo.losses.dpo_loss = mine`), or edit the test files on disk from a shell line. None of
that is needed to answer an exercise, so the grader refuses it: every code cell the student changed or added (a
cell identical to one of the distributed student version is ours) is parsed, IPython's `!` and `%` lines
included, and any of the following is a *finding*; a submission with one scores 0, the findings named in the
report and the CSV.

    imports      anything but the libraries the exercises use (torch, math, numpy, ..., minidpo but not
                 minidpo.grade); `import sys`, `os`, `importlib`, `otter`, `subprocess`, `ctypes`, ... are refused
    names        reflection and escape hatches: getattr / setattr / vars / globals / eval / exec / compile /
                 __import__ / open / get_ipython (what `!cmd` and `%magic` become), dunder names and attributes
                 (`__code__`, `__globals__`, `__dict__`, `__subclasses__`, ...) except the few a class needs
    attributes   reaching the interpreter through a module (`torch.serialization.sys`), the profiler
                 (`setprofile`, `settrace`), frames and code objects, the grader (`forbid`, `answer_digest`)
    changes      assigning to, deleting or mutating (`.update`, `.pop`, ...) anything reached from an imported
                 module: the hidden tests compare against those modules

A scan is conservative by design: a finding is shown to the teacher with its cell and line, so an honest
false positive is easy to see and to regrade by hand. `forbid` itself also fails when, inside its block, the
student's code calls `sys.setprofile` or `sys.settrace` (the run-time half of the same guard).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

ALLOWED_IMPORTS = {"torch", "math", "numpy", "random", "itertools", "functools", "collections", "typing", "copy",
                   "dataclasses", "statistics", "time", "matplotlib", "minidpo", "transformers", "tqdm"}
FORBIDDEN_NAMES = {"getattr", "setattr", "delattr", "vars", "globals", "locals", "eval", "exec", "compile", "open",
                   "__import__", "breakpoint", "get_ipython", "__builtins__", "register_loss", "forbid",
                   "answer_digest"}
FORBIDDEN_ATTRIBUTES = {"sys", "os", "builtins", "importlib", "subprocess", "ctypes", "gc", "inspect", "otter",
                        "grade", "setprofile", "settrace", "getprofile", "gettrace", "forbid", "answer_digest",
                        "register_loss", "f_globals", "f_locals", "f_back", "f_code", "f_builtins", "co_code",
                        "gi_frame", "cr_frame", "tb_frame"}
ALLOWED_DUNDERS = {"__init__", "__call__", "__len__", "__getitem__", "__iter__", "__repr__", "__str__", "__name__",
                   "__main__", "__post_init__", "__eq__", "__hash__", "__lt__"}
MUTATING_METHODS = {"update", "pop", "popitem", "clear", "setdefault", "append", "extend", "insert", "remove",
                    "__setitem__", "__delitem__", "register", "register_forward_hook", "register_forward_pre_hook"}


@dataclass(frozen=True)
class Finding:
    cell: int  # the code cell's position among the notebook's cells
    line: int
    what: str

    def __str__(self) -> str:
        return f"cell {self.cell}, line {self.line}: {self.what}"


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDERS


def _root(node: ast.AST) -> ast.AST:
    """The innermost object of an attribute / subscript / call chain: `a` in `a.b[0].c()`."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def module_aliases(sources: list[str]) -> set[str]:
    """The names that `import` statements in `sources` bind to modules (or to objects of a module)."""
    names: set[str] = set()
    for source in sources:
        for node in ast.walk(_parse(source) or ast.Module(body=[], type_ignores=[])):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


class _Scan(ast.NodeVisitor):
    def __init__(self, modules: set[str]):
        self.modules, self.found = modules, []

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append((getattr(node, "lineno", 0), what))

    def _from_module(self, node: ast.AST) -> bool:
        root = _root(node)
        return isinstance(root, ast.Name) and root.id in self.modules

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._check_import(node, a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._check_import(node, node.module or "")
        for a in node.names:
            if (node.module or "").split(".")[0] == "minidpo" and a.name == "grade":
                self.flag(node, "imports the grader (minidpo.grade)")

    def _check_import(self, node: ast.AST, module: str) -> None:
        root = module.split(".")[0]
        if root not in ALLOWED_IMPORTS:
            self.flag(node, f"imports `{module}` (the exercises need none of it)")
        elif module.split(".")[:2] == ["minidpo", "grade"] or module.startswith("minidpo.grade"):
            self.flag(node, "imports the grader (minidpo.grade)")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES or _dunder(node.id):
            self.flag(node, f"uses `{node.id}`")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in FORBIDDEN_ATTRIBUTES or _dunder(node.attr):
            self.flag(node, f"uses the attribute `.{node.attr}`")
        self.generic_visit(node)

    def _check_targets(self, node: ast.AST, targets: list[ast.AST]) -> None:
        for t in targets:
            for sub in ast.walk(t):
                if isinstance(sub, (ast.Attribute, ast.Subscript)) and self._from_module(sub):
                    self.flag(node, f"changes `{ast.unparse(sub)}`, which belongs to an imported module")
                    break

    def visit_Assign(self, node: ast.Assign) -> None:
        self._check_targets(node, node.targets)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_targets(node, [node.target])
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_targets(node, [node.target])
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        self._check_targets(node, node.targets)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr in MUTATING_METHODS and self._from_module(f.value):
            self.flag(node, f"changes `{ast.unparse(f.value)}` (`.{f.attr}`), which belongs to an imported module")
        self.generic_visit(node)


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(python_source(source))
    except SyntaxError:
        return None


def python_source(cell: str) -> str:
    """A cell as the kernel runs it: IPython turns `!cmd` and `%magic` lines into calls of `get_ipython()`."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(cell)


def scan_source(source: str, modules: set[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, what) for each finding in one cell's source; `modules`: names bound to imported modules elsewhere
    in the notebook (an assignment to `losses.x` changes a module even when `losses` was imported in our cell)."""
    tree = _parse(source)
    if tree is None:  # the kernel would raise on it too: it cannot patch anything
        return []
    visitor = _Scan(set(modules) | module_aliases([source]))
    visitor.visit(tree)
    return sorted(set(visitor.found))


def _code_cells(notebook: Path) -> list[tuple[int, str]]:
    cells = json.loads(Path(notebook).read_text()).get("cells", [])
    return [(i, "".join(c.get("source", ""))) for i, c in enumerate(cells) if c.get("cell_type") == "code"]


def scan_submission(submission: Path, distributed: Path) -> list[Finding]:
    """The findings in every code cell of `submission` that is not, word for word, a code cell of the
    `distributed` student version (ours, trusted)."""
    ours = {src.strip() for _, src in _code_cells(distributed)}
    cells = _code_cells(submission)
    modules = module_aliases([src for _, src in cells])
    return [Finding(i, line, what) for i, src in cells if src.strip() not in ours
            for line, what in scan_source(src, modules)]
