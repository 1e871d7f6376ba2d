"""The serving benchmark's harness works end to end (benchmarks/serving.py --quick).

One cell (1 row, concurrency 1) for one second, one cold start: it proves the harness runs our
server, the reference and the in-process loop in the image and writes the result file. It checks
the result's shape and that no request failed, never a speed (no timed assertions here).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from support import REPO, build


def test_quick_benchmark_writes_the_result_file(tmp_path, shared_data):
    if not shutil.which("wrk"):
        pytest.skip("the benchmark needs wrk: apt-get install wrk (.ci/run installs it)")
    image = build("xgboost-hdfs")
    out = tmp_path / "serving.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.serving", "--quick", "--image", image, "--size-images", image,
         "--workdir", str(tmp_path / "work"), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    assert "| payload | conc | server | req/s |" in run.stdout  # the printed table

    result = json.loads(out.read_text())
    assert {"schema", "created", "machine", "settings", "images", "servers", "cold_start", "memory",
            "in_process", "cells", "ratios", "targets"} <= set(result)
    assert {"cpu_model", "cores", "memory_mb"} <= set(result["machine"])
    assert set(result["servers"]) == {"ours", "reference"}
    assert result["images"][image]["bytes"] > 0

    for name in ("ours", "reference"):
        cold = result["cold_start"][name]
        assert 0 < cold["median_ping_s"] <= cold["median_prediction_s"]
        memory = result["memory"][name]
        assert {"idle", "load"} <= set(memory)

    cells = {(c["server"], c["payload"], c["concurrency"]): c for c in result["cells"]}
    assert set(cells) == {("ours", "1", 1), ("reference", "1", 1)}
    for cell in cells.values():
        assert cell["requests"] > 0 and cell["errors"] == 0, cell
        assert cell["rps"] > 0 and 0 < cell["p50_ms"] <= cell["p99_ms"]
    assert {(x["which"], x["payload"]) for x in result["in_process"]} == {("ours", "1"), ("reference", "1")}
    (ratio,) = result["ratios"]
    assert ratio["server"] == "ours" and ratio["throughput_ratio"] > 0
    assert {"single_row_throughput_ratio", "thousand_row_throughput_ratio", "cold_start_to_prediction_s"} <= set(result["targets"])
