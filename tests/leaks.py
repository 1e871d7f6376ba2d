"""The suite's own check that nothing it started outlives it.

Every process a test starts inherits BYOC_TEST_RUN (set once per session, before any test runs),
including processes that were orphaned when their parent died (gunicorn workers whose master was
killed, say): they keep the variable even after init adopts them. Containers do not inherit the
environment, so those are found by what tests name them (byoc-test-*) and by the images the tests
built (IMAGE:$BYOC_TEST_TAG), started after the session began.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

MARKER = "BYOC_TEST_RUN"
TEST_IMAGES = ("xgboost-hdfs", "sklearn-cpu")


def start() -> str:
    run = os.environ.setdefault(MARKER, uuid.uuid4().hex)
    return run


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the command in parentheses
    return pids


def leftover_processes(run: str) -> dict[int, str]:
    """pid -> command line of every live process (not pytest or its ancestors) carrying this run's marker."""
    needle = f"{MARKER}={run}".encode()
    mine, found = _ancestors(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":  # exited, waiting for its parent to read the status: nothing runs
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def leftover_containers(since: float) -> list[str]:
    """Running containers this suite started: named byoc-test-*, or from an image it built, created after `since`."""
    try:
        out = subprocess.run(["docker", "ps", "--no-trunc", "--format", "{{.ID}}\t{{.Names}}\t{{.Image}}"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    tag = os.environ.get("BYOC_TEST_TAG", "latest")
    ours = {f"{image}:{tag}" for image in TEST_IMAGES}
    found = []
    for line in out.stdout.splitlines():
        cid, name, image = line.split("\t")
        # Another session on the same engine (another BYOC_TEST_TAG) runs byoc-test-* containers of
        # its own images: only ours, or ones of other images (byoc-base) started after this session began.
        if name.startswith("byoc-test-") and (image in ours or (image.split(":")[0] not in TEST_IMAGES
                                                                and _created(cid) >= since)):
            found.append(f"{name} ({image})")
        elif image in ours and _created(cid) >= since:
            found.append(f"{name} ({image})")
    return found


def _created(cid: str) -> float:
    out = subprocess.run(["docker", "inspect", "-f", "{{.Created}}", cid], capture_output=True, text=True)
    stamp = out.stdout.strip()
    if not stamp:
        return 0.0
    from datetime import datetime

    # 2026-12-01T21:40:12.123456789Z: keep microseconds, which fromisoformat reads
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{frac[:6] or '0'}+00:00").timestamp()


def stop(processes: dict[int, str], containers: list[str]) -> None:
    """Stop what was left, so one leaking test does not also break the next run."""
    for pid in processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for container in containers:
        subprocess.run(["docker", "rm", "-f", container.split(" ")[0]], capture_output=True)
    time.sleep(0.1)
