"""A grader the student's code cannot subvert (issue 31, item 1).

Otter runs the hidden tests in the student's own Python session. The attacks a review found, and their
relatives, each planted in a submission here:

    attack (planted in a submission)                                   caught by
    patch otter's test runner so every test passes                     scan: imports `otter`
    swap minidpo.grade.forbid / answer_digest for a no-op / match-all  scan: imports or reaches `minidpo.grade`
    the same through __import__, getattr, builtins, importlib          scan: reflection names
    edit the test files from a shell line (`!sed ...`)                 scan: `!` lines become get_ipython()
    rewrite the reference a hidden test compares with                  scan: assignment into an imported module
    (`losses.dpo_loss = mine`, `LOSSES.update(...)`)
    reach sys through a module attribute (`torch.serialization.sys`)   scan: the `.sys` attribute
    turn off forbid's profiler inside the student's function           forbid: sees the sys.setprofile call

Mutations caught: a scan that skips changed cells, misses IPython's shell lines, allows `import otter`, or trusts
`minidpo.grade`; a grader that runs a flagged submission, or reports it without the reason; a `forbid` that
does not notice its profiler being removed. The false-positive guard: no solution and no blank is flagged.
"""

import csv
import json
import shutil
import sys

import pytest
import torch

from minidpo import grade, preference
from minidpo.grade_scan import scan_source, scan_submission

ATTACKS = {
    "otter runner": "from otter.test_files import exception_test\n"
                    "exception_test.test_case.call_func = lambda self, env: None\n",
    "grader module": "import minidpo.grade as g\nimport contextlib\n"
                     "g.forbid = lambda *a, **k: contextlib.nullcontext()\ng.answer_digest = lambda a: 'x'\n",
    "grader attribute": "import minidpo\nminidpo.grade.answer_digest = lambda a: 'ca978112ca1b'\n",
    "from-import of the grader": "from minidpo import grade\n",
    "__import__": "m = __import__('ot' + 'ter')\n",
    "getattr on builtins": "f = getattr(__builtins__, '__im' + 'port__')\n",
    "importlib": "import importlib\nm = importlib.import_module('otter')\n",
    "shell line": "!sed -i 's/assert/pass #/' tests/*.py\n",
    "line magic": "%run -i patch.py\n",
    "reference rewritten": "import minidpo.losses as L\nL.dpo_loss = lambda *a, **k: 0\n",
    "registry mutated": "from minidpo.losses import LOSSES\nLOSSES.update(sigmoid=lambda *a: 0)\n",
    "module reached": "import torch\ntorch.serialization.sys.setprofile(None)\n",
    "code object": "def f(x):\n    return x\nf.__code__ = (lambda x: 0).__code__\n",
    "exec": "exec('imp' + 'ort otter')\n",
}


# attacks through what the distributed cells bind (the setup cell's sys/os/_setup, the exercise's imports):
# each is planted after the notebook's own cells, so the scan sees the notebook's real names (a review's bypasses)
IN_NOTEBOOK = {
    "sys.modules from the setup cell": 'm = sys.modules["otter.test_files.exception_test"]\n'
                                       "m.test_case.call_func = lambda self, env: None\n",
    "the setup cell's _setup": '_setup("sed", "-i", "s/assert /pass  # /", "tests/q1.py")\n',
    "os from the setup cell": 'os.system("true")\n',
    "a module under another name": "t = torch\nt.allclose = lambda *a, **k: True\n",
    "a module passed to a function": "def p(m):\n    m.allclose = None\np(torch)\n",
    "a module in a loop": "for m in [torch]:\n    m.allclose = None\n",
    "a private name from an allowed library": "from random import _os as o\no.system('true')\n",
    "a name the grader uses, defined": "class G:\n    def forbid(self):\n        pass\n",
    "threads": "from tqdm.contrib.concurrent import thread_map\n",
    "pickle through torch.load": "x = torch.load('p.pt', weights_only=False)\n",
}
HONEST = ("x = torch.zeros(3)\nx[torch.argmax(x)] = 1\nm = torch.zeros(3, 3)\nm[torch.arange(3), torch.arange(3)] = 0\n"
          "counts = [0, 0, 0]\ncounts[int(torch.argmax(x))] += 1\ny = torch.zeros(2) + 1\ny[0] = 2\n"
          "print(torch.__version__)\ngrader.check('q1_bradley_terry_prob')\n")


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_each_attack_is_a_finding(name):
    assert scan_source(ATTACKS[name]), f"the scan let through: {name}"


@pytest.mark.parametrize("name", sorted(IN_NOTEBOOK))
def test_attacks_through_the_notebooks_own_names_are_findings(built, tmp_path, name):
    attack = _with_cell(grade.STUDENTS / "01_bradley_terry.ipynb", "import torch\n" + IN_NOTEBOOK[name], tmp_path)
    assert scan_submission(attack, built["01_bradley_terry"]["student"]), f"the scan let through: {name}"


def test_honest_indexing_and_checks_in_a_notebook_are_not_findings(built, tmp_path):
    honest = _with_cell(grade.STUDENTS / "01_bradley_terry.ipynb", "import torch\n" + HONEST, tmp_path)
    assert scan_submission(honest, built["01_bradley_terry"]["student"]) == []


def test_an_old_format_notebook_is_scanned_as_the_kernel_runs_it(built, tmp_path):
    """nbformat 3 keeps cells under `worksheets`: otter upgrades and runs them, so the scan must read them too."""
    import nbformat

    attack = _with_cell(grade.STUDENTS / "01_bradley_terry.ipynb", ATTACKS["otter runner"], tmp_path)
    v3 = tmp_path / "v3.ipynb"
    v3.write_text(nbformat.writes(nbformat.convert(nbformat.read(attack, as_version=4), 3)))
    assert '"worksheets"' in v3.read_text()
    assert scan_submission(v3, built["01_bradley_terry"]["student"])


def test_a_master_handed_in_is_not_graded_by_its_own_key(built, tmp_path):
    """A student's own master (hidden tests `assert True`) would grade itself: in a class folder it is a row with an
    error and no points, and given alone it is refused unless it sits in the masters folder."""
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(grade.MASTERS / "01_bradley_terry.ipynb", folder / "mine.ipynb")
    reports = grade.grade_folder(folder, tmp_path / "grades.csv")
    assert reports[0]["total"] == 0 and "a master, not a submission" in reports[0]["error"]
    with pytest.raises(ValueError, match="outside the masters folder"):
        grade.grade(folder / "mine.ipynb", time_limit_s=None)


def test_honest_code_is_not_a_finding():  # noqa: D103
    honest = ("import torch\nimport torch.nn.functional as F\nimport math, copy\nfrom minidpo.batching import "
              "collate_sft\n\ndef my_loss(a, b, beta):\n    h = beta * (a - b)\n    out = -F.logsigmoid(h)\n"
              "    scores = {}\n    scores['x'] = out.mean()\n    policy = copy.deepcopy(a)\n    return out\n"
              "class Step:\n    def __init__(self, beta):\n        self.beta = beta\n")
    assert scan_source(honest) == []


def test_no_solution_and_no_blank_is_flagged(built):
    for name, paths in built.items():
        assert scan_submission(paths["solution"], paths["student"]) == [], name
        assert scan_submission(grade.STUDENTS / f"{name}.ipynb", paths["student"]) == [], name


def _with_cell(notebook, source, tmp_path, name="attack.ipynb"):
    nb = json.loads(notebook.read_text())
    first_code = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
    nb["cells"].insert(first_code + 1, {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                                        "source": source.splitlines(keepends=True)})
    path = tmp_path / name
    path.write_text(json.dumps(nb))
    return path


def test_a_patched_runner_scores_zero_with_the_reason_and_would_have_scored_full(built, tmp_path, monkeypatch):
    """The review's attack on a *blank* notebook 03: with the scan, 0 and the finding in the report and the CSV;
    with the scan switched off (the mutation), the same file takes every point, so the attack is real."""
    blank = grade.STUDENTS / "03_dpo_objective.ipynb"
    attack = _with_cell(blank, ATTACKS["otter runner"], tmp_path)
    report = grade.grade(attack, time_limit_s=None)
    assert report["total"] == 0 and report["scores"] == {}
    assert report["error"].startswith("refused, scored 0") and "imports `otter" in report["error"]
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(attack, folder / "attack.ipynb")
    grade.grade_folder(folder, tmp_path / "grades.csv")
    row = next(csv.DictReader(open(tmp_path / "grades.csv")))
    assert float(row["total"]) == 0 and "imports `otter" in row["error"]
    monkeypatch.setattr(grade, "scan_submission", lambda *a: [])
    unguarded = grade.grade(attack, time_limit_s=None)
    assert unguarded["total"] == unguarded["possible"] > 0  # what the attack got before the scan


def test_swapped_grader_functions_in_06_score_zero(built, tmp_path):
    """The review's second attack: forbid a no-op and answer_digest a match-all, then call DPOStep and answer the
    choice questions wrongly. Refused before it runs."""
    nb = json.loads(built["06_dpo_training"]["solution"].read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "code" and "def my_dpo_step" in src:
            cell["source"] = ["from minidpo.train import DPOConfig, DPOStep\n",
                              "def my_dpo_step(policy, ref_model, batch, beta, optimizer):\n",
                              "    return DPOStep(DPOConfig(beta=beta), ref_model)(policy, batch, optimizer)\n"]
        if cell["cell_type"] == "code" and src.startswith("displacement_answer"):
            cell["source"] = ['displacement_answer = "d"\n']
    cheat = tmp_path / "cheat.ipynb"
    cheat.write_text(json.dumps(nb))
    tampered = _with_cell(cheat, ATTACKS["grader module"], tmp_path, "tampered.ipynb")
    r = grade.grade(tampered)
    assert r["total"] == 0 and r["scores"] == {} and any("minidpo.grade" in f for f in r["flagged"])
    assert grade.main([str(tampered), "--time-limit", "120"]) == 1


def test_forbid_sees_its_profiler_turned_off():
    """Run-time half of the guard: inside a forbid block, code that removes the profiler (and puts it back) to
    call the forbidden function unseen still fails, and the profiler in place before the block is restored."""
    def sneaky(a, b):
        watcher = sys.getprofile()
        sys.setprofile(None)
        out = preference.bradley_terry_prob(a, b)
        sys.setprofile(watcher)
        return out

    before = sys.getprofile()
    with pytest.raises(AssertionError, match="turns off the grader's check"):
        with grade.forbid(preference.bradley_terry_prob):
            sneaky(torch.tensor(1.0), torch.tensor(0.0))
    assert sys.getprofile() is before
    with grade.forbid(preference.bradley_terry_prob):  # honest code inside the block is untouched
        torch.sigmoid(torch.tensor(1.0))


def test_scan_only_lists_the_refused_submissions_of_a_folder(built, tmp_path, capsys):
    """For grades made elsewhere (Gradescope runs otter without the scan): `--folder F --scan-only` names each
    refused submission and its finding, runs nothing, and exits 1 when any is refused."""
    folder = tmp_path / "export"
    (folder / "bo").mkdir(parents=True)
    shutil.copy(built["01_bradley_terry"]["solution"], folder / "ana.ipynb")
    shutil.copy(_with_cell(grade.STUDENTS / "01_bradley_terry.ipynb", ATTACKS["shell line"], tmp_path),
                folder / "bo" / "attack.ipynb")
    assert grade.main(["--folder", str(folder), "--scan-only"]) == 1
    out = capsys.readouterr().out
    assert "bo/attack.ipynb: cell" in out and "get_ipython" in out and "ana.ipynb" not in out
    assert "1 submission(s) refused" in out


def test_forbid_watches_threads_started_inside_it():
    """A thread pool inside the block runs the forbidden function on another thread: still caught (a review's
    bypass through tqdm's thread_map, when forbid watched only the calling thread)."""
    from concurrent.futures import ThreadPoolExecutor

    with pytest.raises(AssertionError, match="bradley_terry_prob"):
        with grade.forbid(preference.bradley_terry_prob):
            with ThreadPoolExecutor(1) as pool:
                list(pool.map(lambda a: preference.bradley_terry_prob(a, torch.tensor(0.0)), [torch.tensor(1.0)]))


def test_from_imports_of_modules_are_found_without_importing_them():
    """`from parent import name` binds a module exactly when `importlib.util.find_spec` says so (the reference),
    found without importing: a fresh interpreter classifies these without torch or transformers ending up in
    sys.modules. Mutations caught: a plain `find_spec` of the dotted name (imports torch: seconds per submission),
    a walk that stops at the top-level package (`torch.nn.functional` read as no module), a module (not a
    package) treated as having submodules."""
    import subprocess

    pairs = [("torch", "nn"), ("torch.nn", "functional"), ("torch", "randn"), ("torch.optim", "lr_scheduler"),
             ("collections", "abc"), ("typing", "List"), ("minidpo", "losses"), ("minidpo", "nosuch"),
             ("minidpo.experiments", "instruction"), ("minidpo.losses", "dpo_loss"), ("transformers", "AutoModel"),
             ("transformers", "modeling_utils"), ("matplotlib", "pyplot"), ("numpy", "random"), ("numpy", "array")]
    code = ("import json, sys\nfrom minidpo.grade_scan import _is_module\n"
            f"found = [_is_module(p, n) for p, n in {pairs!r}]\n"
            "print(json.dumps([found, 'torch' in sys.modules or 'transformers' in sys.modules]))")
    found, imported = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                check=True).stdout)
    assert not imported

    def reference(parent, name):
        import importlib.util

        try:
            return importlib.util.find_spec(f"{parent}.{name}") is not None
        except (ImportError, ValueError, AttributeError):
            return False

    assert found == [reference(p, n) for p, n in pairs]
    assert found[:4] == [True, True, False, True]
