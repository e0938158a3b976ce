"""Notebooks 05-10 open from the committed results when no trained run is present (`experiments.replay`).

The rule is tested on planted folders (each test names the mutation it catches); the notebooks themselves are
executed on the `cpu` profile from a copy of the repository with no `runs/`: they must finish without error,
print that they read the committed results, and leave no stage behind (a stage would make the next opening train).
"""

import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from minidpo.experiments import replay
from minidpo.experiments.replay import COMMITTED_PROFILES, EXPERIMENTS, fetch_results, results_file, source

ROOT = Path(__file__).resolve().parents[1]


def _results(folder: Path, experiment: str, profile: str = "cpu") -> Path:
    path = results_file(experiment, profile, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": "planted", "model": "m", "seed": 3, "marker": experiment}))
    return path


def _stage(run_dir: Path, name: str = "sft") -> None:
    (run_dir / name).mkdir(parents=True, exist_ok=True)
    (run_dir / name / "stage.json").write_text("{}")


def test_committed_results_are_read_when_no_stage_is_present(tmp_path):
    """Mutation caught: replay never taken (always train), or the wrong experiment's file read."""
    for experiment in EXPERIMENTS:
        _results(tmp_path / "results", experiment)
        s = source("cpu", experiment, run_dir=tmp_path / "runs" / experiment, results_dir=tmp_path / "results")
        assert not s.train and s.results["marker"] == experiment
        assert "TRAIN = True" in str(s) and "planted" in str(s)


def test_the_switch_trains_even_with_committed_results(tmp_path):
    """Mutation caught: `train=True` ignored when a results file exists."""
    _results(tmp_path / "results", "frontier")
    s = source("cpu", "frontier", train=True, run_dir=tmp_path / "runs", results_dir=tmp_path / "results")
    assert s.train and s.results is None and "TRAIN = True" in str(s)


def test_a_trained_run_is_used_when_present(tmp_path):
    """Mutation caught: a run folder holding finished stages ignored in favour of the committed file; an
    unfinished stage (a folder without stage.json), or notebook 04's lexicon control, counted as trained (05-07
    would train for an hour after 04 was read)."""
    _results(tmp_path / "results", "instruction")
    run = tmp_path / "runs"
    (run / "reference" / "1").mkdir(parents=True)  # interrupted: no stage.json, so not a trained run
    _stage(run, "lexicon_control/base_replies")  # notebook 04's preparation: not a trained run either
    assert not source("cpu", "instruction", run_dir=run, results_dir=tmp_path / "results").train
    _stage(run, "reference/1")
    _stage(run, "reference_logps")
    s = source("cpu", "instruction", run_dir=run, results_dir=tmp_path / "results")
    assert s.train and s.results is None and "2 stages" in str(s)


def test_a_profile_without_committed_results_trains(tmp_path):
    """Mutation caught: a missing results file read (crash) instead of training, e.g. on the smoke profile."""
    s = source("smoke", "variants", run_dir=tmp_path / "runs", results_dir=tmp_path / "results")
    assert s.train and "variants_smoke.json" in str(s)
    with pytest.raises(ValueError, match="unknown experiment"):
        source("cpu", "sentiment", results_dir=tmp_path)


def test_outside_a_checkout_the_repository_copy_is_fetched_once(tmp_path, monkeypatch):
    """Colab or an installed package: no results/ beside the notebook, so the repository's copy is downloaded
    into the cache (here from a file:// address standing in for GitHub). Mutations caught: the fetch skipped
    (the notebook would train for an hour), fetched again when cached, a profile without committed results taken
    for an error, or a committed profile's missing file (a wrong REPOSITORY) taken for "train"."""
    remote = tmp_path / "remote"
    committed = _results(remote, "family")
    monkeypatch.setenv("MINIDPO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(replay, "results_url", lambda name: (remote / name).as_uri())
    monkeypatch.chdir(tmp_path)  # not a checkout
    s = source("cpu", "family", run_dir=tmp_path / "runs")
    assert not s.train and s.results["marker"] == "family"
    assert (tmp_path / "cache" / "results" / committed.name).read_text() == committed.read_text()
    committed.unlink()  # the cached copy is used from now on
    assert not source("cpu", "family", run_dir=tmp_path / "runs").train
    assert source("smoke", "family", run_dir=tmp_path / "runs").train  # the repository has no smoke results
    assert fetch_results("nothing.json", (remote / "nothing.json").as_uri()) is None
    with pytest.raises(FileNotFoundError, match="REPOSITORY"):  # cpu results are committed: a wrong address
        source("cpu", "frontier", run_dir=tmp_path / "runs")


def test_committed_profiles_are_the_results_folder_s(tmp_path, monkeypatch):
    """Outside a clone only these profiles are downloaded. Mutations caught: a profile committed to results/ but
    not listed (Colab would train for an hour), or one listed without files; an offline smoke run that tries the
    network (it must train)."""
    committed = {p.stem.rsplit("_", 1)[1] for p in (ROOT / "results").glob("*_*.json")
                 if p.stem.rsplit("_", 1)[0] in EXPERIMENTS}
    assert committed == set(COMMITTED_PROFILES)
    monkeypatch.chdir(tmp_path)  # not a checkout
    monkeypatch.setattr(replay, "fetch_results", lambda *a: pytest.fail("smoke has nothing to download"))
    assert source("smoke", "instruction", run_dir=tmp_path / "runs").train


def test_a_failed_download_stops_loudly(tmp_path, monkeypatch):
    """Mutation caught: a network failure read as "no committed results", which silently starts training."""
    monkeypatch.setenv("MINIDPO_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConnectionError, match="TRAIN = True"):
        fetch_results("frontier_cpu.json", "http://127.0.0.1:9/results/frontier_cpu.json")  # nothing listens there
    assert not list((tmp_path / "cache").rglob("*.json*"))  # nothing half-written left to be trusted


REPLAYED = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if "05" <= p.name[:2] <= "10")


@pytest.fixture(scope="module")
def bare_checkout(tmp_path_factory):
    """The repository's notebooks and committed results without any `runs/`: what a fresh clone holds."""
    root = tmp_path_factory.mktemp("clone")
    (root / "minidpo").symlink_to(ROOT / "minidpo", target_is_directory=True)
    shutil.copy(ROOT / "pyproject.toml", root)
    shutil.copytree(ROOT / "results", root / "results")
    (root / "notebooks").mkdir()
    for nb in REPLAYED:
        shutil.copy(nb, root / "notebooks")
    return root


@pytest.mark.parametrize("path", REPLAYED, ids=[p.stem for p in REPLAYED])
def test_notebook_opens_from_committed_results_without_training(path, bare_checkout, monkeypatch):
    """Each of notebooks 05-10 on the cpu profile in a clone with no trained run: runs to the end in minutes,
    says it reads the committed results, and computes no stage."""
    monkeypatch.setenv("MINIDPO_PROFILE", "cpu")
    monkeypatch.setenv("MINIDPO_FIGURES_DIR", str(bare_checkout / "figures"))
    nb = nbformat.read(bare_checkout / "notebooks" / path.name, as_version=4)
    t = time.time()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(bare_checkout / "notebooks")}}).execute()
    seconds = time.time() - t
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert "reads the committed results/" in text
    stages = list((bare_checkout / "runs").rglob("stage.json")) if (bare_checkout / "runs").exists() else []
    assert not stages, f"{path.name} computed stages while reading committed results: {stages}"
    assert seconds < 300, f"{path.name} took {seconds:.0f} s to open"
