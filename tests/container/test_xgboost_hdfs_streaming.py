"""xgboost-hdfs trains from a multi-file raw-log channel of a million lines (the real blocks repeated
under new ids by benchmarks/make_hdfs_fullscale.py), streaming it and logging its progress; and the
extraction benchmark's harness works (--quick, no training job)."""
from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys

import pytest

import opt_ml
from support import REPO, build, run_job


@pytest.fixture(scope="module")
def image():
    return build("xgboost-hdfs")


@pytest.fixture(scope="module")
def million_lines(tmp_path_factory, shared_data):
    sys.path.insert(0, str(REPO))
    from benchmarks.make_hdfs_fullscale import generate

    data = tmp_path_factory.mktemp("million")
    summary = generate(data, blocks=51_456, lines=1_000_000, files=3)
    return data, summary


def test_trains_from_a_million_lines_in_three_files_with_progress(image, million_lines, tmp_path):
    data, summary = million_lines
    train = tmp_path / "input" / "data" / "train"
    train.mkdir(parents=True)
    first, second, third, labels = summary["files"]
    with open(data / first, "rb") as plain, gzip.open(train / (first + ".gz"), "wb", compresslevel=1) as packed:
        shutil.copyfileobj(plain, packed)  # one part gzip, two plain: both readers in one channel
    for name in (second, third, labels):
        shutil.copy(data / name, train / name)
    opt_ml.write_config(tmp_path, {"num_round": 20}, channels=("train",))

    job = run_job(image, tmp_path, timeout=300)

    assert job.returncode == 0, job.stderr[-3000:]
    extraction = json.loads((tmp_path / "output" / "data" / "extraction.json").read_text())
    assert (extraction["lines"], extraction["blocks"], extraction["unmatched_lines"]) == (summary["lines"], 51_456, 0)
    for name in (first + ".gz", second, third):  # each part reports when it is counted, in order
        assert re.search(rf"{re.escape(name)}[^\n]* counted: [\d,]+ lines in all so far, [\d,]+ blocks", job.stderr)
    assert re.search(r"raw logs: 997,002 lines, 51,456 blocks in [\d.]+ s \([\d,]+ lines/s, \d process", job.stderr)
    assert (tmp_path / "model" / "xgboost-model").exists()


def test_extraction_benchmark_harness(tmp_path):
    out = tmp_path / "logparse.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.logparse", "--quick", "--no-job", "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    names = [row["name"] for row in report["extraction"]]
    assert names[0].startswith("drain3") and "ours (default)" in names
    assert all(row["lines"] > 0 and row["lines_per_s"] > 0 for row in report["extraction"])
    assert {row["blocks"] for row in report["extraction"][:3]} == {report["extraction"][0]["blocks"]}
    assert "x drain3" in done.stdout
