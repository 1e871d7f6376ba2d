"""Answers as SageMaker's built-in XGBoost gives them: SAGEMAKER_INFERENCE_OUTPUT's keys for every
objective family, in JSON, JSON Lines and CSV, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, and our
default answers for multi-class and regression models. Models are trained here with the host's
XGBoost and saved as the built-in names them (`xgboost-model`, UBJSON, no metadata.json); the
expected values come from Booster.predict, through the built-in's definition of each key."""
from __future__ import annotations

import csv
import io
import json
import logging

import numpy as np
import pytest
import xgboost as xgb

from byoc import codecs
from byoc.errors import NotAcceptable
from xgboost_hdfs import Runtime
from xgboost_hdfs.outputs import SELECTABLE

RNG = np.random.default_rng(13)
FEATURES = RNG.random((300, 4)).astype(np.float32)
CLASSES = np.digitize(FEATURES[:, 0] + 0.3 * FEATURES[:, 1], [0.5, 0.9])  # 3 classes
# Rows sent: one repeats (the CSV path scores distinct rows once and answers every row in order).
ROWS = np.vstack([FEATURES[:5], FEATURES[:1], FEATURES[-3:]])
BODY = codecs.encode_csv(ROWS.tolist())  # one "a,b,c,d" line per row
OBJECTIVES = {  # objective -> labels to train on
    "binary:logistic": CLASSES > 0, "binary:logitraw": CLASSES > 0, "binary:hinge": CLASSES > 0,
    "multi:softprob": CLASSES, "multi:softmax": CLASSES,
    "reg:squarederror": FEATURES[:, 0] * 10, "count:poisson": CLASSES,
}


def _model_dir(root, objective):
    params = {"objective": objective, "max_depth": 3, **({"num_class": 3} if objective.startswith("multi:") else {})}
    booster = xgb.train(params, xgb.DMatrix(FEATURES, OBJECTIVES[objective].astype(np.float32)), 8)
    folder = root / objective.replace(":", "_")
    folder.mkdir()
    booster.save_model(str(folder / "model.ubj"))
    (folder / "model.ubj").rename(folder / "xgboost-model")
    return folder, booster.predict(xgb.DMatrix(ROWS))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    return {objective: _model_dir(root, objective) for objective in OBJECTIVES}


def builtin_value(objective: str, key: str, p: np.ndarray):
    """What the built-in answers for one row's prediction p (None: it has no value for the objective)."""
    softprob, binary = objective == "multi:softprob", objective.startswith("binary:")
    classes = [0, 1] if binary else [0, 1, 2] if objective.startswith("multi:") else None
    if not (binary or objective.startswith("multi:")):
        return float(p) if key == "predicted_score" else None
    has_probability = objective in ("binary:logistic", "multi:softprob")
    if key == "predicted_label":
        return int(np.argmax(p)) if softprob else int(p > 0) if objective == "binary:logitraw" \
            else int(p > 0.5) if objective == "binary:logistic" else int(p)
    if key == "labels":
        return classes
    if key in ("probability", "raw_score"):
        return None if key == "probability" and not has_probability else float(max(p)) if softprob else float(p)
    if key in ("probabilities", "raw_scores"):
        if key == "probabilities" and not has_probability:
            return None
        return [float(v) for v in p] if softprob else [1.0 - float(p), float(p)]
    return None  # predicted_score of a classifier


def _csv_cell(text: str):
    return json.loads(text) if text.startswith("[") else None if text == "nan" else float(text)


def _answers(body: bytes, accept: str, keys) -> list[dict]:
    """Records from any of the three answers (CSV columns are `keys`, lists quoted, nan for null)."""
    text = body.decode()
    if accept == codecs.JSON:
        return json.loads(text)["predictions"]
    if accept == codecs.JSONLINES:
        assert text.endswith("\n")
        return [json.loads(line) for line in text.splitlines()]
    return [dict(zip(keys, map(_csv_cell, row))) for row in csv.reader(text.splitlines())]


KEY_SETS = [(key,) for key in SELECTABLE] + [("predicted_label", "probability"), SELECTABLE[::-1]]


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("keys", KEY_SETS, ids=",".join)
def test_selected_outputs_are_the_builtin_s_for_every_objective_and_answer_type(models, objective, keys, monkeypatch):
    folder, predictions = models[objective]
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", ", ".join(k.upper() if i % 2 else k for i, k in enumerate(keys)))
    runtime = Runtime(folder)
    expected = [{key: builtin_value(objective, key, p) for key in keys} for p in predictions]
    for accept in (codecs.JSON, codecs.JSONLINES, codecs.CSV):
        body, kind = runtime.invoke(BODY, "text/csv", accept)
        answers = _answers(body, accept, keys)
        assert kind == accept and len(answers) == len(ROWS)
        for answer, want in zip(answers, expected):
            assert list(answer) == list(keys)  # in the variable's order
            for key in keys:
                assert (answer[key] is None) == (want[key] is None), (accept, key, answer, want)
                assert want[key] is None or answer[key] == pytest.approx(want[key], rel=1e-6), (accept, key, answer, want)
            if accept != codecs.CSV and answer.get("predicted_label") is not None:
                assert isinstance(answer["predicted_label"], int)  # a class, not 1.0


def test_csv_quotes_list_cells_and_writes_nan_for_a_key_without_value(models, monkeypatch, caplog):
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label,probabilities,predicted_score")
    with caplog.at_level(logging.WARNING):
        runtime = Runtime(models["binary:logistic"][0])
    assert "binary:logistic has no predicted_score" in caplog.text
    first = runtime.invoke(BODY, "text/csv", "text/csv")[0].decode().splitlines()[0]
    label, rest = first.split(",", 1)
    assert label in ("0", "1") and rest.startswith('"[') and rest.endswith(']",nan')
    assert json.loads(runtime.invoke(BODY, "text/csv", "application/json")[0])["predictions"][0]["predicted_score"] is None


@pytest.mark.parametrize("raw", ["probability,foo", "predicted_labels", "score"])
def test_an_unknown_key_fails_the_start_naming_it_and_the_keys(models, monkeypatch, raw):
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", raw)
    with pytest.raises(ValueError) as failure:
        Runtime(models["binary:logistic"][0])
    unknown = raw.split(",")[-1]
    assert f"unknown output key(s) {unknown!r}" in str(failure.value)
    assert ", ".join(SELECTABLE) in str(failure.value)


def test_a_blank_selection_keeps_the_default_answers(models, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", " ")
    answer = json.loads(Runtime(models["binary:logistic"][0]).invoke(BODY, "text/csv", "application/json")[0])
    assert list(answer["predictions"][0]) == ["score", "predicted_label"]


def test_the_model_s_threshold_decides_predicted_label(models, monkeypatch):
    """Our models carry a tuned threshold (metadata.json): the selected predicted_label uses it too."""
    folder, predictions = models["binary:logistic"]
    threshold = float(np.median(predictions))
    (folder / "metadata.json").write_text(json.dumps({"threshold": threshold}))
    try:
        monkeypatch.setenv("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label,probability")
        selected = json.loads(Runtime(folder).invoke(BODY, "text/csv", "application/json")[0])["predictions"]
        monkeypatch.delenv("SAGEMAKER_INFERENCE_OUTPUT")
        default = json.loads(Runtime(folder).invoke(BODY, "text/csv", "application/json")[0])["predictions"]
    finally:
        (folder / "metadata.json").unlink()
    assert [a["predicted_label"] for a in selected] == [int(p >= threshold) for p in predictions]
    assert [a["predicted_label"] for a in default] == [a["predicted_label"] for a in selected]
    assert {a["predicted_label"] for a in selected} == {0, 1}


@pytest.mark.parametrize("objective", ["multi:softprob", "multi:softmax", "reg:squarederror", "count:poisson"])
def test_default_answers_of_multi_class_and_regression_models(models, objective):
    """Unset: the built-in's default answer ({"score"}, CSV the scores) plus predicted_label for classes."""
    folder, predictions = models[objective]
    runtime = Runtime(folder)
    assert runtime.threshold is None
    records = json.loads(runtime.invoke(BODY, "text/csv", "application/json")[0])["predictions"]
    lines = runtime.invoke(BODY, "text/csv", "text/csv")[0].decode().splitlines()
    scores = np.load(io.BytesIO(runtime.invoke(BODY, "text/csv", "application/x-npy")[0]))
    assert scores.shape == predictions.shape and np.allclose(scores, predictions, rtol=1e-6)
    assert np.allclose(np.array([line.split(",") for line in lines], dtype=float), predictions.reshape(len(ROWS), -1), rtol=1e-6)
    assert np.allclose(np.array([r["score"] for r in records]), predictions, rtol=1e-6)
    if objective.startswith("multi:"):
        labels = predictions.argmax(axis=1) if predictions.ndim == 2 else predictions.astype(int)
        assert [r["predicted_label"] for r in records] == labels.tolist() and len(set(labels.tolist())) > 1
    else:
        assert all(list(r) == ["score"] for r in records)
    jsonl = runtime.invoke(BODY, "text/csv", "application/jsonlines")[0].decode().splitlines()
    assert [json.loads(line) for line in jsonl] == records


def test_binary_default_answers_are_unchanged(models):
    folder, predictions = models["binary:logistic"]
    runtime = Runtime(folder)
    records = json.loads(runtime.invoke(BODY, "text/csv", "application/json")[0])["predictions"]
    assert records == [{"score": pytest.approx(float(p), rel=1e-6), "predicted_label": int(p >= 0.5)} for p in predictions]
    assert runtime.invoke(BODY, "text/csv", "text/csv")[0].decode().splitlines() == [str(r["score"]) for r in records]


@pytest.mark.parametrize("default, accept, content_type, expected", [
    ("application/jsonlines", None, "text/csv", "application/jsonlines"),
    ("application/jsonlines", "*/*", "application/json", "application/jsonlines"),
    ("text/csv", "", "application/json", "text/csv"),
    ("text/csv", "application/json", "text/csv", "application/json"),  # a request's own Accept wins
    ("text/csv", "application/*", "text/csv", "application/json"),
    ("application/json", "text/*", "text/libsvm", "text/csv"),
    (None, None, "text/libsvm", "application/json"),
])
def test_default_accept_is_the_answer_type_without_accept(default, accept, content_type, expected):
    assert codecs.negotiate(accept, content_type, tuple(codecs.ENCODERS), default) == expected


def test_default_invocations_accept_in_the_runtime(models, monkeypatch):
    folder, _ = models["multi:softprob"]
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "Text/CSV")
    runtime = Runtime(folder)
    json_body = json.dumps({"instances": ROWS.tolist()}).encode()
    body, kind = runtime.invoke(json_body, "application/json", None)  # JSON in, CSV out
    assert kind == "text/csv" and len(body.decode().splitlines()) == len(ROWS)
    assert runtime.invoke(json_body, "application/json", "*/*")[1] == "text/csv"
    with pytest.raises(NotAcceptable):
        runtime.invoke(BODY, "text/csv", "image/png")
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/x-recordio-protobuf")
    with pytest.raises(ValueError, match=r"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='application/x-recordio-protobuf' "
                                         r"is not an answer type of this image; use one of application/json, "):
        Runtime(folder)
