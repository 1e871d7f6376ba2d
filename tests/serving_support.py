"""Shared by the serving tests (batch contract, lifecycle, fuzz, soak): one trained model per image
for the whole session, valid feature rows for it, and looks inside a running container."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

import opt_ml
from support import run_job

IMAGES = ("xgboost-hdfs", "sklearn-cpu")
# xgboost-hdfs: a model trained from raw HDFS logs (31 event counts; it also takes raw log lines).
# sklearn-cpu: the built-in regressor on the time features, as in the sklearn-cpu tests.
WIDTH = {"xgboost-hdfs": 31, "sklearn-cpu": 3}
SKLEARN_HPS = {"features": "minutes hour day_of_week", "target": "snmpcpu_processor_1"}


def trained_model(image: str, ref: str, base: Path) -> Path:
    """Train once per session (kept under pytest's base temp directory); returns the model folder."""
    root = base / f"serving-model-{image}"
    model = root / "model"
    if (model / "metadata.json").exists():
        return model
    if image == "xgboost-hdfs":
        opt_ml.hdfs_raw(root)
    else:
        opt_ml.prtg_csv(root)
        opt_ml.write_config(root, SKLEARN_HPS, channels=("train", "test"))
    job = run_job(ref, root, "train")
    assert job.returncode == 0, job.stderr[-3000:]
    return model


def rows(image: str, n: int, seed: int = 0) -> np.ndarray:
    """Valid, varied feature rows: event counts, or (minutes, hour, day_of_week)."""
    rng = np.random.default_rng(seed)
    if image == "xgboost-hdfs":
        return rng.integers(0, 6, size=(n, WIDTH[image]))
    return np.column_stack([rng.integers(0, 60, n), rng.integers(0, 24, n), rng.integers(0, 7, n)])


def csv_body(matrix) -> bytes:
    return "".join(",".join(map(str, row)) + "\n" for row in np.asarray(matrix).tolist()).encode()


def csv_rows_up_to(image: str, limit: int, seed: int = 0) -> tuple[np.ndarray, bytes]:
    """As many rows as fit in `limit` bytes of CSV (the body is at most one row short of it)."""
    matrix = rows(image, limit // (2 * WIDTH[image]) + 10, seed)
    lines = [(",".join(map(str, row)) + "\n").encode() for row in matrix.tolist()]
    total, count = 0, 0
    for line in lines:
        if total + len(line) > limit:
            break
        total, count = total + len(line), count + 1
    assert count < len(lines), "not enough rows generated"
    return matrix[:count], b"".join(lines[:count])


def container_processes(name: str) -> dict[int, str]:
    """pid -> command line of every process in the container (read from /proc: no ps in the images)."""
    script = ("for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null) || continue; "
              "[ -n \"$c\" ] && echo \"${p#/proc/} $c\"; done; true")  # a zombie last is no error
    out = subprocess.run(["docker", "exec", name, "sh", "-c", script], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        pid, _, command = line.partition(" ")
        if "for p in /proc" not in command:  # the listing's own shell
            found[int(pid)] = command.strip()
    return found


def serve_processes(name: str) -> tuple[int, list[int], dict[int, str]]:
    """(master pid, worker pids, everything): the master is PID 1, workers are its serve children."""
    everything = container_processes(name)
    workers = sorted(pid for pid, command in everything.items() if pid != 1 and "bin/serve" in command)
    return 1, workers, everything


def memory(name: str) -> dict[str, int]:
    """The container's memory in bytes: `anon`, what its processes hold in anonymous memory by the
    cgroup's count (v2 memory.stat anon, v1 total_rss; no page cache), and `rss`, the sum of its
    serve processes' resident set sizes (shared copy-on-write pages counted once per process)."""
    script = ("cat /sys/fs/cgroup/memory.stat 2>/dev/null || cat /sys/fs/cgroup/memory/memory.stat; "
              "for p in /proc/[0-9]*; do grep -qs bin/serve $p/cmdline && grep -s '^VmRSS' $p/status; done")
    out = subprocess.run(["docker", "exec", name, "sh", "-c", script], capture_output=True, text=True, check=True).stdout
    stat = dict(line.split()[:2] for line in out.splitlines() if not line.startswith("VmRSS") and " " in line)
    anon = int(stat["anon"] if "anon" in stat else stat["total_rss"])
    rss = sum(int(line.split()[1]) * 1024 for line in out.splitlines() if line.startswith("VmRSS"))
    return {"anon": anon, "rss": rss}


def execution_parameters(server) -> dict:
    import requests

    return json.loads(requests.get(f"{server.url}/execution-parameters", timeout=5).text)
