"""sklearn-cpu in real containers: the built-in regressor on the real PRTG data, and a user's
SageMaker scikit-learn script trained and served unchanged (script mode)."""
from __future__ import annotations

import io
import json
import re
import shutil
import tarfile

import numpy as np
import pytest
import requests

import opt_ml
from support import REPO, Server, build, run_job

SCRIPT_DIR = REPO / "examples" / "sklearn-script"
TIME_FEATURES = "minutes hour day_of_week"
TARGET = "snmpcpu_processor_1"


@pytest.fixture(scope="module")
def image():
    return build("sklearn-cpu")


@pytest.fixture(scope="module")
def raw_job(image, tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("prtg-raw-job")
    opt_ml.prtg_raw(root)
    return root, run_job(image, root, "train")


@pytest.fixture(scope="module")
def csv_job(image, tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("prtg-csv-job")
    opt_ml.prtg_csv(root)
    opt_ml.write_config(root, {"features": TIME_FEATURES, "target": TARGET}, channels=("train", "test"))
    return root, run_job(image, root, "train")


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


# Built-in algorithm ------------------------------------------------------------------------------

def test_train_from_raw_sensor_parquet(raw_job):
    root, job = raw_job
    assert job.returncode == 0, job.stderr
    r2 = float(re.search(r"^R2: ([-0-9.e]+)$", job.stdout, re.M).group(1))
    baseline = float(re.search(r"^baseline-R2: ([-0-9.e]+)$", job.stdout, re.M).group(1))
    assert r2 > 0.45 and abs(baseline) < 0.05
    assert re.search(r"^AE-at-50th-percentile: [0-9.]+$", job.stdout, re.M)
    assert re.search(r"^AE-at-10th-percentile: [0-9.]+$", job.stdout, re.M)
    assert re.search(r"^AE-at-90th-percentile: [0-9.]+$", job.stdout, re.M)
    assert "WARNING" not in job.stdout
    evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    assert evaluation["beats_baseline"] and set(evaluation["model"]) == {
        "AE-at-10th-percentile", "AE-at-50th-percentile", "AE-at-90th-percentile", "MAE", "RMSE", "R2"}


def test_train_from_csv_channels_with_time_features_warns(csv_job):
    root, job = csv_job
    assert job.returncode == 0, job.stderr
    assert "WARNING: the model does not beat predicting the training mean" in job.stdout
    metadata = json.loads((root / "model" / "metadata.json").read_text())
    assert metadata["feature_names"] == TIME_FEATURES.split() and metadata["target"] == TARGET


def test_bad_feature_name_fails_with_reason(image, tmp_path, shared_data):
    opt_ml.prtg_csv(tmp_path)
    opt_ml.write_config(tmp_path, {"features": "minutes hour weekday", "target": TARGET}, channels=("train", "test"))
    job = run_job(image, tmp_path, "train")
    assert job.returncode != 0
    reason = (tmp_path / "output" / "failure").read_text()
    assert "weekday" in reason and "day_of_week" in reason
    assert not (tmp_path / "model" / "model.joblib").exists()


@pytest.fixture(scope="module")
def time_server(image, csv_job):
    root, job = csv_job
    assert job.returncode == 0, job.stderr
    with Server(image, root / "model") as server:
        yield server


@pytest.mark.parametrize("content_type, body", [
    ("text/csv", "38,16,4\n"),
    ("application/json", json.dumps({"data": [[38, 16, 4]]})),
    ("application/json", json.dumps({"instances": [[38, 16, 4]]})),
    ("application/json", json.dumps([{"minutes": 38, "hour": 16, "day_of_week": 4}])),
    ("application/jsonlines", '{"minutes": 38, "hour": 16, "day_of_week": 4}\n'),
    ("application/x-npy", _npy([[38, 16, 4]])),
])
def test_builtin_inputs_agree(time_server, content_type, body):
    reference = float(time_server.post("38,16,4\n", "text/csv").text)
    response = time_server.post(body, content_type, "application/json")
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [pytest.approx(reference)]
    assert 1.5 < reference < 4.0  # CPU load in percent, near the training mean


@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines", "application/x-npy"])
def test_builtin_outputs(time_server, accept):
    response = time_server.post("38,16,4\n0,3,6\n", "text/csv", accept)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith(accept)
    if accept == "text/csv":
        values = [float(v) for v in response.text.split()]
    elif accept == "application/json":
        values = response.json()["predictions"]
    elif accept == "application/jsonlines":
        values = [json.loads(line) for line in response.text.splitlines()]
    else:
        values = np.load(io.BytesIO(response.content)).tolist()
    assert len(values) == 2 and all(isinstance(v, float) for v in values)


@pytest.mark.parametrize("content_type, body, accept, status, words", [
    ("text/csv", "38,16\n", None, 400, ["row 1 has 2 columns", "3"]),
    ("application/json", json.dumps([{"minutes": 38, "hour": 16}]), None, 400, ["missing feature", "day_of_week"]),
    ("application/json", json.dumps([{"minutes": 1, "hour": 2, "day_of_week": 3, "cpu": 4}]), None, 400, ["unknown feature", "cpu"]),
    ("text/csv", "38,x,4\n", None, 400, ["row 1, column 2", "'x'"]),
    ("text/csv", "38,,4\n", None, 400, ["row 1, column 2", "hour", "missing"]),
    ("application/x-npy", b"not npy", None, 400, ["npy"]),
    ("application/xml", "<a/>", None, 415, ["application/xml"]),
    ("text/csv", "38,16,4\n", "text/html", 406, ["text/html"]),
])
def test_builtin_errors(time_server, content_type, body, accept, status, words):
    response = time_server.post(body, content_type, accept)
    assert response.status_code == status, response.text
    for word in words:
        assert word in response.json()["error"]
    assert time_server.post("38,16,4\n", "text/csv").status_code == 200


def test_raw_trained_model_takes_named_history_features(image, raw_job):
    root, _ = raw_job
    names = json.loads((root / "model" / "metadata.json").read_text())["feature_names"]
    record = {name: 2.0 for name in names} | {"minutes": 38, "hour": 16, "day_of_week": 4}
    with Server(image, root / "model") as server:
        low = server.post(json.dumps([record]), "application/json").json()["predictions"][0]
        busy = record | {n: 20.0 for n in names if n.startswith(("lag_", "rolling_mean_"))}
        high = server.post(json.dumps([busy]), "application/json").json()["predictions"][0]
    assert high > low  # recent load drives the prediction


# Script mode -------------------------------------------------------------------------------------

SCRIPT_HPS = {"sagemaker_program": '"train.py"', "features": json.dumps(TIME_FEATURES), "target": json.dumps(TARGET),
              "sagemaker_container_log_level": "20", "sagemaker_job_name": '"script-job"', "sagemaker_region": '"us-east-1"'}


@pytest.fixture(scope="module")
def script_job(image, tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("script-job")
    opt_ml.prtg_csv(root)
    opt_ml.write_config(root, SCRIPT_HPS | {"sagemaker_submit_directory": '"/opt/ml/code"'}, channels=("train", "test"))
    return root, run_job(image, root, "train", volumes={SCRIPT_DIR: "/opt/ml/code"})


def test_script_mode_trains_the_users_script_unchanged(script_job):
    root, job = script_job
    assert job.returncode == 0, job.stderr
    assert "training LinearRegression on ['minutes', 'hour', 'day_of_week'] -> snmpcpu_processor_1" in job.stdout
    assert re.search(r"^AE-at-50th-percentile: [0-9.]+$", job.stdout, re.M)
    hps = json.loads(re.search(r"^SM_HPS: (.*)$", job.stdout, re.M).group(1))
    assert hps == {"features": TIME_FEATURES, "target": TARGET}
    assert (root / "model" / "model.joblib").exists()
    # requirements.txt beside the script lists packages the image already has: pip needs no index
    assert "Requirement already satisfied: scikit-learn" in job.stdout


def test_script_mode_from_a_file_tarball(image, tmp_path, shared_data):
    opt_ml.prtg_csv(tmp_path)
    code = tmp_path / "input" / "data" / "code"
    code.mkdir(parents=True)
    # A requirement the image lacks: containers here reach no package index, so it is skipped, saying so.
    (tmp_path / "requirements.txt").write_text("scikit-learn\ntabulate==0.9.0\n")
    with tarfile.open(code / "sourcedir.tar.gz", "w:gz") as tar:
        tar.add(SCRIPT_DIR / "train.py", arcname="train.py")
        tar.add(tmp_path / "requirements.txt", arcname="requirements.txt")
    opt_ml.write_config(tmp_path, SCRIPT_HPS | {
        "sagemaker_submit_directory": '"file:///opt/ml/input/data/code/sourcedir.tar.gz"'}, channels=("train", "test"))
    job = run_job(image, tmp_path, "train")
    assert job.returncode == 0, job.stderr
    assert (tmp_path / "model" / "model.joblib").exists()
    assert re.search(r"requirements.txt: pip could not install it .*Skipped, not installed: tabulate==0.9.0\.", job.stderr)


def test_script_failure_becomes_the_failure_reason(image, tmp_path, shared_data):
    opt_ml.prtg_csv(tmp_path)
    opt_ml.write_config(tmp_path, SCRIPT_HPS | {"sagemaker_submit_directory": '"/opt/ml/code"',
                                                "target": '"no_such_column"'}, channels=("train", "test"))
    job = run_job(image, tmp_path, "train", volumes={SCRIPT_DIR: "/opt/ml/code"})
    assert job.returncode != 0
    reason = (tmp_path / "output" / "failure").read_text()
    assert "train.py exited with code 1" in reason and "no_such_column" in reason


def test_script_mode_serving(image, script_job):
    root, job = script_job
    assert job.returncode == 0, job.stderr
    env = {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"}
    with Server(image, root / "model", env=env, volumes={SCRIPT_DIR: "/opt/ml/code"}) as server:
        # The SDK's SKLearnPredictor sends and accepts application/x-npy.
        response = server.post(_npy([[38, 16, 4], [0, 3, 6]]), "application/x-npy", "application/x-npy")
        assert response.status_code == 200, response.text
        predictions = np.load(io.BytesIO(response.content), allow_pickle=False)
        assert predictions.shape == (2,)
        as_csv = server.post("38,16,4\n0,3,6\n", "text/csv").text.split()
        assert [float(v) for v in as_csv] == pytest.approx(predictions.tolist())
        as_json = server.post(json.dumps({"data": [[38, 16, 4]]}), "application/json").json()
        assert as_json["predictions"] == [pytest.approx(predictions[0])]
        wrong = server.post("38,16\n", "text/csv")
        assert wrong.status_code == 400 and "features" in wrong.json()["error"]
        assert requests.get(f"{server.url}/ping", timeout=5).status_code == 200


HANDLERS = '''
import json, os
import joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"this handler takes application/json, not {content_type}")
    rows = json.loads(body)["rows"]
    return np.array([[r["minutes"], r["hour"], r["day_of_week"]] for r in rows], dtype=float)

def predict_fn(data, model):
    return {"load": model.predict(data).round(3).tolist(), "n": len(data)}

def output_fn(prediction, accept):
    return json.dumps({"custom": prediction, "accept": accept}), "application/json"
'''

TRANSFORM = '''
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def transform_fn(model, body, content_type, accept):
    rows = [[float(v) for v in line.split(",")] for line in body.decode().splitlines() if line]
    return "|".join(f"{v:.2f}" for v in model.predict(rows)), "text/plain"
'''


@pytest.mark.parametrize("source", [HANDLERS, TRANSFORM], ids=["input-predict-output_fn", "transform_fn"])
def test_script_handlers_are_used_when_defined(image, script_job, tmp_path, source):
    root, job = script_job
    assert job.returncode == 0, job.stderr
    (tmp_path / "inference.py").write_text(source)
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"}
    with Server(image, root / "model", env=env, volumes={tmp_path: "/opt/ml/code"}) as server:
        reference = float(server.post("38,16,4\n", "text/csv").text.split("|")[0]) if source == TRANSFORM else None
        if source == HANDLERS:
            response = server.post(json.dumps({"rows": [{"minutes": 38, "hour": 16, "day_of_week": 4}]}),
                                   "application/json", "application/json")
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["custom"]["n"] == 1 and body["accept"] == "application/json"
            refused = server.post("38,16,4\n", "text/csv")
            assert refused.status_code == 400 and "this handler takes application/json" in refused.json()["error"]
        else:
            response = server.post("38,16,4\n0,3,6\n", "text/csv", "text/plain")
            assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
            values = response.text.split("|")
            assert len(values) == 2 and float(values[0]) == pytest.approx(reference, abs=0.01)


def test_script_mode_from_s3(image, tmp_path, shared_data):
    """sagemaker_submit_directory as SageMaker sets it: an s3:// sourcedir.tar.gz (S3 served by moto)."""
    from support import MotoServer

    opt_ml.prtg_csv(tmp_path)
    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(SCRIPT_DIR / "train.py", arcname="train.py")
    with MotoServer() as moto:
        s3 = moto.client("s3")
        s3.create_bucket(Bucket="byoc-code")
        s3.upload_file(str(archive), "byoc-code", "job/source/sourcedir.tar.gz")
        opt_ml.write_config(tmp_path, SCRIPT_HPS | {
            "sagemaker_submit_directory": '"s3://byoc-code/job/source/sourcedir.tar.gz"'}, channels=("train", "test"))
        job = run_job(image, tmp_path, "train", env=moto.container_env, host_network=True)
    assert job.returncode == 0, job.stderr
    assert (tmp_path / "model" / "model.joblib").exists()
