"""The few idioms every module shares, each done one way: atomic writes, where data files come from, seeds,
and running a model in eval mode.

- `atomic_write` / `write_json` / `save_torch`: write to a temporary file beside the target, flush it to disk,
  then rename; a kill mid-write leaves the previous file intact (every file minidpo writes goes through here).
- `data_file`: `$MINIDPO_DATA_DIR/<file>` when it is there, else the cached copy, else fetched once from its
  public source into the cache (`$MINIDPO_CACHE`, default ~/.cache/minidpo).
- `derive_seed`: a seed for one purpose, derived from a run's seed by hashing, so that purposes never share a
  stream; `epoch_seed` and `prompt_seed` are the per-epoch stream of the training loop and the per-prompt stream of
  the sampler.
- `evaluating(model)`: eval mode inside a block, the previous mode restored after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

import torch

DATA_DIR_ENV = "MINIDPO_DATA_DIR"
CACHE_ENV = "MINIDPO_CACHE"


# ----------------------------------------------------------------------------- atomic writes


def atomic_write(path: str | Path, write: Callable[[object], None], binary: bool = True) -> Path:
    """Call `write(f)` on a temporary file beside `path`, fsync it, then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb" if binary else "w") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, obj, indent: int | None = 1) -> Path:
    """`obj` as JSON, written atomically."""
    return atomic_write(path, lambda f: f.write(json.dumps(obj, indent=indent)), binary=False)


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def save_torch(path: str | Path, obj) -> Path:
    """`torch.save(obj)`, written atomically (checkpoints, cached tensors)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


# ----------------------------------------------------------------------------- data files


def cache_dir() -> Path:
    """Where minidpo caches converted models, downloads and reference log-probs (`$MINIDPO_CACHE`)."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "minidpo"))


def data_file(filename: str, fetch: Callable[[Path], None] | None = None, source: str = "") -> Path:
    """The one rule for data files: `$MINIDPO_DATA_DIR/filename` if that file exists, else the cached copy
    `$MINIDPO_CACHE/data/filename`, else `fetch(tmp_path)` writes it from its public source (`source` names it)
    and it is moved into the cache atomically. Offline, the error says which folder to put the file in."""
    local = os.environ.get(DATA_DIR_ENV)
    if local and (Path(local).expanduser() / filename).exists():
        return Path(local).expanduser() / filename
    cached = cache_dir() / "data" / filename
    if cached.exists():
        return cached
    where = f"{DATA_DIR_ENV}={local!r} has no file {filename!r}" if local else f"{filename!r} is not cached"
    if fetch is None:
        raise FileNotFoundError(f"{where} and it has no public source to fetch it from; set {DATA_DIR_ENV}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(cached.name + ".part")
    try:
        fetch(tmp)
    except OSError as e:  # ConnectionError and URLError are OSErrors
        tmp.unlink(missing_ok=True)
        raise ConnectionError(
            f"{where}, and fetching it from {source or 'its source'} failed ({type(e).__name__}: {e}). "
            f"Without internet access, set {DATA_DIR_ENV} to a folder that holds {filename!r}."
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)  # nothing half-written is left to be trusted
        raise
    os.replace(tmp, cached)
    return cached


# ----------------------------------------------------------------------------- seeds


def derive_seed(seed: int, *names: str | int | float) -> int:
    """A seed for one purpose (`names`, e.g. ("sample", "dpo", 0.1)) derived from a run's seed: different
    purposes get unrelated streams, the same purpose always the same one (a hash, so no two collide)."""
    text = json.dumps([seed, *names])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def epoch_seed(seed: int, epoch: int) -> int:
    """The batch order of one epoch of the training loop (and of PPO's prompt order): seed * 1000 + epoch."""
    return seed * 1000 + epoch


def prompt_seed(seed: int, prompt: int) -> int:
    """The sampler's seed for one prompt (its index in the list sampled): seed * 1,000,003 + prompt (a prime
    stride, so a run's prompts never reach the next seed's)."""
    return seed * 1_000_003 + prompt


# ----------------------------------------------------------------------------- model modes


@contextlib.contextmanager
def evaluating(*models) -> Iterator[None]:
    """Run the block with every model in eval mode (no dropout), then restore each one's previous mode."""
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
