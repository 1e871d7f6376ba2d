"""Script mode in the xgboost-hdfs image (the shared byoc.script_mode): an AWS-style XGBoost
script trained with SM_* and --name value, its requirements.txt, SIGTERM forwarded to it, and
serving through its own input_fn / output_fn. The SDK's XGBoost estimator path is in test_local_mode."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import xgboost as xgb

import opt_ml
from support import REPO, Server, build, run_job
from test_script_mode import TRAPS_SIGTERM, Job, _script_job, _sigterm_when

SCRIPT_DIR = REPO / "examples" / "xgboost-script"
HPS = {"num_round": "30", "max_depth": "4", "eta": "0.3"}


@pytest.fixture(scope="module")
def image():
    return build("xgboost-hdfs")


@pytest.fixture(scope="module")
def script_job(image, tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("xgb-script")
    opt_ml.hdfs_csv(root)
    opt_ml.write_config(root, {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"/opt/ml/code"',
                               "sagemaker_container_log_level": "20", "sagemaker_job_name": '"xgb-script"', **HPS},
                        content_types={"train": "text/csv", "validation": "text/csv"})
    return root, run_job(image, root, "train", volumes={SCRIPT_DIR: "/opt/ml/code"})


def _rows(root, n=200) -> np.ndarray:
    return np.loadtxt(root / "input" / "data" / "validation" / "features.csv", delimiter=",", dtype=np.float32)[:n, 1:]


def test_the_users_script_trains_instead_of_the_builtin_algorithm(script_job):
    root, job = script_job
    assert job.returncode == 0, job.stderr[-3000:]
    hps = json.loads(re.search(r"^SM_HPS: (.*)$", job.stdout, re.M).group(1))
    assert hps == {"num_round": 30, "max_depth": 4, "eta": 0.3}  # as --name value and SM_HPS
    assert re.search(r"^\[29\]\ttrain-auc:[0-9.]+\tvalidation-auc:[0-9.]+$", job.stdout, re.M), job.stdout[-2000:]
    assert "Requirement already satisfied: pandas" in job.stdout  # the bundle's requirements.txt
    assert sorted(p.name for p in (root / "model").iterdir()) == ["xgboost-model"]  # no built-in metadata.json
    written = json.loads((root / "output" / "data" / "training.json").read_text())  # SM_OUTPUT_DATA_DIR
    assert written == {"rounds": 30, "features": 31, "rows": 6440}


INFERENCE = '''
import json
import numpy as np
import xgboost as xgb
from train import model_fn  # the training script's, beside this one in the code folder

def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"this endpoint takes application/json, not {content_type}")
    return xgb.DMatrix(np.array(json.loads(body)["blocks"], dtype=np.float32))

def output_fn(prediction, accept):
    return json.dumps({"anomaly_probability": [round(float(p), 6) for p in prediction]}), "application/json"
'''


def test_serving_uses_the_scripts_handlers_and_the_framework_defaults(image, script_job, tmp_path):
    """One endpoint with the training script (model_fn only: default input_fn / predict_fn /
    output_fn, as the SDK's XGBoostPredictor calls them), one with input_fn / output_fn."""
    root, job = script_job
    assert job.returncode == 0, job.stderr[-3000:]
    rows = _rows(root)
    expected = xgb.Booster(model_file=str(root / "model" / "xgboost-model")).predict(xgb.DMatrix(rows))
    env = {"SAGEMAKER_PROGRAM": "train.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"}
    with Server(image, root / "model", env=env, volumes={SCRIPT_DIR: "/opt/ml/code"}) as server:
        libsvm = "".join(" ".join(f"{i}:{v:g}" for i, v in enumerate(row)) + "\n" for row in rows)
        answer = server.post(libsvm, "text/libsvm", "text/csv")  # XGBoostPredictor: LibSVMSerializer, CSVDeserializer
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose([float(v) for v in answer.text.split()], expected, rtol=1e-6)
        wrong = server.post("1,2,3\n", "text/csv")
        assert wrong.status_code == 400 and "31" in wrong.json()["error"], wrong.text

    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text((SCRIPT_DIR / "train.py").read_text())
    (code / "inference.py").write_text(INFERENCE)
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"}
    with Server(image, root / "model", env=env, volumes={code: "/opt/ml/code"}) as server:
        answer = server.post(json.dumps({"blocks": rows[:20].tolist()}), "application/json")
        assert answer.status_code == 200, answer.text
        assert answer.json()["anomaly_probability"] == pytest.approx(expected[:20].tolist(), abs=1e-6)
        refused = server.post("1,2\n", "text/csv")
        assert refused.status_code == 400 and "this endpoint takes application/json" in refused.json()["error"]
        assert server.post(json.dumps({"blocks": rows[:1].tolist()}), "application/json").status_code == 200


def test_sigterm_reaches_the_xgboost_script(image, tmp_path):
    _script_job(tmp_path, tmp_path / "code", TRAPS_SIGTERM, {"exit-code": "3"})
    with Job(image, tmp_path, tmp_path / "code") as job:
        status, took, logs = _sigterm_when(job, "script: training")
    assert (tmp_path / "model" / "stopped.txt").read_text() == "SIGTERM", logs
    assert status == 143, logs
    reason = (tmp_path / "output" / "failure").read_text()
    assert reason.startswith("stopped by SIGTERM (forwarded to train.py, which exited with code 3;"), reason
    assert took < 10, took
