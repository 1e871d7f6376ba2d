"""Models that SageMaker's built-in XGBoost containers wrote, made here by the XGBoost versions they
ran (host venvs from tests/artifacts/requirements-xgboost-*.txt, made once per machine), served by
the image in single-model and multi-model serving: each answers that version's own predictions.

0.90 (built-in 0.90-1/-2): pickle.dump of the Booster (protocol 3), the legacy binary model inside;
1.0.2 (built-in 1.0-1, the seed's): pickle.dump of the Booster, its config and model inside;
1.7.6 (built-in 1.7-1): save_model('xgboost-model'), the legacy binary format;
3.0.5 (built-in 3.0-5): save_model('xgboost-model'), UBJSON."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

import opt_ml
from support import OLD_XGBOOST, Server, build, old_xgboost_python, run_job

MME = {"SAGEMAKER_MULTI_MODEL": "true"}
VERSIONS = {"0.90": b"\x80\x03", "1.0": b"\x80\x04", "1.7": b"binf", "3.0": b"{"}  # venv -> how its xgboost-model begins
REQUEST_ROWS = 60


class _RunsACommand:
    """Unpickled by pickle.loads, this would run a shell command in the container."""

    def __reduce__(self):
        return os.system, ("touch /tmp/unpickled-and-ran",)


@pytest.fixture(scope="module")
def builtin_models(tmp_path_factory, shared_data):
    """{version: (model dir, that version's predictions)}, the image and the request body."""
    with ThreadPoolExecutor(len(VERSIONS) + 1) as pool:  # the venvs (first run only) while the image builds
        image = pool.submit(build, "xgboost-hdfs")
        started = time.monotonic()
        pythons = dict(zip(VERSIONS, pool.map(old_xgboost_python, VERSIONS)))
        print(f"old XGBoost venvs ready in {time.monotonic() - started:.1f} s")
        data = tmp_path_factory.mktemp("hdfs-csv")
        opt_ml.hdfs_csv(data)
        blocks = np.vstack([np.loadtxt(data / "input" / "data" / channel / "features.csv", delimiter=",")
                            for channel in ("validation", "train")])
        rows = np.unique(blocks[:, 1:], axis=0)[:REQUEST_ROWS]  # distinct rows: each checks something
        assert len(rows) == REQUEST_ROWS
        request = data / "request.csv"
        np.savetxt(request, rows, delimiter=",", fmt="%g")

        def make(version):
            out = tmp_path_factory.mktemp(f"builtin-{version}")
            done = subprocess.run([str(pythons[version]), str(OLD_XGBOOST / "make_builtin_model.py"),
                                   str(data / "input" / "data" / "train" / "features.csv"), str(request), str(out)],
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
            predictions = np.array(json.loads((out / "predictions.json").read_text())["predictions"])
            (out / "predictions.json").unlink()  # the model dir holds what the built-in left: xgboost-model
            assert sorted(p.name for p in out.iterdir()) == ["xgboost-model"]
            assert (out / "xgboost-model").read_bytes().startswith(VERSIONS[version]), version
            return out, predictions

        models = dict(zip(VERSIONS, pool.map(make, VERSIONS)))
        return image.result(), models, request.read_bytes()


def _scores(response) -> np.ndarray:
    assert response.status_code == 200, response.text[:500]
    return np.array([p["score"] for p in response.json()["predictions"]])


def test_each_builtin_version_serves_its_own_predictions(builtin_models):
    image, models, body = builtin_models

    def serve(version):
        started = time.monotonic()
        with Server(image, models[version][0]) as server:
            ready = time.monotonic() - started
            return ready, _scores(server.post(body, "text/csv", "application/json")), server.logs()

    with ThreadPoolExecutor(len(models)) as pool:  # one endpoint per version, side by side
        served = dict(zip(models, pool.map(serve, models)))
    for version, (ready, scores, logs) in served.items():
        print(f"xgboost {version} artifact: endpoint ready in {ready:.1f} s")
        np.testing.assert_allclose(scores, models[version][1], rtol=0, atol=1e-6, err_msg=f"xgboost {version}")
        assert ("converted to UBJSON by XGBoost 2.1.4" in logs) == (version != "3.0"), logs[-2000:]
        assert ("a pickled Booster" in logs) == (version in ("0.90", "1.0")), logs[-2000:]


def test_an_unreadable_artifact_stops_the_endpoint_naming_the_file(builtin_models, tmp_path):
    image, _, _ = builtin_models
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "xgboost-model").write_bytes(bytes(range(256)) * 20)
    started = time.monotonic()
    served = run_job(image, tmp_path, "serve", timeout=120)
    print(f"unreadable artifact: the endpoint exited {served.returncode} after {time.monotonic() - started:.1f} s")
    assert served.returncode != 0
    assert ("could not load the model from /opt/ml/model: /opt/ml/model/xgboost-model: not a model XGBoost "
            "can read (JSON, UBJSON, the legacy binary format or a pickled Booster): XGBoost 2.1.4:") in served.stderr


def test_multi_model_loads_every_version_and_refuses_broken_ones_while_serving(builtin_models, tmp_path):
    """POST /models + invoke for each version; a corrupt file and a pickle that names os.system are
    refused (MMS's 500 JSON; the log names the problem), nothing of the pickle runs, and the other
    models keep answering."""
    image, models, body = builtin_models
    store = tmp_path / "models"
    for version, (model_dir, _) in models.items():
        shutil.copytree(model_dir, store / version / "model")
    (store / "corrupt" / "model").mkdir(parents=True)
    (store / "corrupt" / "model" / "xgboost-model").write_bytes(b"binf" + bytes(100))
    (store / "command" / "model").mkdir(parents=True)
    (store / "command" / "model" / "xgboost-model").write_bytes(pickle.dumps(_RunsACommand(), protocol=3))
    with Server(image, tmp_path, env=MME, volumes={store: "/opt/ml/models"}) as server:
        def load(name):
            return requests.post(f"{server.url}/models", json={"model_name": name, "url": f"/opt/ml/models/{name}/model"},
                                 timeout=120)

        def invoke(name):
            return requests.post(f"{server.url}/models/{name}/invoke", data=body,
                                 headers={"Content-Type": "text/csv", "Accept": "application/json"}, timeout=60)

        for version, (_, expected) in models.items():
            assert load(version).status_code == 200, version
            np.testing.assert_allclose(_scores(invoke(version)), expected, rtol=0, atol=1e-6, err_msg=version)
        for name in ("corrupt", "command"):
            refused = load(name)
            assert refused.status_code >= 400 and refused.json()["message"], (name, refused.text)
        logs = server.logs()
        assert ("could not load the model from /opt/ml/models/corrupt/model: /opt/ml/models/corrupt/model/"
                "xgboost-model: not a model XGBoost can read") in logs
        assert ("could not load the model from /opt/ml/models/command/model: /opt/ml/models/command/model/"
                "xgboost-model: not a loadable pickled XGBoost Booster: it names posix.system, and only an "
                "XGBoost Booster (xgboost.core.Booster) is loaded from a pickle") in logs
        ran = subprocess.run(["docker", "exec", server.name, "ls", "/tmp/unpickled-and-ran"], capture_output=True)
        assert ran.returncode != 0, "the pickle's command ran"
        names = sorted(m["modelName"] for m in requests.get(f"{server.url}/models", timeout=10).json()["models"])
        assert names == sorted(models)
        for version, (_, expected) in models.items():
            np.testing.assert_allclose(_scores(invoke(version)), expected, rtol=0, atol=1e-6, err_msg=version)
        assert requests.get(f"{server.url}/ping", timeout=10).status_code == 200
