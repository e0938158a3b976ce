"""Run infrastructure shared by the experiments, each thing done one way:

- `Run.stage(name, compute, key)`: the one stage cache. A stage's output lives in `runs/<profile>/.../<name>/`
  with a `stage.json` recording the key it was computed for (the plan entries it depends on) and the time and
  memory it took; a stage is read back when its key matches, else recomputed. Resume is per stage (and, inside
  a training stage, from its last checkpoint).
- `Run.compute_s()`: the one compute rule, the sum of the measured seconds of the stages an invocation used.
- `to_json`: the one serialiser of typed results (dataclasses, intervals, comparisons with their verdicts)
  into results files, which are written atomically and name no folder of the machine that made them.

Seeds come from `minidpo.utils.derive_seed`, base models from `minidpo.models.load_model`, the device from
`profiles.default_device`."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import torch

from ..models import load_model
from ..plots import repository_root
from ..utils import read_json, save_torch, write_json
from .measure import MemoryMonitor

T = TypeVar("T")


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


def to_json(obj):
    """Typed results as JSON values, the one way: a dataclass by its `as_dict()` when it has one (a comparison
    adds its verdict and sentence), else field by field; enums by value; tuples as lists; tensors as lists;
    absolute paths made `portable_path`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if hasattr(obj, "as_dict"):
            return to_json(obj.as_dict())
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (str, Path)) and Path(obj).is_absolute():
        return portable_path(obj)
    if isinstance(obj, Path):
        return obj.as_posix()
    return obj


def write_results(path: str | Path, results) -> None:
    """A results file: `to_json(results)`, written atomically."""
    write_json(path, to_json(results))


def write_results_and_figures(path: str | Path, results, draw: Callable[[dict], dict]) -> dict:
    """The results file, then the figures `draw(results)` makes from it, then the file again with their paths
    (written first so that a failed figure leaves the numbers saved). Returns the results as saved (JSON values)."""
    results = to_json(results)
    write_results(path, results)
    results["figures"] = {k: str(v) for k, v in draw(results).items()}
    write_results(path, results)
    return results


# ----------------------------------------------------------------------------- run folders and stages


def default_run_dir(profile_name: str) -> Path:
    """`runs/<profile>` at the repository root when inside the repository (so notebooks, which run from
    notebooks/, share the CLI's trained stages), else under the working directory."""
    return (repository_root() or Path.cwd().resolve()) / "runs" / profile_name


def plan_key(obj) -> dict | list | str | int | float | bool | None:
    """`obj` (a plan, a config, a tuple of them) as plain JSON values: what a stage's cache is keyed by."""
    return json.loads(json.dumps(to_json(obj)))


def _digest(key) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Codec:
    """How one kind of stage output is saved in, and read back from, its stage folder."""

    name: str
    save: Callable[[Path, object], None]
    load: Callable[[Path], object]


def _save_json(folder: Path, value) -> None:
    write_json(folder / "value.json", to_json(value), indent=None)


JSON = Codec("json", _save_json, lambda folder: read_json(folder / "value.json"))
TENSORS = Codec("tensors", lambda folder, value: save_torch(folder / "value.pt", value),
                lambda folder: torch.load(folder / "value.pt"))


def model_codec(tokenizer, device: str, wrap: Callable | None = None) -> Codec:
    """A trained model and a JSON record of it (its training history, its measurements), as the pair (model,
    record): a causal LM by `save_pretrained` with its tokenizer, or, with `wrap` (which rebuilds the wrapper,
    e.g. a reward model around its trunk), by its state dict."""
    def save(folder: Path, value) -> None:
        model, record = value
        tmp = folder / "model.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if wrap is None:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        else:
            save_torch(tmp / "state.pt", model.state_dict())
        write_json(tmp / "record.json", to_json(record))
        tmp.replace(folder / "model")  # `Run.stage` removed any unrecorded copy before computing

    def load(folder: Path):
        record = read_json(folder / "model" / "record.json")
        if wrap is not None:
            model = wrap()
            model.load_state_dict(torch.load(folder / "model" / "state.pt"))
            return model.to(device).eval(), record
        return load_model(str(folder / "model"), device=device)[0], record  # the folder holds its tokenizer too

    return Codec("model", save, load)


OUTPUTS = ("value.json", "value.pt", "model")  # what a codec saves in a stage folder


@dataclass(frozen=True)
class Run:
    """A run folder: every stage of an experiment caches its output in `dir/<stage name>/`, beside a `stage.json`
    holding the key it was computed for, the seconds and the peak memory it took. This is the only cache of
    the experiments: a stage is read back when its key matches, else (re)computed; an interrupted stage leaves
    no `stage.json` and is recomputed (training resumes from its checkpoint in the same folder)."""

    dir: Path
    touched: set = field(default_factory=set)  # the stages this invocation computed or read back

    def folder(self, name: str) -> Path:
        return self.dir / name

    def stage(self, name: str, compute: Callable[[], T], key=None, codec: Codec = JSON) -> T:
        """`compute()` once per `key`: read back from `dir/name` when its `stage.json` records the same key, else
        computed (timed), saved atomically with `codec`, and recorded. A stage folder made for another key is
        emptied first, so a checkpoint of another configuration is never resumed. Files a computation leaves
        beside its output (checkpoints) are deleted once it is saved."""
        folder = self.folder(name)
        meta_path = folder / "stage.json"
        key = plan_key(key)
        self.touched.add(name)
        if meta_path.exists() and read_json(meta_path).get("key_sha") == _digest(key):
            return codec.load(folder)
        self.workdir(name, key)
        for output in OUTPUTS:  # an output saved before a crash, never recorded: not to be read or kept
            path = folder / output
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        with MemoryMonitor() as mon:
            value = compute()
        codec.save(folder, value)
        for leftover in folder.iterdir():
            if leftover.name not in {*OUTPUTS, "key.json"}:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        write_json(meta_path, {"stage": name, "codec": codec.name, "key_sha": _digest(key), **mon.as_dict()})
        return codec.load(folder) if codec.name == "json" else value

    def workdir(self, name: str, key) -> Path:
        """`dir/name` for a computation of `key` (a stage's folder, or where a phased run keeps its checkpoint):
        emptied first when it was made for another key, so nothing of another configuration is ever resumed."""
        folder = self.folder(name)
        key = plan_key(key)
        if folder.exists() and (not (folder / "key.json").exists() or read_json(folder / "key.json") != key):
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "key.json", key)
        return folder

    def phases(self, name: str, key, budgets: tuple, train_to: Callable, score: Callable,
               keep: tuple[object, Codec] | None = None) -> tuple[list[dict], list[dict]]:
        """One training run stopped after each budget of `budgets` (epochs, iterations, ...) and scored there. Each
        phase is a stage (`name/<budget>`) holding `score(budget, history)` and the training history so far; the
        run keeps its checkpoint in `name/train` (keyed like the phases, deleted after the last one), and
        `train_to(budget, folder) -> history` continues it from there. With `keep = (model, model_codec(...))`
        each phase also keeps the weights it was scored with (`phase_model` reads them back), so a checkpoint
        chosen later on validation can be sampled on test without training again. Returns (points, history)."""
        codec = JSON if keep is None else Codec("model", lambda folder, value: keep[1].save(folder, (keep[0], value)),
                                                lambda folder: read_json(folder / "model" / "record.json"))
        # keyed with the budgets: a checkpoint of a longer schedule is never resumed towards a shorter budget
        folder = self.workdir(f"{name}/train", {"run": key, "budgets": list(budgets)})
        points, history = [], []
        for budget in budgets:
            def phase(budget=budget) -> dict:
                with MemoryMonitor() as mem:  # resumes from the previous phase's checkpoint: one continuous run
                    history = train_to(budget, folder)
                t = time.time()
                return {"budget": budget, "train_seconds": mem.seconds, "peak_rss_gib": mem.peak_gib,
                        **score(budget, history), "eval_seconds": time.time() - t, "history": history}

            point = self.stage(f"{name}/{budget:g}", phase, {"run": key, "budget": budget}, codec)
            point = to_json(point)
            history = point.pop("history")
            points.append(point)
        (folder / "checkpoint.pt").unlink(missing_ok=True)
        for i in range(1, len(points)):  # training seconds so far, as the phases' own times add up
            points[i]["train_seconds"] += points[i - 1]["train_seconds"]
        return points, history

    def phase_model(self, name: str, budget: float, codec: Codec):
        """The weights a phase of `phases(name, ..., keep=...)` was scored with."""
        return codec.load(self.folder(f"{name}/{budget:g}"))[0]

    def timing(self) -> dict[str, dict]:
        """The measurement of every stage this invocation computed or read back (not the leftovers of other
        plans or experiments sharing the folder), by stage name: seconds, peak and rise of resident memory."""
        out = {}
        for name in sorted(self.touched):
            meta = self.folder(name) / "stage.json"
            if meta.exists():
                m = read_json(meta)
                out[name] = {k: m[k] for k in ("seconds", "peak_rss_gib", "rss_rise_gib")}
        return out

    def compute_s(self, names=None) -> float:
        """The one compute rule: the sum of the seconds of the stages this invocation used (or of the stages
        `names`), each as measured when it ran, whichever invocation ran it."""
        return sum(t["seconds"] for name, t in self.timing().items() if names is None or name in set(names))

    def peak_stage_rss_gib(self) -> float:
        """The highest peak resident memory any of those stages reached while it computed."""
        return max([t["peak_rss_gib"] or 0.0 for t in self.timing().values()] or [0.0])


def open_run(run_dir: str | Path | None, profile_name: str, subdir: str = "") -> Run:
    """The run folder `run_dir`, else `runs/<profile>[/subdir]`. Stages are keyed by what they depend on, so one
    folder serves every plan: a changed plan recomputes exactly the stages whose key changed."""
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(profile_name) / subdir
    run_dir.mkdir(parents=True, exist_ok=True)
    return Run(run_dir)


def last_metrics(history: list[dict], prefix: str = "") -> dict:
    """The last logged value of every metric (train ones, or eval ones with prefix='eval_')."""
    out: dict = {}
    for h in history:
        for k, v in h.items():
            if k.startswith(prefix) and (prefix or not k.startswith("eval_")):
                out[k] = v
    return out
