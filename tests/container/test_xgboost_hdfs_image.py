"""xgboost-hdfs in real containers: build.sh, `train` on /opt/ml trees from the real data, `serve` over HTTP."""
from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
import time

import numpy as np
import pytest
import requests

import opt_ml
from support import SHARED_DATA, Server, build, run_job

N_FEATURES = 31  # E1..E30 + unmatched


@pytest.fixture(scope="module")
def image():
    return build("xgboost-hdfs")


@pytest.fixture(scope="module")
def raw_job(image, tmp_path_factory):
    root = tmp_path_factory.mktemp("raw-job")
    opt_ml.hdfs_raw(root)
    return root, run_job(image, root, "train")


@pytest.fixture(scope="module")
def server(image, raw_job):
    root, job = raw_job
    assert job.returncode == 0, job.stderr
    with Server(image, root / "model") as running:
        yield running


def test_image_is_built_with_labels_and_without_wheels(image):
    labels = json.loads(subprocess.run(["docker", "inspect", "-f", "{{json .Config.Labels}}", image],
                                       capture_output=True, text=True, check=True).stdout)
    for key in ("org.opencontainers.image.source", "org.opencontainers.image.version",
                "org.opencontainers.image.revision"):
        assert labels.get(key), f"missing label {key}"
    wheels = subprocess.run(["docker", "run", "--rm", image, "sh", "-c", "find / -name '*.whl' -not -path '/proc/*' | head"],
                            capture_output=True, text=True, check=True)
    assert wheels.stdout.strip() == ""


def test_default_command_is_train(image, tmp_path):
    # With no channels the default command must still be `train`, failing with the contract's reason.
    opt_ml.write_config(tmp_path)
    job = subprocess.run(["docker", "run", "--rm", "-v", f"{tmp_path}:/opt/ml", image],
                         capture_output=True, text=True, timeout=300)
    assert job.returncode != 0
    assert "no 'train' channel" in (tmp_path / "output" / "failure").read_text()


def test_train_from_raw_logs(raw_job):
    root, job = raw_job
    assert job.returncode == 0, job.stderr
    assert re.search(r"^\[99\]\ttrain-logloss:[0-9.]+\ttrain-auc:[0-9.]+\tvalidation-logloss:[0-9.]+\tvalidation-auc:[0-9.]+$",
                     job.stdout, re.M), job.stdout[-2000:]
    assert re.search(r"^validation-f1: 0\.9", job.stdout, re.M)
    evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    assert evaluation["f1"] > 0.9 and evaluation["confusion_matrix"]["tp"] >= 28  # of the 30 anomalies in the later half, which the threshold never saw
    extraction = json.loads((root / "output" / "data" / "extraction.json").read_text())
    assert extraction["unmatched_lines"] == 0 and extraction["blocks"] == 6440
    assert sorted(p.name for p in (root / "model").iterdir()) == ["metadata.json", "xgboost-model"]
    assert not (root / "output" / "failure").exists()


def test_train_from_feature_csv_with_builtin_hyperparameters(image, tmp_path):
    opt_ml.hdfs_csv(tmp_path)
    opt_ml.write_config(tmp_path, {"max_depth": '"5"', "eta": "0.2", "gamma": "4", "min_child_weight": "6",
                                   "subsample": "0.7", "objective": "binary:logistic", "num_round": "50"},
                        content_types={"train": "text/csv", "validation": "text/csv"})
    job = run_job(image, tmp_path, "train")
    assert job.returncode == 0, job.stderr
    assert "[49]\ttrain-logloss" in job.stdout
    assert json.loads((tmp_path / "model" / "metadata.json").read_text())["feature_source"] == "text/csv"


def test_bad_hyperparameter_fails_with_reason_and_no_model(image, tmp_path):
    opt_ml.hdfs_csv(tmp_path)
    opt_ml.write_config(tmp_path, {"max_depth": "deep"})
    job = run_job(image, tmp_path, "train")
    assert job.returncode != 0
    reason = (tmp_path / "output" / "failure").read_text()
    assert "max_depth" in reason and "int" in reason
    assert "Traceback" in job.stderr  # the traceback goes to the log, the reason to the failure file
    assert not any((tmp_path / "model").iterdir())


# Serving -----------------------------------------------------------------------------------------

def _rows(n: int) -> list[list[int]]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 4, size=(n, N_FEATURES)).tolist()


def _csv(rows) -> str:
    return "".join(",".join(map(str, r)) + "\n" for r in rows)


def test_ping_and_execution_parameters(server):
    assert requests.get(f"{server.url}/ping", timeout=5).status_code == 200
    params = requests.get(f"{server.url}/execution-parameters", timeout=5).json()
    assert params["BatchStrategy"] == "MULTI_RECORD" and params["MaxPayloadInMB"] == 6


@pytest.mark.parametrize("content_type, body", [
    ("text/csv", _csv(_rows(3))),
    ("application/json", json.dumps({"instances": _rows(3)})),
    ("application/json", json.dumps({"data": _rows(3)})),
    ("application/json", json.dumps(_rows(3))),
    ("application/jsonlines", "".join(json.dumps(r) + "\n" for r in _rows(3))),
    ("text/libsvm", "".join("0 " + " ".join(f"{i}:{v}" for i, v in enumerate(r)) + "\n" for r in _rows(3))),
])
def test_every_content_type_gives_the_same_scores(server, content_type, body):
    reference = server.post(_csv(_rows(3)), "text/csv").text.split()
    response = server.post(body, content_type, "application/json")
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [f"{p['score']}" for p in predictions] == reference
    assert all(p["predicted_label"] in (0, 1) for p in predictions)


@pytest.mark.parametrize("accept, content_type, expected", [
    (None, "text/csv", "text/csv"),
    ("*/*", "text/csv", "text/csv"),
    (None, "application/json", "application/json"),
    ("text/csv", "application/json", "text/csv"),
    ("application/jsonlines", "text/csv", "application/jsonlines"),
    ("application/json", "text/csv", "application/json"),
])
def test_accept(server, accept, content_type, expected):
    rows = _rows(2)
    body = _csv(rows) if content_type == "text/csv" else json.dumps({"instances": rows})
    response = server.post(body, content_type, accept)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith(expected)
    if expected == "text/csv":
        assert len(response.text.splitlines()) == 2 and all(0 <= float(s) <= 1 for s in response.text.split())
    elif expected == "application/jsonlines":
        assert [set(json.loads(l)) for l in response.text.splitlines()] == [{"score", "predicted_label"}] * 2


def test_raw_log_lines_are_grouped_per_block(server):
    with gzip.open(SHARED_DATA / "hdfs" / "HDFS.log.gz", "rt") as logs:
        lines = [next(logs) for _ in range(400)]
    blocks = list(dict.fromkeys(b for line in lines for b in re.findall(r"blk_-?\d+", line)))
    response = server.post("".join(lines), "text/plain")
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["block_id"] for p in predictions] == blocks
    csv_lines = server.post("".join(lines), "text/plain", "text/csv").text.splitlines()
    assert [line.split(",")[0] for line in csv_lines] == blocks


def test_known_anomalous_block_is_flagged(server):
    labels = dict(line.split(",") for line in (SHARED_DATA / "hdfs" / "anomaly_label.csv").read_text().split()[1:])
    anomaly = next(b for b, label in list(labels.items())[-1000:] if label == "Anomaly")
    with gzip.open(SHARED_DATA / "hdfs" / "HDFS.log.gz", "rt") as logs:
        lines = [line for line in logs if re.search(rf"\b{anomaly}\b", line)]
    predictions = server.post("".join(lines), "text/plain").json()["predictions"]
    assert predictions[0]["block_id"] == anomaly and predictions[0]["predicted_label"] == 1


@pytest.mark.parametrize("content_type, body, accept, status, words", [
    ("text/csv", "1,2,3\n", None, 400, ["row 1", "3 columns", "31"]),
    ("text/csv", _csv(_rows(1)) + "1,x" + ",0" * 29 + "\n", None, 400, ["row 2, column 2", "'x'"]),
    ("text/csv", "", None, 400, ["empty"]),
    ("application/json", "{not json", None, 400, ["unreadable JSON"]),
    ("application/json", json.dumps({"instances": [[1] * 30]}), None, 400, ["row 1", "30 columns"]),
    ("application/xml", "<a/>", None, 415, ["application/xml", "text/csv"]),
    (None, "1,2", None, 415, ["not supported"]),
    ("text/csv", _csv(_rows(1)), "image/png", 406, ["image/png"]),
    ("text/plain", "081109 203530 147 INFO x: no block here\n", None, 400, ["line 1", "no block id"]),
])
def test_errors_are_4xx_json_and_the_server_keeps_serving(server, content_type, body, accept, status, words):
    response = server.post(body, content_type, accept)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    message = response.json()["error"]
    for word in words:
        assert word in message
    assert server.post(_csv(_rows(1)), "text/csv").status_code == 200


def test_unknown_route_and_method_are_json_4xx(server):
    assert requests.get(f"{server.url}/nope", timeout=5).status_code == 404
    response = requests.get(f"{server.url}/invocations", timeout=5)
    assert response.status_code == 405 and "error" in response.json()


def test_environment_variables(image, raw_job):
    root, _ = raw_job
    env = {"SAGEMAKER_BIND_TO_PORT": "9090", "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
           "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "30", "SAGEMAKER_BATCH": "true"}
    with Server(image, root / "model", env=env, port=9090) as server:
        params = requests.get(f"{server.url}/execution-parameters", timeout=5).json()
        assert params == {"MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 1}
        big = _csv(_rows(1)) * 20000  # about 1.3 MB
        response = server.post(big, "text/csv")
        assert response.status_code == 413 and "1 MB" in response.json()["error"]
        small = _csv(_rows(1)) * 10000  # about 0.65 MB: served, one line per row, in order
        response = server.post(small, "text/csv")
        assert response.status_code == 200 and len(response.text.splitlines()) == 10000
        # SAGEMAKER_BATCH: no trailing newline, since batch transform adds one after each response
        assert not response.text.endswith("\n")
        # The master and 3 workers. /ping answered proves one worker only; on a loaded machine the
        # others can still be booting, so count until all are up (or 60 s pass).
        count = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^/opt/venv/bin/python[0-9.]* /opt/venv/bin/serve'"
        deadline = time.monotonic() + 60
        while True:
            processes = subprocess.run(["docker", "exec", server.name, "sh", "-c", count], capture_output=True, text=True)
            if processes.stdout.strip() == "4" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert processes.stdout.strip() == "4", (processes, server.logs()[-4000:])


def test_serves_a_model_from_sagemaker_builtin_xgboost(image, tmp_path):
    import xgboost as xgb

    rng = np.random.default_rng(0)
    features = rng.random((300, 5)).astype(np.float32)
    labels = (features[:, 2] > 0.5).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(features, labels), 20)
    raw = booster.save_raw("ubj")
    (tmp_path / "xgboost-model").write_bytes(bytes(raw))
    with Server(image, tmp_path) as server:
        response = server.post("0.1,0.1,0.9,0.1,0.1\n0.1,0.1,0.1,0.1,0.1\n", "text/csv")
        assert response.status_code == 200
        high, low = map(float, response.text.split())
        assert high > 0.5 > low
        expected = booster.inplace_predict(np.array([[0.1, 0.1, 0.9, 0.1, 0.1]], dtype=np.float32))[0]
        assert abs(high - float(expected)) < 1e-6
        assert server.post("1\n", "text/plain").status_code == 415
