"""Shared test setup: import paths, the real data in ../shared/data, skipping Docker tests (with
the reason) only when no Docker engine is reachable, and the check that nothing a test started
is still running when the suite ends (leaks.py)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import leaks
from support import SHARED_DATA, engine_problem

_started = {"run": "", "at": 0.0}
_left: list[str] = []


def pytest_configure(config):
    _started["run"], _started["at"] = leaks.start(), time.time()


def pytest_sessionfinish(session, exitstatus):
    if getattr(session.config, "workerinput", None) is not None or not _started["run"]:
        return
    processes = leaks.leftover_processes(_started["run"])
    containers = leaks.leftover_containers(_started["at"])
    if processes or containers:
        _left.extend([f"process {pid}: {command[:200]}" for pid, command in processes.items()] +
                     [f"container {name}" for name in containers])
        leaks.stop(processes, containers)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _left:
        terminalreporter.section("left running by the tests (a defect; now stopped)", red=True)
        for line in _left:
            terminalreporter.line(line)


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="also run the tests marked slow (CI runs a representative subset without them)")


def pytest_collection_modifyitems(config, items):
    problem = engine_problem()
    full = config.getoption("--full") or os.environ.get("BYOC_FULL") == "1"
    for item in items:
        if "slow" in item.keywords and not full:
            item.add_marker(pytest.mark.skip(reason="slow test: runs with ./test.sh --full (or BYOC_FULL=1)"))
        if "container" in Path(item.path).parts:
            item.add_marker(pytest.mark.docker)
            if problem:
                item.add_marker(pytest.mark.skip(reason=f"container test skipped: {problem}"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "hdfs" / "HDFS.log.gz").exists():
        pytest.fail(f"the real data is missing: expected {SHARED_DATA} beside the repo (see README)")
    return SHARED_DATA
