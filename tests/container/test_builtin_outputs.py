"""Answers as SageMaker's built-in XGBoost gives them, over real HTTP: SAGEMAKER_INFERENCE_OUTPUT in
batch transform (SAGEMAKER_BATCH=true), our default answers for binary, multi-class and regression
models on a multi-model endpoint with SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, and a start that fails
on a key the built-in does not know. The models: built-in-style artifacts (`xgboost-model`, UBJSON,
no metadata.json) trained here with the host's XGBoost, and ours from a real training job."""
from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
import uuid

import numpy as np
import pytest
import requests
import xgboost as xgb

from serving_support import trained_model
from support import Server, build

RNG = np.random.default_rng(4)
FEATURES = RNG.random((300, 4)).astype(np.float32)
CLASSES = np.digitize(FEATURES[:, 0] + 0.3 * FEATURES[:, 1], [0.5, 0.9])
ROWS = np.vstack([FEATURES[:6], FEATURES[:2]])  # two rows repeat
BODY = "".join(",".join(f"{v!r}" for v in row) + "\n" for row in ROWS.tolist()).encode()
TRAIN = {"binary:logistic": CLASSES > 0, "multi:softprob": CLASSES, "reg:squarederror": FEATURES[:, 0] * 10}


def _builtin_style(folder, objective):
    params = {"objective": objective, "max_depth": 3, **({"num_class": 3} if objective.startswith("multi:") else {})}
    booster = xgb.train(params, xgb.DMatrix(FEATURES, TRAIN[objective].astype(np.float32)), 8)
    folder.mkdir(parents=True)
    booster.save_model(str(folder / "model.ubj"))
    (folder / "model.ubj").rename(folder / "xgboost-model")
    return folder, booster.predict(xgb.DMatrix(ROWS))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    image = build("xgboost-hdfs")
    root = tmp_path_factory.mktemp("builtin-outputs")
    found = {name.split(":")[0]: _builtin_style(root / name.replace(":", "_"), name) for name in TRAIN}
    ours = trained_model("xgboost-hdfs", image, tmp_path_factory.getbasetemp())
    return image, found, ours


def test_selected_outputs_in_batch_transform(models):
    """Every answer type as the built-in writes it; batch transform: no newline after the last line."""
    image, found, _ = models
    folder, probabilities = found["multi"]
    keys = ["predicted_label", "probabilities", "labels", "raw_score"]
    expected = [{"predicted_label": int(np.argmax(p)), "probabilities": p.tolist(), "labels": [0, 1, 2],
                 "raw_score": float(p.max())} for p in probabilities]
    env = {"SAGEMAKER_BATCH": "true", "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label, probabilities,LABELS,raw_score"}
    with Server(image, folder, env=env) as server:
        as_json = server.post(BODY, "text/csv", "application/json")
        as_lines = server.post(BODY, "text/csv", "application/jsonlines")
        as_csv = server.post(BODY, "text/csv", "text/csv")
        unasked = server.post(BODY, "text/csv")  # no SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT: CSV in, CSV out
        logs = server.logs()
    assert [a.status_code for a in (as_json, as_lines, as_csv, unasked)] == [200] * 4
    assert as_json.headers["Content-Type"] == "application/json" and as_csv.headers["Content-Type"] == "text/csv"
    assert not as_lines.content.endswith(b"\n") and not as_csv.content.endswith(b"\n")
    assert unasked.content == as_csv.content
    records = as_json.json()["predictions"]
    lines = [json.loads(line) for line in as_lines.text.split("\n")]
    rows = list(csv.reader(as_csv.text.split("\n")))
    assert len(records) == len(lines) == len(rows) == len(ROWS)
    for record, line, row, want in zip(records, lines, rows, expected):
        assert list(record) == keys and line == record
        assert record["predicted_label"] == want["predicted_label"] and record["labels"] == want["labels"]
        assert np.allclose(record["probabilities"], want["probabilities"], rtol=1e-6)
        assert record["raw_score"] == pytest.approx(want["raw_score"], rel=1e-6)
        # CSV: the keys' order; a list is one quoted cell, as the built-in writes it
        assert row == [str(record["predicted_label"]), str(record["probabilities"]), "[0, 1, 2]", str(record["raw_score"])]
    assert "Traceback" not in logs


def _model_store(tmp_path, folders: dict):
    store = tmp_path / "models"
    for name, folder in folders.items():
        shutil.copytree(folder, store / name / "model")
    return store


def test_default_answers_per_objective_on_a_multi_model_endpoint(models, tmp_path):
    """Unset SAGEMAKER_INFERENCE_OUTPUT: binary answers are today's, multi-class and regression
    answers the built-in's default plus predicted_label; SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT
    answers requests without Accept."""
    image, found, ours = models
    store = _model_store(tmp_path, {**{name: folder for name, (folder, _) in found.items()}, "ours": ours})
    env = {"SAGEMAKER_MULTI_MODEL": "true", "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/jsonlines"}
    ours_booster = xgb.Booster()
    ours_booster.load_model(bytearray((ours / "xgboost-model").read_bytes()))
    threshold = json.loads((ours / "metadata.json").read_text())["threshold"]
    ours_rows = RNG.integers(0, 4, size=(5, ours_booster.num_features())).astype(np.float32)
    with gzip.open(ours.parent / "input" / "data" / "validation" / "HDFS.log.gz", "rt") as logs:
        log_lines = "".join(next(logs) for _ in range(200)).encode()

    def invoke(url, name, body, content_type, accept=None):
        headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
        answer = requests.post(f"{url}/models/{name}/invoke", data=body, headers=headers, timeout=60)
        assert answer.status_code == 200, (name, answer.text[:300])
        return answer

    with Server(image, tmp_path, env=env, volumes={store: "/opt/ml/models"}) as server:
        for name in (*found, "ours"):
            loaded = requests.post(f"{server.url}/models", json={"model_name": name, "url": f"/opt/ml/models/{name}/model"},
                                   timeout=60)
            assert loaded.status_code == 200, (name, loaded.text)
        answers = {name: invoke(server.url, name, BODY, "text/csv") for name in found}
        multi_csv = invoke(server.url, "multi", BODY, "text/csv", "text/csv")
        ours_body = "".join(",".join(map(str, map(int, row))) + "\n" for row in ours_rows.tolist()).encode()
        ours_answer = invoke(server.url, "ours", ours_body, "text/csv", "*/*")
        blocks = invoke(server.url, "ours", log_lines, "text/plain", "text/csv")

    assert {a.headers["Content-Type"] for a in (*answers.values(), ours_answer)} == {"application/jsonlines"}
    records = {name: [json.loads(line) for line in answer.text.splitlines()] for name, answer in answers.items()}
    binary, multi, regression = found["binary"][1], found["multi"][1], found["reg"][1]
    assert [r["predicted_label"] for r in records["binary"]] == (binary >= 0.5).astype(int).tolist()
    assert np.allclose([r["score"] for r in records["binary"]], binary, rtol=1e-6)
    assert [r["predicted_label"] for r in records["multi"]] == multi.argmax(axis=1).tolist()
    assert np.allclose([r["score"] for r in records["multi"]], multi, rtol=1e-6)
    assert all(list(r) == ["score"] for r in records["reg"])
    assert np.allclose([r["score"] for r in records["reg"]], regression, rtol=1e-6)
    # Multi-class as CSV: the class probabilities as columns, one line per row (the built-in's default)
    assert np.allclose(np.array([line.split(",") for line in multi_csv.text.splitlines()], dtype=float), multi, rtol=1e-6)
    # Ours: the tuned threshold decides the label; raw-log blocks keep their own answer
    ours_records = [json.loads(line) for line in ours_answer.text.splitlines()]
    scores = ours_booster.predict(xgb.DMatrix(ours_rows, feature_names=ours_booster.feature_names))
    assert [r["predicted_label"] for r in ours_records] == (scores >= threshold).astype(int).tolist()
    assert np.allclose([r["score"] for r in ours_records], scores, rtol=1e-6)
    block_rows = [line.split(",") for line in blocks.text.splitlines()]
    assert block_rows and all(len(row) == 2 and row[0].startswith("blk_") for row in block_rows)


@pytest.mark.parametrize("env, message", [
    ({"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probabilty"},
     "SAGEMAKER_INFERENCE_OUTPUT='predicted_label,probabilty': unknown output key(s) 'probabilty'; the keys are "
     "predicted_label, labels, probability, probabilities, raw_score, raw_scores, predicted_score"),
    ({"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/x-recordio-protobuf"},
     "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='application/x-recordio-protobuf' is not an answer type of this image"),
])
def test_a_wrong_setting_fails_the_start_naming_it(models, env, message):
    image, found, _ = models
    name = f"byoc-test-{uuid.uuid4().hex[:8]}"
    command = ["docker", "run", "--rm", "--name", name, "-v", f"{found['binary'][0]}:/opt/ml/model:ro"]
    for key, value in env.items():
        command += ["-e", f"{key}={value}"]
    try:
        result = subprocess.run(command + [image, "serve"], capture_output=True, text=True, timeout=90)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]
