"""The sklearn-cpu built-in algorithm on the real PRTG sensor data, without Docker."""
import json

import numpy as np
import pandas as pd
import pytest

import opt_ml
from byoc.training import run
from sklearn_cpu import features as feats
from sklearn_cpu import train
from sklearn_cpu.runtime import BuiltinRuntime


@pytest.fixture(scope="module")
def raw_tree(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("prtg-raw")
    opt_ml.prtg_raw(root)
    return root


def _with(root, tmp_path, hyperparameters):
    import shutil
    shutil.copytree(root / "input", tmp_path / "input")
    opt_ml.write_config(tmp_path, hyperparameters, channels=("train",))
    return tmp_path


def test_history_features_never_look_ahead():
    frame = pd.DataFrame({"ts": pd.date_range("2021-06-01", periods=10, freq="min"), "y": np.arange(10.0)})
    built = feats.build(frame, "ts", "y", lags=[1, 2], windows=[3])
    row = built.iloc[0]  # first row with full history is the 4th minute (index 3)
    assert row["y"] == 3 and row["lag_1"] == 2 and row["lag_2"] == 1 and row["rolling_mean_3"] == 1.0
    assert (built["rolling_mean_3"] == built["y"] - 2).all()  # mean of the 3 previous values only
    assert list(built[["minutes", "hour", "day_of_week"]].iloc[0]) == [3, 0, 1]  # 2021-06-01 was a Tuesday


def test_raw_sensor_defaults_beat_the_baseline(raw_tree, tmp_path, capsys):
    root = _with(raw_tree, tmp_path, {})
    assert run(train, root) == 0
    out = capsys.readouterr().out
    assert "AE-at-50th-percentile: " in out and "baseline-R2: " in out and "WARNING" not in out
    evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    assert evaluation["model"]["R2"] > 0.45 and abs(evaluation["baseline_train_mean"]["R2"]) < 0.05
    assert evaluation["evaluated_on"] == "latest 25% of train" and evaluation["beats_baseline"]
    metadata = json.loads((root / "model" / "metadata.json").read_text())
    assert metadata["feature_names"][:3] == ["minutes", "hour", "day_of_week"] and "rolling_mean_60" in metadata["feature_names"]


def test_time_features_alone_warn_that_the_mean_is_as_good(shared_data, tmp_path, capsys):
    opt_ml.prtg_csv(tmp_path)  # CSV written by DataFrame.to_csv, unnamed index column included
    opt_ml.write_config(tmp_path, {"features": "minutes hour day_of_week", "target": "snmpcpu_processor_1"},
                        channels=("train", "test"))
    assert run(train, tmp_path) == 0
    out = capsys.readouterr().out
    assert "WARNING: the model does not beat predicting the training mean" in out
    evaluation = json.loads((tmp_path / "output" / "data" / "evaluation.json").read_text())
    assert abs(evaluation["model"]["R2"]) < 0.05 and evaluation["evaluated_on"] == "test channel"
    runtime = BuiltinRuntime(tmp_path / "model")
    body, kind = runtime.invoke(b'[{"minutes": 38, "hour": 16, "day_of_week": 4}]', "application/json", None)
    assert kind == "application/json" and len(json.loads(body)["predictions"]) == 1


@pytest.mark.parametrize("hyperparameters, words", [
    ({"model": "SVR"}, ["model", "LinearRegression", "RandomForestRegressor"]),
    ({"alpha": "1.0"}, ["alpha", "do not apply to model=LinearRegression"]),
    ({"features": "minutes cpu_temp"}, ["cpu_temp", "not columns"]),
    ({"target": "snmpcpu_processor_99"}, ["snmpcpu_processor_99", "not a column"]),
    ({"lags": "0 5"}, ["lags", ">= 1"]),
    ({"test_fraction": "0.9"}, ["test_fraction", "[0.05, 0.5]"]),
])
def test_bad_hyperparameters_name_the_problem(raw_tree, tmp_path, hyperparameters, words):
    root = _with(raw_tree, tmp_path, hyperparameters)
    assert run(train, root) == 1
    reason = (root / "output" / "failure").read_text()
    for word in words:
        assert word in reason
    assert not (root / "model" / "model.joblib").exists()


def test_other_models_train(raw_tree, tmp_path):
    root = _with(raw_tree, tmp_path, {"model": "HistGradientBoostingRegressor", "max_iter": "50"})
    assert run(train, root) == 0
    assert json.loads((root / "output" / "data" / "evaluation.json").read_text())["model"]["R2"] > 0.45
