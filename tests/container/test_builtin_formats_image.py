"""Formats as SageMaker's built-in XGBoost reads them (issue 13, point 2), in real containers on the real
HDFS rows: a 1-based libsvm channel with ContentType 'libsvm' trains without a phantom column and its
model answers 1-based requests; RecordIO-protobuf written by the SDK v2 trains and is answered;
'text/csv;label_size=1' with csv_weights=1 trains, label_size=2 fails the job naming it; and the
SDK's own local mode fits with TrainingInput(content_type='libsvm')."""
from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

import opt_ml
from support import Server, build, run_job

sdk = pytest.importorskip("sagemaker.amazon.common", reason="the SageMaker SDK v2 is not installed")
from sagemaker.serializers import RecordSerializer  # noqa: E402

RECORDIO = "application/x-recordio-protobuf"


@pytest.fixture(scope="module")
def hdfs_rows(tmp_path_factory, shared_data):
    return opt_ml.hdfs_csv_rows(tmp_path_factory.mktemp("hdfs-csv"))


def _libsvm(rows, base: int) -> str:
    return "".join(" ".join([f"{r[0]:g}", *(f"{i + base}:{v:g}" for i, v in enumerate(r[1:]) if v)]) + "\n" for r in rows)


def _csv(rows) -> str:
    return "".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows)


def _dense(array, labels=None) -> bytes:
    buffer = io.BytesIO()
    sdk.write_numpy_to_dense_tensor(buffer, array, labels)
    return buffer.getvalue()


def _job(root, files: dict, content_types: dict, hyperparameters=None):
    return opt_ml.write_job(root, files, content_types, {"num_round": 20, **(hyperparameters or {})})


def _json(root, *path) -> dict:
    return json.loads(root.joinpath(*path).read_text())


def _scores(answer) -> list[float]:
    assert answer.status_code == 200, answer.text
    return [p["score"] for p in answer.json()["predictions"]]


def test_one_based_libsvm_channel_trains_and_its_model_answers_one_based(hdfs_rows, tmp_path):
    image = build("xgboost-hdfs")
    root = _job(tmp_path, {n: ("data.libsvm", _libsvm(hdfs_rows[n], 1)) for n in ("train", "validation")},
                {"train": "libsvm", "validation": "libsvm"})  # what TrainingInput(content_type='libsvm') sends
    job = run_job(image, root, "train", timeout=600)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "libsvm indices are 1-based" in job.stderr
    metadata = _json(root, "model", "metadata.json")
    assert metadata["libsvm_index_base"] == 1 and metadata["feature_source"] == "text/libsvm"
    assert _json(root, "output", "data", "evaluation.json")["f1"] > 0.85

    rows = hdfs_rows["validation"][:200]
    with Server(image, root / "model") as server:
        one_based = _scores(server.post(_libsvm(rows, 1), "libsvm", "application/json"))
        assert len(one_based) == 200
        refused = server.post("0 0:1 3:1\n", "text/libsvm", "application/json")
        assert refused.status_code == 400 and "feature index 0 in a 1-based request" in refused.json()["error"]
        # The widest row, 1-based: index 28 of a 28-feature model (once "feature index 28 is out of range").
        widest = max(int(t.split(":")[0]) for line in _libsvm(hdfs_rows["train"], 1).splitlines() for t in line.split()[1:])
        assert server.post(f"0 {widest}:1\n", "text/x-libsvm", "application/json").status_code == 200
        # The SDK's sparse records (absent keys missing, as in libsvm) get the libsvm scores.
        buffer = io.BytesIO()
        sdk.write_spmatrix_to_sparse_tensor(buffer, sp.csr_matrix(rows[:, 1:widest + 1]))
        assert _scores(server.post(buffer.getvalue(), RECORDIO, "application/json")) == pytest.approx(one_based, abs=1e-6)
        assert server.running()


def test_recordio_trains_and_is_answered_label_size_2_fails(hdfs_rows, tmp_path):
    """(csv_weights and 'text/csv;label_size=1' train in tests/unit/test_builtin_formats.py, in process.)"""
    image = build("xgboost-hdfs")
    train, validation = hdfs_rows["train"], hdfs_rows["validation"]
    jobs = {
        # Validation without ContentType: found by the RecordIO magic.
        "recordio": _job(tmp_path / "recordio", {"train": ("train.rec", _dense(train[:, 1:], train[:, 0])),
                                                 "validation": ("validation.rec", _dense(validation[:, 1:], validation[:, 0]))},
                         {"train": RECORDIO}),
        "label_size_2": _job(tmp_path / "label2", {"train": ("w.csv", _csv(train[:20]))}, {"train": "text/csv; label_size=2"}),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(jobs, pool.map(lambda root: run_job(image, root, "train", timeout=600), jobs.values())))
    assert done["recordio"].returncode == 0, done["recordio"].stderr[-3000:]
    assert _json(jobs["recordio"], "model", "metadata.json")["feature_source"] == RECORDIO
    assert _json(jobs["recordio"], "output", "data", "evaluation.json")["f1"] > 0.85
    assert done["label_size_2"].returncode != 0
    failure = (jobs["label_size_2"] / "output" / "failure").read_text()
    assert "ContentType 'text/csv; label_size=2': label_size=2 is not supported" in failure

    probe = validation[:200, 1:]
    with Server(image, jobs["recordio"] / "model") as server:
        from_csv = _scores(server.post(_csv(probe), "csv", "application/json"))
        assert _scores(server.post(RecordSerializer().serialize(probe).read(), RECORDIO, "application/json")) == from_csv
        damaged = server.post(RecordSerializer().serialize(probe).read()[:-5], RECORDIO, "application/json")
        assert damaged.status_code == 400 and "cut short" in damaged.json()["error"]
        narrow = server.post(RecordSerializer().serialize(probe[:, :5]).read(), RECORDIO, "application/json")
        assert narrow.status_code == 400 and "records have 5 features but the model expects" in narrow.json()["error"]


@pytest.mark.slow
def test_sdk_local_mode_fits_training_input_content_type_libsvm(hdfs_rows, tmp_path):
    """The SDK v2's Estimator(image_uri=ours).fit with TrainingInput(..., content_type='libsvm') in local mode."""
    steps = pytest.importorskip("byoc_deploy.steps", reason="the deploy tool is not installed (./test.sh installs it)")
    from byoc_deploy.sessions import session
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    import tarfile

    image = build("xgboost-hdfs")
    local = session(local=True)
    for name in ("train", "validation"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "data.libsvm").write_text(_libsvm(hdfs_rows[name], 1))
    estimator = Estimator(image_uri=image, role=steps.LOCAL_ROLE, instance_count=1, instance_type="local",
                          sagemaker_session=local, output_path=(tmp_path / "output").as_uri(),
                          hyperparameters={"num_round": "20"}, debugger_hook_config=False, disable_profiler=True)
    estimator.fit({name: TrainingInput((tmp_path / "data" / name).as_uri(), content_type="libsvm")
                   for name in ("train", "validation")})
    with tarfile.open(estimator.model_data.removeprefix("file://")) as archive:
        metadata = json.load(archive.extractfile("metadata.json"))
    assert metadata["libsvm_index_base"] == 1 and metadata["feature_source"] == "text/libsvm"
