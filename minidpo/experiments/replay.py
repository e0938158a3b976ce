"""Notebooks 05-10 without training: what a notebook reads when no trained run is present.

Each of those notebooks has one switch, `TRAIN`. A notebook that trains runs every stage of its experiment (or
reads it back from `runs/<profile>/`), which takes an hour or more per experiment on two CPU cores. With `TRAIN =
False`, no stage of the experiment under `runs/<profile>/` and a committed results file for the profile
(`results/<experiment>_<profile>.json`, written by the command it names), the notebook reads that file instead and
says so: the experiment's numbers, tables and figures it shows are the committed run's, and the cells that work
one step by hand run on the base model or on made-up numbers. A trained run, when present, is always used (a stage
it lacks is trained), and a profile without a committed results file (`smoke`, `gpu` until someone commits one)
always trains.

Outside a checkout (Colab, an installed package) the committed file of a profile in `COMMITTED_PROFILES` is the
repository's copy, downloaded once into the cache from `colab.REPOSITORY` (a fork changes that one line); a
download that fails for any reason but "no such file" stops with an error, so that nobody starts an hour of
training by accident."""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .. import colab
from ..plots import repository_root
from ..utils import cache_dir, read_json
from .runs import default_run_dir

# the profiles whose results files the repository commits (tests/test_replay.py checks this against results/): only
# these are looked for outside a clone, so an offline smoke run trains instead of failing to download
COMMITTED_PROFILES = ("cpu",)
# experiment -> (its folder under runs/<profile>/, the command that writes its results file)
EXPERIMENTS = {"instruction": ("instruction", "python -m minidpo run"),
               "frontier": ("frontier", "python -m minidpo frontier"),
               "variants": ("sentiment", "python -m minidpo variants"),
               "family": ("frontier", "python -m minidpo family")}


def results_file(experiment: str, profile_name: str, results_dir: str | Path | None = None) -> Path:
    """`results/<experiment>_<profile>.json` of the repository (or of `results_dir`)."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; one of {sorted(EXPERIMENTS)}")
    base = Path(results_dir) if results_dir is not None else (repository_root() or Path.cwd().resolve()) / "results"
    return base / f"{experiment}_{profile_name}.json"


def results_url(name: str) -> str:
    """The repository's committed copy of the results file `name` (raw file on its default branch)."""
    owner_repo = colab.REPOSITORY.removeprefix("https://github.com/")
    return f"https://raw.githubusercontent.com/{owner_repo}/{colab.BRANCH}/results/{name}"


def fetch_results(name: str, url: str | None = None) -> Path | None:
    """The committed results file `name` outside a checkout: the cached copy, else downloaded from `url` (default
    `results_url(name)`) into `$MINIDPO_CACHE/results/`. None when the repository has no such file (a profile
    without committed results); any other failure raises, naming the address."""
    cached = cache_dir() / "results" / name
    if cached.exists():
        return cached
    url = url or results_url(name)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        os.replace(tmp, cached)
    except urllib.error.URLError as e:  # HTTPError is one too
        if getattr(e, "code", None) == 404 or isinstance(e.reason, FileNotFoundError):  # (a file:// address)
            return None
        raise ConnectionError(f"fetching the committed results {url} failed ({e.reason}); clone the repository and "
                              f"open the notebook there, or set TRAIN = True to train") from None
    except (OSError, http.client.HTTPException) as e:  # a timeout or a connection cut mid-file
        raise ConnectionError(f"fetching the committed results {url} failed ({type(e).__name__}: {e}); clone the "
                              f"repository and open the notebook there, or set TRAIN = True to train") from None
    finally:
        tmp.unlink(missing_ok=True)  # nothing half-written is left to be trusted
    return cached


PREPARATION = ("lexicon_control",)  # stages that prepare an experiment (notebook 04 computes them), not a trained run


def trained_stages(run_dir: Path) -> int:
    """How many finished stages of a trained run a run folder holds (a stage is finished when its `stage.json` was
    written; the `PREPARATION` stages do not count, so reading notebook 04 first does not make 05-07 train)."""
    if not run_dir.is_dir():
        return 0
    return sum(1 for p in run_dir.rglob("stage.json") if p.relative_to(run_dir).parts[0] not in PREPARATION)


@dataclass(frozen=True)
class Source:
    """Where a notebook's numbers come from: its own stages (`train`), or a committed results file (`results`)."""

    experiment: str
    profile: str
    train: bool
    reason: str
    results: dict | None = None  # the committed results (JSON values) when not training

    def __str__(self) -> str:
        return self.reason


def source(profile_name: str, experiment: str, train: bool = False, run_dir: str | Path | None = None,
           results_dir: str | Path | None = None) -> Source:
    """Train (compute every stage, or read it back) or read the committed results, by the rule of the module's
    docstring; `reason` is the sentence a notebook prints."""
    path = results_file(experiment, profile_name, results_dir)
    folder, command = EXPERIMENTS[experiment]
    run = Path(run_dir) if run_dir is not None else default_run_dir(profile_name) / folder
    n_stages = trained_stages(run)
    cost = f"`MINIDPO_PROFILE={profile_name} {command}` trains the same stages from a shell"
    if train:
        return Source(experiment, profile_name, True, f"TRAIN = True: every stage is computed, or read back from "
                      f"runs/{profile_name}/{folder}/ when already trained ({cost}).")
    if n_stages:
        return Source(experiment, profile_name, True, f"a trained run is present ({n_stages} stages under "
                      f"runs/{profile_name}/{folder}/): its stages are read back, and any it lacks trained.")
    if results_dir is None and repository_root() is None and profile_name in COMMITTED_PROFILES:  # Colab, a package
        fetched = fetch_results(path.name)
        if fetched is None:  # the repository commits this profile's results: a wrong address, not a missing file
            raise FileNotFoundError(f"{results_url(path.name)} does not exist: is colab.REPOSITORY ({colab.REPOSITORY}"
                                    f", branch {colab.BRANCH}) this repository? Or set TRAIN = True to train")
        path = fetched
    if not path.exists():
        return Source(experiment, profile_name, True, f"no trained run and no committed results for the "
                      f"{profile_name!r} profile ({path.name}): training every stage ({cost}).")
    results = read_json(path)
    return Source(experiment, profile_name, False, f"no trained run is present, so this notebook reads the committed "
                  f"results/{path.name} (made by `{results.get('command', command)}`; model {results.get('model')}, "
                  f"seed {results.get('seed')}): the experiment's numbers, tables and figures below are that run's, "
                  f"while its worked examples (a step by hand, on the base model or on made-up numbers) compute "
                  f"here. Set TRAIN = True in this cell to train instead ({cost}).", results)
