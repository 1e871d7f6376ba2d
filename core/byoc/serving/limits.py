"""Process limits for serving, set once at `serve` start before any heavy import.

- Thread pools: OpenMP, OpenBLAS and MKL size their pools from the environment when they are
  loaded (numpy, scikit-learn and XGBoost load them on import), so the limits must be in the
  environment before the algorithm module is imported; later has no effect. Each worker gets
  max(1, cpus // workers) threads, so workers x threads never exceeds the CPUs the container may
  use. A variable the user set wins.
- Open files: every connection is a file descriptor; the soft limit (often 1024) is raised to the
  hard limit, and the server caps its connections below it (config.py, server.py).

This module imports nothing heavy: cli.serve calls it first.
"""
from __future__ import annotations

import math
import os
import resource
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# File descriptors a worker needs besides connections: the listening socket, logs, the model's and
# libraries' files, gunicorn's heartbeat file, the event loop's own pipes.
RESERVED_FILES = 64


def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this container's cgroup (v2 cpu.max, v1 cfs quota), None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in ("cpu", "cpu,cpuacct"):
        try:
            quota = int((root / folder / "cpu.cfs_quota_us").read_text())
            period = int((root / folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota <= 0 else quota / period
    return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, bounded by the cgroup quota (rounded up)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    return max(1, (cpus or usable_cpus()) // max(1, workers))


def limit_threads(workers: int) -> dict[str, str]:
    """Put the per-worker thread count into the environment (user settings win); returns it all."""
    count = str(threads_per_worker(workers))
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, count)
    return {name: os.environ[name] for name in THREAD_VARIABLES}


def raise_open_files() -> int:
    """Soft open-file limit up to the hard one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def open_file_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def configured_workers() -> int:
    """SAGEMAKER_MODEL_SERVER_WORKERS as config.py reads it (a bad value is reported there)."""
    raw = os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else usable_cpus()


def prepare_serving() -> dict[str, str]:
    """Call before importing the algorithm: thread limits in the environment, open files raised."""
    raise_open_files()
    return limit_threads(configured_workers())
