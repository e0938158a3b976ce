"""Run infrastructure shared by the experiments: run folders stamped with their configuration, one stage cache
(`cached_json` for computed results, `train_stage` for trained models), timing and peak memory, and results
files that are written atomically and name no folder of the machine that made them. Seeds come from
`minidpo.utils.derive_seed`, base models from `minidpo.models.load_model`."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch

from ..plots import repository_root
from ..utils import read_json, write_json


# ----------------------------------------------------------------------------- files


def portable_path(path: str | Path) -> str:
    """`path` relative to the repository root (the working directory outside a checkout) when it lies below it,
    else its last component only, so that results and notebook outputs name no folder of the machine that made
    them."""
    base = repository_root() or Path.cwd().resolve()
    try:
        return Path(path).resolve().relative_to(base).as_posix()
    except ValueError:
        return Path(path).name


def portable(obj):
    """A copy of a JSON-able results object with every absolute path string made `portable_path`."""
    if isinstance(obj, dict):
        return {k: portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v) for v in obj]
    if isinstance(obj, (str, Path)) and Path(obj).is_absolute():
        return portable_path(obj)
    return obj


def write_results(path: str | Path, results: dict) -> None:
    """A results file: JSON, paths made portable, written atomically."""
    write_json(path, portable(results))


def write_results_and_figures(path: str | Path, results: dict, draw: Callable[[dict], dict]) -> dict:
    """The results file, then the figures `draw(results)` makes from it, then the file again with their paths
    (written first so that a failed figure leaves the numbers saved)."""
    write_results(path, results)
    results["figures"] = {k: str(v) for k, v in draw(results).items()}
    write_results(path, results)
    return results


# ----------------------------------------------------------------------------- run folders


def default_run_dir(profile_name: str) -> Path:
    """`runs/<profile>` at the repository root when inside the repository (so notebooks, which run from
    notebooks/, share the CLI's trained stages), else under the working directory."""
    return (repository_root() or Path.cwd().resolve()) / "runs" / profile_name


def claim_run_dir(run_dir: str | Path | None, profile_name: str, config: dict, stamp_name: str, subdir: str = "") -> Path:
    """The folder for a run of `config`: `run_dir` if given, else `runs/<profile>[/subdir]`. Smoke runs are
    seconds of scratch work: their default folder is per configuration (`runs/smoke-<hash>`), so an old one
    never blocks a changed profile (tests, notebooks in CI); cpu/gpu runs are too costly to scatter. The folder
    is stamped with `config`, and one stamped with another configuration is refused: its cached stages are
    only valid for the configuration that made them."""
    if run_dir is None:
        key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
        run_dir = default_run_dir(profile_name if profile_name != "smoke" else f"smoke-{key}") / subdir
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp = run_dir / stamp_name
    if stamp.exists():
        old = json.loads(stamp.read_text())
        if old != config:
            changed = sorted(k for k in config if old.get(k) != config[k])
            raise ValueError(
                f"{portable_path(run_dir)} holds a run made with a different configuration (changed: {', '.join(changed)}); "
                f"resuming would mix the two. Use another --run-dir or delete {portable_path(run_dir)}."
            )
    write_json(stamp, config)
    return run_dir


def train_stage(name: str, run_dir: Path, train_fn, make_model, tokenizer, device: str) -> tuple[object, list[dict], bool]:
    """Train `make_model()` unless `run_dir/name/model` holds a finished result; return the model, its
    history and whether it was trained now (False: loaded from an earlier run, and make_model not called).
    Training itself resumes from its last checkpoint in `run_dir/name` after an interruption."""
    stage_dir = run_dir / name
    final = stage_dir / "model"
    if (final / "config.json").exists() and (stage_dir / "history.json").exists():
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).to(device)
        return model, json.loads((stage_dir / "history.json").read_text()), False
    model = make_model()
    history = train_fn(model)
    tmp = stage_dir / "model.tmp"
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(final)
    return model, history, True


def cached_json(path: str | Path, compute: Callable[[], object], indent: int | None = 1):
    """The stage cache for computed results: `path` read back if it exists, else `compute()` saved there
    atomically. An interrupted run recomputes only the stages whose file is missing."""
    path = Path(path)
    if path.exists():
        return read_json(path)
    out = compute()
    write_json(path, out, indent)
    return out


def last_metrics(history: list[dict], prefix: str = "") -> dict:
    """The last logged value of every metric (train ones, or eval ones with prefix='eval_')."""
    out: dict = {}
    for h in history:
        for k, v in h.items():
            if k.startswith(prefix) and (prefix or not k.startswith("eval_")):
                out[k] = v
    return out


# ----------------------------------------------------------------------------- time and memory


@contextmanager
def timed(run_dir: Path, name: str) -> Iterator["MemoryMonitor"]:
    """Measure a stage that computes (not one read back from the run folder): its wall time and peak memory go
    to `run_dir/timing.json` under `name`, so results name the compute of the run that made them. A training
    stage interrupted and resumed records the resumed part only."""
    with MemoryMonitor() as mon:
        yield mon
    path = Path(run_dir) / "timing.json"
    write_json(path, {**timings(run_dir), name: mon.as_dict()})


def timings(run_dir: Path) -> dict:
    """Every stage's measurement in `run_dir/timing.json` (seconds, peak and rise of resident memory)."""
    path = Path(run_dir) / "timing.json"
    return read_json(path) if path.exists() else {}


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class MemoryMonitor:
    """Wall time and peak resident memory (RSS) of this process while a block runs, sampled every 20 ms.

    `peak_gib` is the highest RSS seen; `rise_gib` that peak minus the RSS when the block started (what the
    block added on top of what was already loaded). Linux only; elsewhere both are None."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak_gib, self.rise_gib, self.seconds = interval, None, None, 0.0

    @staticmethod
    def _rss() -> int | None:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            return None

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self._rss()
            if rss is not None:
                self._peak = max(self._peak, rss)

    def __enter__(self):
        self._start = self._rss()
        self._peak = self._start or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._t0 = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.seconds = time.time() - self._t0
        if self._start is not None:
            self.peak_gib = max(self._peak, self._rss() or 0) / 2**30
            self.rise_gib = self.peak_gib - self._start / 2**30
        return False

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "peak_rss_gib": self.peak_gib, "rss_rise_gib": self.rise_gib}
