"""Request bodies the review found mishandled, over real HTTP in real containers with real data:
odd line breaks (a 500 before), npy answers for raw logs (block ids before), the memory of a real
worker and the size of the answer for a 6 MB raw-log body, and float64 for scikit-learn models
(PRTG epoch seconds, built-in and script mode) compared with the in-process float64 prediction."""
from __future__ import annotations

import gzip
import io
import json
import re
import subprocess

import joblib
import numpy as np
import pandas as pd
import pytest

import opt_ml
from serving_support import SKLEARN_HPS, serve_processes, trained_model
from support import REPO, SHARED_DATA, Server, build, run_job

ODD_BREAKS = ["\x1c", "\x1d", "\x1e", "\x85", "\u2028"]
SCRIPT_DIR = REPO / "examples" / "sklearn-script"
TARGET = "snmpcpu_processor_1"
EPOCH_FEATURES = ["epoch", "minutes", "hour"]


@pytest.fixture(scope="module")
def hdfs(tmp_path_factory):
    ref = build("xgboost-hdfs")
    model_dir = trained_model("xgboost-hdfs", ref, tmp_path_factory.getbasetemp())
    with Server(ref, model_dir, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}) as server:
        yield server


def _lines(count: int) -> list[bytes]:
    with gzip.open(SHARED_DATA / "hdfs" / "HDFS.log.gz", "rb") as logs:
        return [next(logs) for _ in range(count)]


@pytest.mark.parametrize("char", ODD_BREAKS)
@pytest.mark.parametrize("content_type", ["text/plain", "text/csv", "application/jsonlines", "text/libsvm"])
def test_odd_line_breaks_are_a_400(hdfs, content_type, char):
    response = hdfs.post((char * 3).encode(), content_type)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("application/json") and response.json()["error"]


def test_raw_logs_answer_scores_as_npy(hdfs):
    body = b"".join(_lines(3000))
    npy = hdfs.post(body, "text/plain", "application/x-npy")
    assert npy.status_code == 200, npy.text
    scores = np.load(io.BytesIO(npy.content), allow_pickle=False)
    records = hdfs.post(body, "text/plain", "application/json").json()["predictions"]
    assert scores.dtype == np.float32 and len(scores) == len(records) > 100
    assert scores.tolist() == pytest.approx([r["score"] for r in records], rel=1e-7)


def _distinct_blocks(limit: int) -> bytes:
    """Real lines of HDFS.log.gz in order, every block id replaced by a new one of the same length."""
    counter = iter(range(1, 10 ** 9))
    out, size = [], 0
    for line in _lines(60000):
        line = re.sub(rb"blk_(-?)(\d+)", lambda m: b"blk_%s%0*d" % (m[1], len(m[2]), next(counter)), line)
        if size + len(line) > limit:
            break
        out.append(line)
        size += len(line)
    return b"".join(out)


def _worker_peak(server, body: bytes, accept: str):
    """(the worker's peak RSS growth in bytes for one request, the response)."""
    _, workers, _ = serve_processes(server.name)
    assert len(workers) == 1
    status = f"/proc/{workers[0]}/status"

    def read(key: str) -> int:
        out = subprocess.run(["docker", "exec", server.name, "grep", key, status], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[1]) * 1024

    subprocess.run(["docker", "exec", server.name, "sh", "-c", f"echo 5 > /proc/{workers[0]}/clear_refs"], check=True)
    before = read("VmRSS")
    response = server.post(body, "text/plain", accept)
    return read("VmHWM") - before, response


def test_a_6_mb_raw_log_body_stays_under_10x_in_the_worker_and_the_answer_fits(hdfs):
    body = _distinct_blocks(6 * 1024 * 1024 - 1024)
    for accept in ("application/json", "text/csv", "application/x-npy"):
        growth, response = _worker_peak(hdfs, body, accept)
        print(f"\n{len(body):,} bytes of distinct blocks, {accept}: worker peak +{growth / 2 ** 20:.0f} MiB, "
              f"answer {len(response.content):,} bytes")
        assert response.status_code == 200, response.text
        assert growth < 10 * len(body) and len(response.content) < 6 * 1024 * 1024

    dense = b"".join(b"blk_%d\n" % i for i in range(10 ** 6, 10 ** 6 + 524_000))  # a block per 12 bytes, 6 MiB
    growth, response = _worker_peak(hdfs, dense, "application/json")
    print(f"{len(dense):,} bytes of bare block ids: worker peak +{growth / 2 ** 20:.0f} MiB, {response.status_code} "
          f"{response.text[:160]}")
    assert response.status_code == 413 and "response limit (SAGEMAKER_MAX_PAYLOAD_IN_MB)" in response.json()["error"]
    assert growth < 10 * len(dense)
    assert hdfs.post(b"".join(_lines(40)), "text/plain").status_code == 200  # and serves on


# scikit-learn: float64 ----------------------------------------------------------------------------

def _epoch_tree(root) -> pd.DataFrame:
    """PRTG rows with the timestamp as epoch seconds, split 75/25 in time; returns the test rows."""
    raw = pd.read_parquet(opt_ml.PRTG).sort_values("ts")
    table = pd.DataFrame({"epoch": raw.ts.astype("int64") // 10 ** 9 if raw.ts.dtype.kind == "M" else raw.ts,
                          "minutes": raw.ts.dt.minute, "hour": raw.ts.dt.hour, TARGET: raw[TARGET]})
    cut = int(len(table) * 0.75)
    for name, part in (("train", table.iloc[:cut]), ("test", table.iloc[cut:])):
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        part.to_csv(folder / f"{name}.csv", index=False)
    return table.iloc[cut:]


@pytest.mark.parametrize("mode", ["builtin", "script"])
def test_sklearn_predicts_epoch_seconds_in_float64(tmp_path, mode):
    ref = build("sklearn-cpu")
    test_rows = _epoch_tree(tmp_path)
    env, volumes = {}, {}
    if mode == "builtin":
        opt_ml.write_config(tmp_path, SKLEARN_HPS | {"features": " ".join(EPOCH_FEATURES)}, channels=("train", "test"))
        job = run_job(ref, tmp_path, "train")
    else:
        opt_ml.write_config(tmp_path, {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"/opt/ml/code"',
                                       "features": json.dumps(" ".join(EPOCH_FEATURES)), "target": json.dumps(TARGET)},
                            channels=("train", "test"))
        job = run_job(ref, tmp_path, "train", volumes={SCRIPT_DIR: "/opt/ml/code"})
        env = {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"}
        volumes = {SCRIPT_DIR: "/opt/ml/code"}
    assert job.returncode == 0, job.stderr[-3000:]
    model = joblib.load(tmp_path / "model" / "model.joblib")
    rows = test_rows[EPOCH_FEATURES].iloc[::500].to_numpy(dtype=np.float64)  # 1622535661-like seconds
    expected = model.predict(rows)
    as_float32 = model.predict(rows.astype(np.float32).astype(np.float64))
    assert np.abs(expected - as_float32).max() > 1e-6  # the case matters: float32 moves these seconds by up to 64

    body = "".join(",".join(str(int(v)) for v in row) + "\n" for row in rows)
    with Server(ref, tmp_path / "model", env=env, volumes=volumes) as server:
        csv_answer = server.post(body, "text/csv", "text/csv")
        json_answer = server.post(json.dumps({"instances": rows.tolist()}), "application/json", "application/json")
    assert csv_answer.status_code == 200 and json_answer.status_code == 200, (csv_answer.text, json_answer.text)
    print(f"\n{mode}: {len(rows)} rows, e.g. {rows[0].tolist()} -> {float(csv_answer.text.split()[0])} "
          f"(float64 in-process {expected[0]}, float32 {as_float32[0]})")
    np.testing.assert_allclose([float(v) for v in csv_answer.text.split()], expected, rtol=1e-12)
    np.testing.assert_allclose(json_answer.json()["predictions"], expected, rtol=1e-12)
