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
from dataclasses import dataclass
from pathlib import Path

ALLOWED_IMPORTS = {"torch", "math", "numpy", "random", "itertools", "functools", "collections", "typing", "copy",
                   "dataclasses", "statistics", "time", "matplotlib", "minidpo", "transformers", "tqdm"}
# names the distributed setup cell binds (it is ours and runs in the same session): a student's cell may not use them
SETUP_NAMES = {"sys", "os", "shutil", "subprocess", "importlib", "otter", "_setup", "REPOSITORY", "checks", "tests_dir"}
FORBIDDEN_NAMES = {"getattr", "setattr", "delattr", "vars", "globals", "locals", "eval", "exec", "compile", "open",
                   "__import__", "breakpoint", "get_ipython", "__builtins__", "register_loss", "forbid",
                   "answer_digest", *SETUP_NAMES}
FORBIDDEN_ATTRIBUTES = {"sys", "os", "builtins", "importlib", "subprocess", "ctypes", "gc", "inspect", "otter",
                        "grade", "setprofile", "settrace", "getprofile", "gettrace", "forbid", "answer_digest",
                        "register_loss", "f_globals", "f_locals", "f_back", "f_code", "f_builtins", "co_code",
                        "gi_frame", "cr_frame", "tb_frame", "multiprocessing", "threading", "concurrent", "load",
                        "loads", "fromfile", "tofile"}
ALLOWED_DUNDERS = {"__init__", "__call__", "__len__", "__getitem__", "__iter__", "__repr__", "__str__", "__name__",
                   "__main__", "__post_init__", "__eq__", "__hash__", "__lt__", "__version__"}
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


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _root(node: ast.AST) -> ast.AST:
    """The object an attribute / subscript chain starts from: `a` in `a.b[0].c` (a call's result is a new object,
    so the chain stops there)."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node


def _is_module(parent: str, name: str) -> bool:
    """Whether `from parent import name` binds a module (allowed libraries only). Found on the import path without
    importing anything: `find_spec` of a dotted name imports its parents (torch alone takes seconds)."""
    import importlib.util
    from importlib.machinery import PathFinder

    parts = f"{parent}.{name}".split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name is found, not imported
        for i in range(2, len(parts) + 1):
            if spec is None or spec.submodule_search_locations is None:  # not a package: no submodules
                return False
            spec = PathFinder.find_spec(".".join(parts[:i]), spec.submodule_search_locations)
        return spec is not None
    except (ImportError, ValueError, AttributeError):
        return False


def _refers(value: ast.AST, names: set[str]) -> bool:
    """Whether `value` is one of `names`, a chain of attributes or items from one (no call), or a collection
    holding one: what `x = value` or `for x in value` would make an alias of."""
    if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
        return any(_refers(v, names) for v in value.elts)
    root = _root(value)
    return isinstance(value, (ast.Name, ast.Attribute, ast.Subscript)) and isinstance(root, ast.Name) \
        and root.id in names


def module_aliases(sources: list[str], seed: set[str] = frozenset()) -> tuple[set[str], set[str]]:
    """(names bound by imports in `sources` -- modules and objects of a module --, the subset that are modules);
    names assigned from either, or looped over them, count too (`L = losses`, `for m in [LOSSES]`)."""
    names, modules = set(), {"grader"}  # otter's grader object: its checks are ours
    trees = [t for t in (_parse(s) for s in sources) if t is not None]
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bound = {(a.asname or a.name).split(".")[0] for a in node.names}
                names |= bound
                modules |= bound
            elif isinstance(node, ast.ImportFrom):
                for a in node.names:
                    names.add(a.asname or a.name)
                    if node.module and node.module.split(".")[0] in ALLOWED_IMPORTS and _is_module(node.module, a.name):
                        modules.add(a.asname or a.name)
    names |= modules | set(seed)
    for _ in range(3):  # aliases of aliases
        for tree in trees:
            for node in ast.walk(tree):
                value, targets = None, []
                if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
                    value, targets = node.value, getattr(node, "targets", None) or [node.target]
                elif isinstance(node, (ast.For, ast.comprehension)):
                    value, targets = node.iter, [node.target]
                if value is not None and _refers(value, names):
                    names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names, modules


class _Scan(ast.NodeVisitor):
    def __init__(self, names: set[str], modules: set[str]):
        self.names, self.modules, self.found, self.as_base = names, modules, [], set()

    def flag(self, node: ast.AST, what: str) -> None:
        self.found.append((getattr(node, "lineno", 0), what))

    def _from_module(self, node: ast.AST) -> bool:
        root = _root(node)
        return isinstance(root, ast.Name) and root.id in self.names

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._check_import(node, a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._check_import(node, node.module or "")
        for a in node.names:
            if (node.module or "").split(".")[0] == "minidpo" and a.name == "grade":
                self.flag(node, "imports the grader (minidpo.grade)")
            for name in {a.name, a.asname or a.name}:
                if name in FORBIDDEN_ATTRIBUTES | FORBIDDEN_NAMES or _private(name) or _dunder(name):
                    self.flag(node, f"imports the name `{name}`")

    def _check_import(self, node: ast.AST, module: str) -> None:
        parts = module.split(".")
        if parts[0] not in ALLOWED_IMPORTS:
            self.flag(node, f"imports `{module}` (the exercises need none of it)")
        elif parts[:2] == ["minidpo", "grade"] or module.startswith("minidpo.grade"):
            self.flag(node, "imports the grader (minidpo.grade)")
        elif any(p in FORBIDDEN_ATTRIBUTES or _private(p) for p in parts):
            self.flag(node, f"imports `{module}`")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES or _dunder(node.id):
            self.flag(node, f"uses `{node.id}`")
        elif node.id in self.modules and id(node) not in self.as_base:
            self.flag(node, f"uses the module `{node.id}` as a value (only `{node.id}.name` is needed)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in FORBIDDEN_ATTRIBUTES or _dunder(node.attr) or _private(node.attr):
            self.flag(node, f"uses the attribute `.{node.attr}`")
        if isinstance(node.value, ast.Name):
            self.as_base.add(id(node.value))
        self.generic_visit(node)

    def _visit_def(self, node) -> None:
        if node.name in FORBIDDEN_NAMES or _dunder(node.name):
            self.flag(node, f"defines `{node.name}`")
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_def

    def _check_targets(self, node: ast.AST, targets: list[ast.AST]) -> None:
        for t in targets:
            for sub in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t]):
                if isinstance(sub, (ast.Attribute, ast.Subscript)) and self._from_module(sub):
                    self.flag(node, f"changes `{ast.unparse(sub)}`, which belongs to an imported module")

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
        if isinstance(f, ast.Attribute) and f.attr in MUTATING_METHODS and self._from_module(f.value) \
                and not (isinstance(f.value, ast.Name) and f.value.id in self.modules):  # np.append: a function
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


def scan_source(source: str, names: set[str] = frozenset(), modules: set[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, what) for each finding in one cell's source; `names`/`modules`: what imports elsewhere in the notebook
    bound (an assignment to `losses.x` changes a module even when `losses` was imported in our cell)."""
    tree = _parse(source)
    if tree is None:  # the kernel would raise on it too: it cannot patch anything
        return []
    own_names, own_modules = module_aliases([source], set(names))
    visitor = _Scan(set(names) | own_names, set(modules) | own_modules)
    visitor.visit(tree)
    return sorted(set(visitor.found))


def _code_cells(notebook: Path) -> list[tuple[int, str]]:
    """The code cells as the kernel will see them: read as nbformat 4 (otter upgrades older notebooks too)."""
    import nbformat

    nb = nbformat.reads(Path(notebook).read_text(), as_version=4)
    return [(i, c.source if isinstance(c.get("source"), str) else str(c.get("source", "")))
            for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]


def scan_submission(submission: Path, distributed: Path) -> list[Finding]:
    """The findings in every code cell of `submission` that is not, word for word, a code cell of the
    `distributed` student version (ours, trusted)."""
    ours = {src.strip() for _, src in _code_cells(distributed)}
    cells = _code_cells(submission)
    names, modules = module_aliases([src for _, src in cells])
    return [Finding(i, line, what) for i, src in cells if src.strip() not in ours
            for line, what in scan_source(src, names, modules)]
