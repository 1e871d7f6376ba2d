"""Multi-model endpoints in real containers: SAGEMAKER_MULTI_MODEL=true starts multi-model-server
(through sagemaker-inference) with our handler, driven through the /models API as SageMaker calls
it. Answers must be byte for byte those of the single-model server for the same model and body."""
from __future__ import annotations

import gzip
import shutil
import threading
import time

import numpy as np
import pytest
import requests
import xgboost as xgb

import opt_ml
from support import Server, build, run_job

MME = {"SAGEMAKER_MULTI_MODEL": "true"}


class Endpoint:
    """The /models API of a multi-model container, as SageMaker calls it."""

    def __init__(self, server: Server):
        self.url = server.url

    def load(self, name: str, timeout: float = 60) -> requests.Response:
        return requests.post(f"{self.url}/models", json={"model_name": name, "url": f"/opt/ml/models/{name}/model"},
                             timeout=timeout)

    def unload(self, name: str) -> requests.Response:
        return requests.delete(f"{self.url}/models/{name}", timeout=60)

    def invoke(self, name: str, body: bytes, content_type: str, accept: str | None = None) -> requests.Response:
        headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
        return requests.post(f"{self.url}/models/{name}/invoke", data=body, headers=headers, timeout=60)

    def names(self) -> list[str]:
        return sorted(m["modelName"] for m in requests.get(f"{self.url}/models", timeout=10).json()["models"])


def _model_store(tmp_path, models: dict) -> "Path":
    """SageMaker unpacks each model.tar.gz to /opt/ml/models/<name>/model."""
    store = tmp_path / "models"
    for name, model_dir in models.items():
        shutil.copytree(model_dir, store / name / "model")
    return store


def _trained(image, root, hyperparameters=None):
    if hyperparameters is not None:
        opt_ml.write_config(root, hyperparameters, channels=tuple(p.name for p in (root / "input" / "data").iterdir()))
    job = run_job(image, root, "train")
    assert job.returncode == 0, job.stderr[-3000:]
    return root / "model"


def _single_model_answer(image, model_dir, body, content_type, accept=None) -> bytes:
    with Server(image, model_dir) as server:
        response = server.post(body, content_type, accept)
        assert response.status_code == 200, response.text
        return response.content


@pytest.fixture(scope="module")
def xgboost_models(tmp_path_factory, shared_data):
    image = build("xgboost-hdfs")
    raw, csv = tmp_path_factory.mktemp("raw"), tmp_path_factory.mktemp("csv")
    opt_ml.hdfs_raw(raw)
    opt_ml.hdfs_csv(csv)
    builtin = tmp_path_factory.mktemp("builtin")  # a model as SageMaker's built-in XGBoost writes it
    rows = np.loadtxt(csv / "input" / "data" / "train" / "features.csv", delimiter=",")
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(rows[:, 1:], rows[:, 0]), 20)
    booster.save_model(str(builtin / "xgboost-model.ubj"))
    (builtin / "xgboost-model.ubj").rename(builtin / "xgboost-model")
    models = {"raw-logs": _trained(image, raw), "features": _trained(image, csv, {"num_round": 20, "max_depth": 4}),
              "builtin": builtin}
    with gzip.open(raw / "input" / "data" / "validation" / "HDFS.log.gz", "rt") as logs:
        lines = "".join(next(logs) for _ in range(400)).encode()
    feature_rows = "\n".join(",".join(f"{v:g}" for v in row[1:]) for row in rows[:50]).encode() + b"\n"
    return image, models, {"raw-logs": (lines, "text/plain"), "features": (feature_rows, "text/csv"),
                           "builtin": (feature_rows, "text/csv")}


def test_xgboost_three_models_load_list_describe_invoke_unload(xgboost_models, tmp_path):
    image, models, bodies = xgboost_models
    expected = {name: _single_model_answer(image, models[name], *bodies[name]) for name in models}
    store = _model_store(tmp_path, models)
    with Server(image, tmp_path, env=MME, volumes={store: "/opt/ml/models"}) as server:
        endpoint = Endpoint(server)
        for name in models:
            assert endpoint.load(name).status_code == 200
        assert endpoint.names() == sorted(models)
        described = requests.get(f"{server.url}/models/features", timeout=10).json()
        described = described[0] if isinstance(described, list) else described
        assert described["modelName"] == "features" and described["workers"][0]["status"] == "READY"
        for name, (body, content_type) in bodies.items():
            answer = endpoint.invoke(name, body, content_type)
            assert answer.status_code == 200 and answer.content == expected[name], (name, answer.text[:300])
        # The same codecs: content negotiation and errors as JSON naming the problem.
        assert endpoint.invoke("features", bodies["features"][0], "text/csv", "application/json").json()["predictions"]
        wrong = endpoint.invoke("features", b"1,2,3\n", "text/csv")
        assert wrong.status_code == 400 and "columns" in wrong.json()["error"]
        assert endpoint.invoke("features", b"{}", "application/x-unknown").status_code == 415
        assert endpoint.invoke("builtin", bodies["raw-logs"][0], "text/plain").status_code == 415
        assert endpoint.load("features").status_code == 409  # already loaded
        assert endpoint.unload("raw-logs").status_code == 200
        assert endpoint.invoke("raw-logs", *bodies["raw-logs"]).status_code == 404
        assert endpoint.names() == ["builtin", "features"]
        assert requests.get(f"{server.url}/ping", timeout=10).status_code == 200


def test_xgboost_models_load_and_unload_while_requests_run(xgboost_models, tmp_path):
    image, models, bodies = xgboost_models
    store = _model_store(tmp_path, {**models, "features-2": models["features"], "builtin-2": models["builtin"]})
    body, content_type = bodies["features"]
    with Server(image, tmp_path, env=MME, volumes={store: "/opt/ml/models"}) as server:
        endpoint = Endpoint(server)
        assert endpoint.load("features").status_code == 200
        expected = endpoint.invoke("features", body, content_type).content
        statuses, stop = [], threading.Event()

        def hammer():
            while not stop.is_set():
                answer = endpoint.invoke("features", body, content_type)
                statuses.append(answer.status_code if answer.content == expected else -answer.status_code)

        clients = [threading.Thread(target=hammer) for _ in range(3)]
        for client in clients:
            client.start()
        try:
            changes = []
            for name in ("raw-logs", "builtin", "features-2", "builtin-2"):
                changes.append(endpoint.load(name).status_code)
            for name in ("raw-logs", "features-2"):
                changes.append(endpoint.unload(name).status_code)
            changes.append(endpoint.load("raw-logs").status_code)
            assert endpoint.invoke("raw-logs", *bodies["raw-logs"]).status_code == 200
        finally:
            stop.set()
            for client in clients:
                client.join()
        print(f"{len(statuses)} requests to 'features' while 7 loads/unloads ran: {statuses.count(200)} correct")
        assert changes == [200] * 7
        assert len(statuses) > 20 and set(statuses) == {200}
        assert endpoint.names() == ["builtin", "builtin-2", "features", "raw-logs"]


def test_xgboost_load_answers_507_when_memory_is_short_and_keeps_serving(xgboost_models, tmp_path):
    """A container with little memory: models load until the next one would not fit, which is
    answered 507 (MME contract: SageMaker then unloads other models); loaded models keep answering."""
    image, models, bodies = xgboost_models
    names = [f"m{i}" for i in range(10)]
    store = _model_store(tmp_path, {name: models["features"] for name in names})
    with Server(image, tmp_path, env=MME, volumes={store: "/opt/ml/models"},
                docker_args=("--memory", "450m", "--memory-swap", "450m")) as server:
        endpoint = Endpoint(server)
        codes = []
        for name in names:
            codes.append(endpoint.load(name).status_code)
            if codes[-1] != 200:
                break
        print(f"loads in a 450 MiB container: {codes}")
        assert codes[0] == 200 and codes[-1] == 507 and set(codes[:-1]) == {200}
        assert server.running() and requests.get(f"{server.url}/ping", timeout=10).status_code == 200
        for name in names[: len(codes) - 1]:
            assert endpoint.invoke(name, *bodies["features"]).status_code == 200
        # As SageMaker does after a 507: unload others, then retry. MMS keeps the refused name
        # registered without a worker, so that name is unloaded too before the retry.
        for name in (names[0], names[1]):
            assert endpoint.unload(name).status_code == 200
        failed = names[len(codes) - 1]
        endpoint.unload(failed)
        retries = []
        while len(retries) < 20 and (not retries or retries[-1] != 200):
            time.sleep(0.5)  # the unloaded workers' processes take a moment to exit
            retries.append(endpoint.load(failed).status_code)
            if retries[-1] == 507:
                endpoint.unload(failed)
        print(f"reload after unloading two: {retries}")
        assert retries[-1] == 200
        assert endpoint.invoke(failed, *bodies["features"]).status_code == 200


def test_sklearn_three_models_through_the_same_api(tmp_path_factory, tmp_path, shared_data):
    image = build("sklearn-cpu")
    models = {}
    for choice in ("LinearRegression", "HistGradientBoostingRegressor", "KNeighborsRegressor"):
        root = tmp_path_factory.mktemp(choice)
        opt_ml.prtg_csv(root)
        models[choice.lower()] = _trained(image, root, {"features": "minutes hour day_of_week",
                                                        "target": "snmpcpu_processor_1", "model": choice})
    body = b"38,16,4\n0,3,6\n59,23,0\n"
    expected = {name: _single_model_answer(image, model_dir, body, "text/csv") for name, model_dir in models.items()}
    assert len(set(expected.values())) == 3  # three different models
    store = _model_store(tmp_path, models)
    with Server(image, tmp_path, env=MME, volumes={store: "/opt/ml/models"}) as server:
        endpoint = Endpoint(server)
        for name in models:
            assert endpoint.load(name).status_code == 200
        assert endpoint.names() == sorted(models)
        for name in models:
            answer = endpoint.invoke(name, body, "text/csv")
            assert answer.status_code == 200 and answer.content == expected[name]
        bad = endpoint.invoke("linearregression", b"38,16\n", "text/csv")
        assert bad.status_code == 400 and "columns" in bad.json()["error"]
        assert endpoint.unload("kneighborsregressor").status_code == 200
        assert endpoint.names() == ["histgradientboostingregressor", "linearregression"]
