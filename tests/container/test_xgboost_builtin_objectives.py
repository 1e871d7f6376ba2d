"""Built-in XGBoost jobs other than binary in the real image: regression (parquet) and multi:softprob
(CSV) on the PRTG sensor, with the built-in's metric lines, evaluation.json and a model that predicts;
save_model_on_termination under SIGTERM."""
from __future__ import annotations

import json
import subprocess
import time
import uuid

import numpy as np
import pytest
import xgboost as xgb

import opt_ml
from support import build, run_job

REGRESSION = {"objective": "reg:squarederror", "num_round": 300, "early_stopping_rounds": 5,
              "eval_metric": "mae,r2", "_tuning_objective_metric": "validation:rmse",
              "sketch_eps": 0.03, "tree_method": "gpu_hist", "save_model_on_termination": "false"}
MULTICLASS = {"objective": "multi:softprob", "num_class": 3, "num_round": 20, "eval_metric": "mlogloss,accuracy"}


@pytest.fixture(scope="module")
def image():
    return build("xgboost-hdfs")


@pytest.fixture(scope="module")
def jobs(image, tmp_path_factory, shared_data):
    table = opt_ml.prtg_load_table()
    classes = table.copy()
    classes["label"] = np.digitize(classes["label"], [3, 6]).astype("float32")
    roots = {"regression": opt_ml.prtg_load(tmp_path_factory.mktemp("regression"), REGRESSION, table),
             "multiclass": opt_ml.prtg_load(tmp_path_factory.mktemp("multiclass"), MULTICLASS, classes, fmt="csv")}
    return {name: (root, run_job(image, root, "train")) for name, root in roots.items()}


def _outputs(root):
    evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    metadata = json.loads((root / "model" / "metadata.json").read_text())
    return evaluation, metadata, xgb.Booster(model_file=str(root / "model" / "xgboost-model"))


def test_regression_job_prints_reports_and_predicts(jobs):
    root, job = jobs["regression"]
    assert job.returncode == 0, job.stderr[-3000:]
    rounds = [line for line in job.stdout.splitlines() if line.startswith("[")]
    assert all("\tvalidation-rmse:" in line and "\tvalidation-r2:" in line for line in rounds)
    assert "sketch_eps is not in XGBoost 3.2.0" in job.stderr and "tree_method=gpu_hist" in job.stderr
    evaluation, metadata, booster = _outputs(root)
    assert metadata["objective"] == "reg:squarederror" and "threshold" not in metadata
    assert evaluation["r2"] > 0.5 and f"validation-rmse: {evaluation['rmse']:.6g}" in job.stdout
    assert len(rounds) < 300 and evaluation["best_iteration"] == int(np.argmin(
        [float(line.split("validation-rmse:")[1].split()[0]) for line in rounds]))
    table = opt_ml.prtg_load_table()
    later = table.iloc[int(len(table) * 0.8):]
    predicted = booster.inplace_predict(later.drop(columns="label").to_numpy())
    assert np.sqrt(np.mean((predicted - later["label"].to_numpy()) ** 2)) == pytest.approx(evaluation["rmse"], rel=1e-4)


def test_multiclass_job_prints_reports_and_predicts(jobs):
    root, job = jobs["multiclass"]
    assert job.returncode == 0, job.stderr[-3000:]
    assert "[19]\ttrain-mlogloss:" in job.stdout and "\tvalidation-accuracy:" in job.stdout
    evaluation, metadata, booster = _outputs(root)
    assert metadata["objective"] == "multi:softprob" and metadata["num_class"] == 3
    assert {"mlogloss", "merror", "accuracy"} <= set(evaluation) and "f1" not in evaluation
    assert f"validation-accuracy: {evaluation['accuracy']:.6g}" in job.stdout
    rows = np.loadtxt(root / "input" / "data" / "validation" / "part.csv", delimiter=",")
    probabilities = booster.inplace_predict(rows[:, 1:])
    assert probabilities.shape == (len(rows), 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert np.mean(np.argmax(probabilities, axis=1) == rows[:, 0]) == pytest.approx(evaluation["accuracy"])


def test_save_model_on_termination_leaves_the_model_of_the_rounds_done(image, tmp_path, shared_data):
    root = opt_ml.prtg_load(tmp_path, {"objective": "reg:squarederror", "num_round": 100000, "eta": 0.01,
                                       "save_model_on_termination": "true"})
    name = f"byoc-hparams-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--name", name, "-v", f"{root}:/opt/ml", image, "train"],
                   check=True, capture_output=True)
    try:
        deadline = time.monotonic() + 120
        while "[20]" not in (logs := subprocess.run(["docker", "logs", name], capture_output=True, text=True)).stdout:
            assert time.monotonic() < deadline, logs.stderr[-3000:]
            time.sleep(0.2)
        subprocess.run(["docker", "kill", "--signal", "SIGTERM", name], check=True, capture_output=True)
        exit_code = int(subprocess.run(["docker", "wait", name], capture_output=True, text=True, timeout=60).stdout)
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert exit_code == 143, logs.stderr[-3000:]  # stopped, as without the option
    assert "save_model_on_termination=true" in logs.stderr
    booster = xgb.Booster(model_file=str(root / "model" / "xgboost-model"))
    assert 20 < booster.num_boosted_rounds() < 100000
    assert json.loads((root / "model" / "metadata.json").read_text())["objective"] == "reg:squarederror"
    assert "stopped by SIGTERM" in (root / "output" / "failure").read_text()
