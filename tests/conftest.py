"""Shared test setup: import paths, the real data in ../shared/data, and skipping Docker tests
(with the reason) only when no Docker engine is reachable."""
from __future__ import annotations

from pathlib import Path

import pytest

from support import SHARED_DATA, engine_problem


def pytest_collection_modifyitems(config, items):
    problem = engine_problem()
    for item in items:
        if "container" in Path(item.path).parts:
            item.add_marker(pytest.mark.docker)
            if problem:
                item.add_marker(pytest.mark.skip(reason=f"container test skipped: {problem}"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "hdfs" / "HDFS.log.gz").exists():
        pytest.fail(f"the real data is missing: expected {SHARED_DATA} beside the repo (see README)")
    return SHARED_DATA
