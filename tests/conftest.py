"""Shared test setup: import paths, the real data in ../shared/data, and Docker helpers."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for path in (REPO / "core", REPO / "containers" / "xgboost-hdfs", REPO / "examples"):
    sys.path.insert(0, str(path))

SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "hdfs" / "HDFS.log.gz").exists():
        pytest.fail(f"the real data is missing: expected {SHARED_DATA} beside the repo (see README)")
    return SHARED_DATA
