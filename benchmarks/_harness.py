"""Shared benchmark machinery: timing, machine description, results, README tables.

Protocol (../shared/BENCHMARKS.md): contenders are timed in one process,
alternating, after a warm-up; we report the median of at least five
repetitions with min and max, pin threads the same for everyone, and keep
quality numbers beside the times. Nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import fcntl
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
README = ROOT / "README.md"


def parse_args(description: str, argv=None, extra: Callable | None = None):
    """Common flags: --quick, --device, --threads, --repeat."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small version, under a minute")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch / BLAS threads for everyone")
    p.add_argument("--repeat", type=int, default=None, help="timed repetitions (default 7, quick 5)")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite benchmarks/README.md")
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 5 if args.quick else 7
    pin_threads(args.threads)
    return args


def run_jobs(fn: Callable, jobs: list, n_jobs: int = 1):
    """Yield ``fn(job)`` for every job: in ``n_jobs`` spawned worker processes
    (results in completion order) when there is more than one job and worker,
    else one after the other in this process."""
    if n_jobs > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(n_jobs, len(jobs))) as pool:
            yield from pool.imap_unordered(fn, jobs)
    else:
        for job in jobs:
            yield fn(job)


def pin_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover
        pass


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_call(fn: Callable, device: str = "cpu") -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def compare(contenders: dict[str, Callable], repeat: int = 7, warmup: int = 1,
            device: str = "cpu", number: int = 1) -> dict[str, list[float]]:
    """Time every contender ``repeat`` times, alternating, after ``warmup`` calls each.

    ``number`` calls are timed together and divided (for microsecond-scale calls).
    Returns raw seconds per call for each contender.
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            gc.collect()
            if number == 1:
                times[name].append(time_call(fn, device))
            else:
                def many(fn=fn):
                    for _ in range(number):
                        fn()
                times[name].append(time_call(many, device) / number)
    return times


def summary(times: list[float]) -> dict:
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "n": len(times)}


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_range(times: list[float]) -> str:
    s = summary(times)
    return f"{fmt_time(s['median'])} ({fmt_time(s['min'])}–{fmt_time(s['max'])})"


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine(device: str = "cpu", threads: int | None = None) -> dict:
    info = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": threads,
        "device": device,
        "versions": {p: _version(p) for p in (
            "tensornet", "numpy", "scipy", "torch", "tensorly", "opt_einsum", "tensorly-torch",
            "gensim", "scikit-learn", "tomotopy", "statsmodels")},
    }
    if device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


def write_results(name: str, payload: dict, device: str = "cpu") -> Path:
    """Write ``benchmarks/results/NAME[-cuda].json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if device == "cpu" else "-" + device.replace(":", "")
    path = RESULTS / f"{name}{suffix}.json"
    path.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
    return path


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


@contextlib.contextmanager
def _locked(path: Path):
    lock = path.with_suffix(".lock")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def update_readme(section: str, markdown: str) -> None:
    """Replace the text between ``<!-- BEGIN section -->`` and ``<!-- END section -->``.

    The section is appended at the end of benchmarks/README.md when it is absent.
    """
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    with _locked(README):
        text = README.read_text() if README.exists() else "# Benchmarks\n"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            text = head + block + tail
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        README.write_text(text)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    Read from ``VmHWM`` in ``/proc/self/status``: ``ru_maxrss`` would carry a
    large parent's peak over into a child started by ``fork``/``exec``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
