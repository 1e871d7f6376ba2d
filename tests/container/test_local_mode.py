"""SageMaker SDK v2 local mode, for real: the SDK's own docker-compose runs our images for
Estimator.fit, deploy + predict, and Transformer.transform (no AWS call is made)."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

import opt_ml
from support import REPO, build, run_job

byoc_deploy = pytest.importorskip("byoc_deploy.steps", reason="the deploy tool is not installed (./test.sh installs it)")
from byoc_deploy.sessions import session  # noqa: E402

steps = byoc_deploy


@pytest.fixture(scope="module")
def local():
    return session(local=True)


def _lines(folder) -> list[str]:
    out = sorted(p for p in folder.rglob("*.out"))
    assert out, f"no transform output in {folder}"
    return [line for p in out for line in p.read_text().splitlines()]


def test_xgboost_hdfs_fit_deploy_predict_transform(local, tmp_path, shared_data):
    image = build("xgboost-hdfs")
    opt_ml.hdfs_csv(tmp_path / "data")
    channels = {name: str(tmp_path / "data" / "input" / "data" / name) for name in ("train", "validation")}
    estimator = steps.train(local, image, channels, {"num_round": 30}, output_path=str(tmp_path / "output"))
    model_data = estimator.model_data
    assert model_data.startswith("file://") and model_data.endswith("model.tar.gz")
    with tarfile.open(model_data.removeprefix("file://")) as archive:
        assert sorted(archive.getnames()) == ["metadata.json", "xgboost-model"]

    rows = np.loadtxt(tmp_path / "data" / "input" / "data" / "validation" / "features.csv", delimiter=",")[:200, 1:]
    predictor = steps.deploy(local, image, model_data)
    try:
        answer = predictor.predict(rows[:3].tolist())  # the SDK's CSVSerializer and JSONDeserializer
        assert len(answer["predictions"]) == 3 and {"score", "predicted_label"} <= set(answer["predictions"][0])
        direct = [p["score"] for p in predictor.predict(rows.tolist())["predictions"]]
    finally:
        steps.teardown(local, predictor.endpoint_name)

    batch_input = tmp_path / "batch"
    batch_input.mkdir()
    np.savetxt(batch_input / "rows.csv", rows, delimiter=",", fmt="%g")
    steps.transform(local, image, model_data, str(batch_input), str(tmp_path / "batch-out"))
    lines = _lines(tmp_path / "batch-out")
    assert len(lines) == len(rows)  # exactly one output line per input line, in order
    assert [float(line) for line in lines] == pytest.approx(direct)


def test_builtin_1_0_artifact_served_by_model_with_our_image(local, tmp_path, shared_data):
    """The seed's case: a model.tar.gz that built-in XGBoost 1.0-1 wrote (a pickled Booster, made
    here by xgboost 1.0.2), deployed with Model(image_uri=ours) and nothing else changed, then
    batch transform with the same artifact: both answer 1.0.2's own predictions."""
    import subprocess

    from support import OLD_XGBOOST, old_xgboost_python

    image = build("xgboost-hdfs")
    opt_ml.hdfs_csv(tmp_path / "data")
    train_csv = tmp_path / "data" / "input" / "data" / "train" / "features.csv"
    rows = np.unique(np.loadtxt(tmp_path / "data" / "input" / "data" / "validation" / "features.csv",
                                delimiter=",")[:, 1:], axis=0)[:40]
    batch_input = tmp_path / "batch"
    batch_input.mkdir()
    np.savetxt(batch_input / "rows.csv", rows, delimiter=",", fmt="%g")
    made = tmp_path / "builtin"
    made.mkdir()
    done = subprocess.run([str(old_xgboost_python("1.0")), str(OLD_XGBOOST / "make_builtin_model.py"),
                           str(train_csv), str(batch_input / "rows.csv"), str(made)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = json.loads((made / "predictions.json").read_text())["predictions"]
    assert (made / "xgboost-model").read_bytes()[:2] == b"\x80\x04"  # a pickle, as 1.0-1 writes it
    model_data = tmp_path / "model.tar.gz"
    with tarfile.open(model_data, "w:gz") as archive:
        archive.add(made / "xgboost-model", arcname="xgboost-model")

    predictor = steps.deploy(local, image, str(model_data))
    try:
        answer = predictor.predict(rows.tolist())  # the SDK's CSVSerializer and JSONDeserializer
        assert [p["score"] for p in answer["predictions"]] == pytest.approx(expected, abs=1e-6)
    finally:
        steps.teardown(local, predictor.endpoint_name)
    steps.transform(local, image, str(model_data), str(batch_input), str(tmp_path / "batch-out"))
    assert [float(line) for line in _lines(tmp_path / "batch-out")] == pytest.approx(expected, abs=1e-6)


def test_sklearn_builtin_fit_deploy_transform(local, tmp_path, shared_data):
    image = build("sklearn-cpu")
    opt_ml.prtg_csv(tmp_path / "data")
    channels = {name: str(tmp_path / "data" / "input" / "data" / name) for name in ("train", "test")}
    estimator = steps.train(local, image, channels, {"features": "minutes hour day_of_week", "target": "snmpcpu_processor_1"},
                            output_path=str(tmp_path / "output"))
    predictor = steps.deploy(local, image, estimator.model_data)
    try:
        answer = predictor.predict([[38, 16, 4], [0, 3, 6]])
        assert len(answer["predictions"]) == 2 and all(isinstance(v, float) for v in answer["predictions"])
    finally:
        steps.teardown(local, predictor.endpoint_name)
    batch_input = tmp_path / "batch"
    batch_input.mkdir()
    rows = [[m, h, d] for m, h, d in zip(range(0, 60, 7), range(0, 24, 3), range(7))]
    (batch_input / "rows.csv").write_text("".join(f"{m},{h},{d}\n" for m, h, d in rows))
    steps.transform(local, image, estimator.model_data, str(batch_input), str(tmp_path / "batch-out"))
    assert len(_lines(tmp_path / "batch-out")) == len(rows)


def test_sklearn_estimator_script_mode_with_our_image(local, tmp_path, shared_data):
    """The SDK's SKLearn estimator, unchanged but for image_uri: entry_point trained and served."""
    from sagemaker.sklearn import SKLearn

    image = build("sklearn-cpu")
    opt_ml.prtg_csv(tmp_path / "data")
    estimator = SKLearn(entry_point="train.py", source_dir=str(REPO / "examples" / "sklearn-script"),
                        image_uri=image, role=steps.LOCAL_ROLE, instance_count=1, instance_type="local",
                        sagemaker_session=local, output_path=(tmp_path / "output").as_uri(),
                        hyperparameters={"features": "minutes hour day_of_week", "target": "snmpcpu_processor_1"})
    estimator.fit({name: (tmp_path / "data" / "input" / "data" / name).as_uri() for name in ("train", "test")})
    # Deployed through the SKLearn model: SAGEMAKER_PROGRAM and SAGEMAKER_SUBMIT_DIRECTORY set by the SDK.
    predictor = estimator.deploy(initial_instance_count=1, instance_type="local", wait=False)
    try:
        steps.wait_until_serving(local, predictor.endpoint_name)
        result = predictor.predict(np.array([[38, 16, 4], [0, 3, 6]]))  # SKLearnPredictor: application/x-npy both ways
        assert isinstance(result, np.ndarray) and result.shape == (2,) and np.all((result > 1) & (result < 5))
    finally:
        steps.teardown(local, predictor.endpoint_name)


def _booster_in(model_data: str):
    """The xgboost-model in a local-mode model.tar.gz, loaded on the host."""
    import xgboost as xgb

    with tarfile.open(model_data.removeprefix("file://")) as archive:
        assert "xgboost-model" in archive.getnames()
        return xgb.Booster(model_file=bytearray(archive.extractfile("xgboost-model").read()))


def test_xgboost_estimator_script_mode_with_our_image(local, tmp_path, shared_data):
    """The SDK's XGBoost estimator, unchanged but for image_uri: an AWS-style entry_point trained
    (hyperparameters as --name value) and served through the SDK's XGBoostPredictor (libsvm in, CSV out)."""
    import xgboost as xgb
    from sagemaker.xgboost import XGBoost

    image = build("xgboost-hdfs")
    opt_ml.hdfs_csv(tmp_path / "data")
    estimator = XGBoost(entry_point="train.py", source_dir=str(REPO / "examples" / "xgboost-script"),
                        framework_version="1.7-1", image_uri=image, role=steps.LOCAL_ROLE, instance_count=1,
                        instance_type="local", sagemaker_session=local, output_path=(tmp_path / "output").as_uri(),
                        hyperparameters={"num_round": 25, "max_depth": 4, "eta": 0.3})
    estimator.fit({name: (tmp_path / "data" / "input" / "data" / name).as_uri() for name in ("train", "validation")})
    booster = _booster_in(estimator.model_data)
    assert booster.num_boosted_rounds() == 25  # --num_round 25 reached the script
    rows = np.loadtxt(tmp_path / "data" / "input" / "data" / "validation" / "features.csv", delimiter=",",
                      dtype=np.float32)[:100, 1:]
    # Deployed through the XGBoost model: SAGEMAKER_PROGRAM and SAGEMAKER_SUBMIT_DIRECTORY set by the SDK.
    predictor = estimator.deploy(initial_instance_count=1, instance_type="local", wait=False)
    try:
        steps.wait_until_serving(local, predictor.endpoint_name)
        libsvm = "".join(" ".join(f"{i}:{v:g}" for i, v in enumerate(row)) + "\n" for row in rows)
        answer = predictor.predict(libsvm)  # XGBoostPredictor: LibSVMSerializer, CSVDeserializer
        assert [float(line[0]) for line in answer] == pytest.approx(booster.predict(xgb.DMatrix(rows)).tolist(), rel=1e-6)
    finally:
        steps.teardown(local, predictor.endpoint_name)


INFERENCE = '''
import json, os
import numpy as np
import xgboost as xgb

def model_fn(model_dir):
    booster = xgb.Booster()
    booster.load_model(os.path.join(model_dir, "xgboost-model"))
    return booster

def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"this endpoint takes application/json, not {content_type}")
    return xgb.DMatrix(np.array(json.loads(body)["blocks"], dtype=np.float32))

def output_fn(prediction, accept):
    return json.dumps({"anomalous": [bool(p >= 0.5) for p in prediction], "p": prediction.tolist()}), accept
'''


@pytest.mark.slow
def test_xgboost_model_with_the_scripts_input_and_output_fn(local, tmp_path, shared_data):
    """XGBoostModel(model_data=..., entry_point=..., image_uri=ours): a model trained elsewhere
    (here: on the host), served through the script's model_fn / input_fn / output_fn."""
    import xgboost as xgb
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer
    from sagemaker.xgboost import XGBoostModel

    image = build("xgboost-hdfs")
    opt_ml.hdfs_csv(tmp_path / "data")
    train = np.loadtxt(tmp_path / "data" / "input" / "data" / "train" / "features.csv", delimiter=",", dtype=np.float32)
    booster = xgb.train({"objective": "binary:logistic", "nthread": 1}, xgb.DMatrix(train[:, 1:], label=train[:, 0]), 20)
    booster.save_model(tmp_path / "xgboost-model.json")
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "xgboost-model.json", arcname="xgboost-model")
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(INFERENCE)
    model = XGBoostModel(model_data=(tmp_path / "model.tar.gz").as_uri(), entry_point="inference.py",
                         source_dir=str(code), framework_version="1.7-1", image_uri=image, role=steps.LOCAL_ROLE,
                         sagemaker_session=local)
    predictor = model.deploy(initial_instance_count=1, instance_type="local", wait=False,
                             serializer=JSONSerializer(), deserializer=JSONDeserializer())
    try:
        steps.wait_until_serving(local, predictor.endpoint_name)
        rows = train[:50, 1:]
        answer = predictor.predict({"blocks": rows.tolist()})
        expected = booster.predict(xgb.DMatrix(rows))
        assert answer["p"] == pytest.approx(expected.tolist(), rel=1e-6)
        assert answer["anomalous"] == (expected >= 0.5).tolist()
    finally:
        steps.teardown(local, predictor.endpoint_name)


def _evaluation(output_tar: Path) -> dict:
    with tarfile.open(output_tar) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("evaluation.json"))
        return json.load(archive.extractfile(member))


def test_xgboost_hdfs_two_hosts_train_one_model_as_good_as_one_host(local, tmp_path, shared_data):
    """instance_count=2: two containers on local mode's compose network, the tracker on the first
    host, each host parsing the replicated raw logs and training on its half of the blocks."""
    image = build("xgboost-hdfs")
    opt_ml.hdfs_raw(tmp_path / "data")
    single = run_job(image, tmp_path / "data", "train")
    assert single.returncode == 0, single.stderr[-3000:]
    one_host = json.loads((tmp_path / "data" / "output" / "data" / "evaluation.json").read_text())

    channels = {name: str(tmp_path / "data" / "input" / "data" / name) for name in ("train", "validation")}
    estimator = steps.train(local, image, channels, {}, instance_count=2, output_path=str(tmp_path / "output"))
    output_tar = Path(estimator.model_data.removeprefix("file://")).with_name("output.tar.gz")
    two_hosts = _evaluation(output_tar)
    print({k: (one_host[k], two_hosts[k]) for k in ("precision", "recall", "f1", "roc_auc", "threshold")})
    assert two_hosts["hosts"] == 2 and one_host["hosts"] == 1
    # Every validation block is scored once: the hosts' halves add up to the whole channel.
    assert sum(two_hosts["confusion_matrix"].values()) == sum(one_host["confusion_matrix"].values())
    assert two_hosts["f1"] >= one_host["f1"] - 0.03 and two_hosts["roc_auc"] >= one_host["roc_auc"] - 0.005
    with tarfile.open(estimator.model_data.removeprefix("file://")) as archive:
        assert sorted(archive.getnames()) == ["metadata.json", "xgboost-model"]  # saved by the first host only


def test_local_teardown_removes_only_the_named_endpoints_containers(tmp_path, shared_data):
    """`byoc-deploy deploy --local` in one process, `invoke` and `teardown` in others: invoke's stdout
    is the answer alone; teardown lists and asks (refuses without a terminal), then removes the
    endpoint's containers and leaves an unrelated container publishing port 8080 running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import requests

    from support import free_port

    image = build("sklearn-cpu")
    opt_ml.prtg_csv(tmp_path / "data")
    opt_ml.write_config(tmp_path / "data", {"features": "minutes hour day_of_week", "target": "snmpcpu_processor_1"},
                        channels=("train", "test"))
    trained = run_job(image, tmp_path / "data", "train")
    assert trained.returncode == 0, trained.stderr[-3000:]
    model = tmp_path / "model.tar.gz"
    with tarfile.open(model, "w:gz") as archive:
        for path in (tmp_path / "data" / "model").iterdir():
            archive.add(path, arcname=path.name)

    port, name = free_port(), f"byoc-teardown-{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(byoc_deploy.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}

    def cli(*args, **kwargs):
        return subprocess.run([sys.executable, "-m", "byoc_deploy", *args, "--local", "--local-port", str(port)],
                              env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, **kwargs)

    unrelated = f"byoc-test-unrelated-{os.getpid()}"
    subprocess.run(["docker", "run", "-d", "--name", unrelated, "-p", "127.0.0.1::8080", "byoc-base:bookworm",
                    "sleep", "600"], check=True, capture_output=True)
    deploy = subprocess.Popen([sys.executable, "-m", "byoc_deploy", "deploy", "--local", "--local-port", str(port),
                               "--image", image, "--model-data", str(model), "--endpoint-name", name],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert deploy.poll() is None, "byoc-deploy deploy --local exited"
            time.sleep(0.5)
        labelled = steps._labelled_containers(name)
        assert len(labelled) == 1

        invoked = cli("invoke", "--endpoint-name", name, "--body", "38,16,4", "--accept", "application/json")
        assert invoked.returncode == 0, invoked.stderr
        assert list(json.loads(invoked.stdout)) == ["predictions"]  # the answer and nothing else

        refused = cli("teardown", "--endpoint-name", name)
        assert refused.returncode != 0 and "pass --yes" in refused.stderr and labelled[0] in refused.stderr
        assert cli("teardown", "--endpoint-name", name, "--dry-run").returncode == 0
        assert steps._labelled_containers(name) == labelled

        done = cli("teardown", "--endpoint-name", name, "--yes")
        assert done.returncode == 0, done.stderr
        assert steps._labelled_containers(name) == []
        running = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", unrelated], capture_output=True, text=True)
        assert running.stdout.strip() == "true"  # publishes 8080 too, and was not asked for
        assert deploy.wait(timeout=60) is not None  # the foreground deploy ends with its endpoint
    finally:
        if deploy.poll() is None:
            os.killpg(deploy.pid, signal.SIGTERM)
            deploy.wait(timeout=30)
        ids = [c.split()[0] for c in steps._labelled_containers(name)]
        subprocess.run(["docker", "rm", "-f", unrelated, *ids], capture_output=True)
