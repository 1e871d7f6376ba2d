"""The end-of-suite leak check finds an orphaned process that carries this run's marker."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import leaks


def test_an_orphaned_child_is_found_and_stopped():
    run = os.environ[leaks.MARKER]  # set by conftest before any test
    # A shell that starts a sleeper in the background and exits: the sleeper is adopted by init,
    # as a gunicorn worker is when its master is killed.
    subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], check=True, capture_output=True)
    deadline = time.monotonic() + 5
    found = {}
    while time.monotonic() < deadline and not found:
        found = {pid: c for pid, c in leaks.leftover_processes(run).items() if c.startswith("sleep 60")}
        time.sleep(0.05)
    assert found, "the orphaned sleeper was not found by its marker"
    assert os.getpid() not in leaks.leftover_processes(run), "pytest itself must not count"
    leaks.stop(found, [])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid in leaks.leftover_processes(run) for pid in found):
        time.sleep(0.05)
    assert not any(pid in leaks.leftover_processes(run) for pid in found)


def test_a_process_of_another_run_is_not_ours():
    env = {**os.environ, leaks.MARKER: "another-run"}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    try:
        time.sleep(0.3)
        assert child.pid not in leaks.leftover_processes(os.environ[leaks.MARKER])
        assert child.pid in leaks.leftover_processes("another-run")
    finally:
        child.kill()
        child.wait()
