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
