"""Script mode serving (byoc.script_serving) in process: which handler runs, the XGBoost framework
container's defaults where the script defines none, and how bad input and bad scripts are refused.
A booster trained here on the HDFS sample's event counts is the model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

import opt_ml
from byoc.errors import RequestError, UnsupportedMediaType
from sklearn_cpu.script_defaults import SklearnScriptRuntime
from xgboost_hdfs.script_defaults import XGBoostScriptRuntime


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data):
    """(model_dir, validation features, labels): a booster saved as xgboost-model, as scripts do."""
    root = tmp_path_factory.mktemp("hdfs")
    opt_ml.hdfs_csv(root)
    data = {name: np.loadtxt(root / "input" / "data" / name / "features.csv", delimiter=",", dtype=np.float32)
            for name in ("train", "validation")}
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1},
                        xgb.DMatrix(data["train"][:, 1:], label=data["train"][:, 0]), num_boost_round=20)
    model_dir = root / "model"
    model_dir.mkdir(exist_ok=True)
    booster.save_model(model_dir / "xgboost-model")
    return model_dir, data["validation"][:, 1:], booster


def _runtime(monkeypatch, tmp_path, model_dir, source: str, cls=XGBoostScriptRuntime):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(source)
    monkeypatch.setenv("SAGEMAKER_PROGRAM", "inference.py")
    monkeypatch.setenv("SAGEMAKER_SUBMIT_DIRECTORY", str(code))
    return cls(model_dir)


def test_xgboost_defaults_load_decode_predict_as_the_framework_container(monkeypatch, tmp_path, trained):
    """A script with no handler at all: the model file loads, csv / libsvm / json decode into a
    DMatrix, booster.predict answers; rows of the wrong width are a 400 naming the width."""
    model_dir, rows, booster = trained
    runtime = _runtime(monkeypatch, tmp_path, model_dir, "# training code only\n")
    expected = booster.predict(xgb.DMatrix(rows[:50]))
    body = "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows[:50])
    answer, kind = runtime.invoke(body.encode(), "text/csv", "text/csv")
    assert kind == "text/csv"
    np.testing.assert_allclose([float(v) for v in answer.split()], expected, rtol=1e-6)
    libsvm = "".join(" ".join(f"{i}:{v:g}" for i, v in enumerate(row)) + "\n" for row in rows[:50])  # 0-based
    answer, kind = runtime.invoke(libsvm.encode(), "text/x-libsvm", "text/csv")
    np.testing.assert_allclose([float(v) for v in answer.split()], expected, rtol=1e-6)
    answer, kind = runtime.invoke(json.dumps(rows[:3].tolist()).encode(), "application/json", "application/json")
    assert kind == "application/json"
    np.testing.assert_allclose(json.loads(answer)["predictions"], expected[:3], rtol=1e-6)
    with pytest.raises(RequestError, match=f"{rows.shape[1]}"):  # the model's feature count
        runtime.invoke(b"1,2,3\n", "text/csv", None)
    with pytest.raises(UnsupportedMediaType, match="define input_fn"):
        runtime.invoke(b"x", "image/png", None)


HANDLERS = '''
import json
import numpy as np
import xgboost as xgb

def model_fn(model_dir):
    booster = xgb.Booster()
    booster.load_model(model_dir + "/xgboost-model")
    return {"booster": booster, "threshold": 0.5}

def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"send application/json, not {content_type}")
    return np.array(json.loads(body)["blocks"], dtype=np.float32)

def predict_fn(data, model):
    return model["booster"].predict(xgb.DMatrix(data)) >= model["threshold"]

def output_fn(prediction, accept):
    return json.dumps({"anomalous": prediction.tolist(), "accept": accept}), "application/json"
'''


def test_the_scripts_handlers_run_and_their_value_errors_are_400(monkeypatch, tmp_path, trained):
    model_dir, rows, booster = trained
    runtime = _runtime(monkeypatch, tmp_path, model_dir, HANDLERS)
    answer, kind = runtime.invoke(json.dumps({"blocks": rows[:20].tolist()}).encode(), "application/json", None)
    assert kind == "application/json"
    assert json.loads(answer) == {"anomalous": (booster.predict(xgb.DMatrix(rows[:20])) >= 0.5).tolist(),
                                  "accept": "application/json"}
    with pytest.raises(RequestError, match="input_fn: ValueError: send application/json, not text/csv"):
        runtime.invoke(b"1,2\n", "text/csv", None)


def test_default_predict_fn_takes_the_arrays_a_scripts_input_fn_makes(monkeypatch, tmp_path, trained):
    model_dir, rows, booster = trained
    source = ("import numpy as np\ndef input_fn(body, content_type):\n"
              f"    return np.frombuffer(body, dtype=np.float32).reshape(-1, {rows.shape[1]})\n")
    runtime = _runtime(monkeypatch, tmp_path, model_dir, source)
    answer, _ = runtime.invoke(rows[:5].tobytes(), "application/octet-stream", "application/json")
    np.testing.assert_allclose(json.loads(answer)["predictions"], booster.predict(xgb.DMatrix(rows[:5])), rtol=1e-6)


def test_transform_fn_alone_and_never_with_the_other_handlers(monkeypatch, tmp_path, trained):
    model_dir, rows, booster = trained
    transform = ("import xgboost as xgb, numpy as np\n"
                 "def transform_fn(model, body, content_type, accept):\n"
                 "    rows = np.loadtxt(body.decode().splitlines(), delimiter=',', ndmin=2)\n"
                 "    return ';'.join(f'{p:.4f}' for p in model.predict(xgb.DMatrix(rows))), 'text/plain'\n")
    runtime = _runtime(monkeypatch, tmp_path, model_dir, transform)  # with the default model_fn
    body = "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows[:4])
    answer, kind = runtime.invoke(body.encode(), "text/csv", None)
    assert kind == "text/plain"
    assert answer.decode() == ";".join(f"{p:.4f}" for p in booster.predict(xgb.DMatrix(rows[:4])))
    (tmp_path / "code").rename(tmp_path / "first")
    with pytest.raises(ValueError, match="defines transform_fn and input_fn: define transform_fn alone"):
        _runtime(monkeypatch, tmp_path, model_dir, transform + "def input_fn(body, content_type):\n    return body\n")


def test_scikit_learn_has_no_default_model_fn(monkeypatch, tmp_path, trained):
    model_dir, _, _ = trained
    with pytest.raises(AttributeError, match="inference.py defines no model_fn.*scikit-learn's SageMaker container"):
        _runtime(monkeypatch, tmp_path, model_dir, "x = 1\n", cls=SklearnScriptRuntime)


def test_default_invocations_accept_applies_to_scripts_too(monkeypatch, tmp_path, trained):
    """SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT answers a request without Accept, with the defaults and
    with the script's output_fn (which is handed that type); an explicit Accept still wins."""
    model_dir, rows, booster = trained
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/jsonlines")
    body = ("".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows[:2])).encode()
    runtime = _runtime(monkeypatch, tmp_path, model_dir, "# training code only\n")
    assert runtime.invoke(body, "text/csv", None)[1] == "application/jsonlines"
    assert runtime.invoke(body, "text/csv", "text/csv")[1] == "text/csv"
    scripted = tmp_path / "scripted"
    scripted.mkdir()
    runtime = _runtime(monkeypatch, scripted, model_dir,
                       "def output_fn(prediction, accept):\n    return accept.encode(), accept\n")
    assert runtime.invoke(body, "text/csv", None) == (b"application/jsonlines", "application/jsonlines")
