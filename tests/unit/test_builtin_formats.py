"""Formats as SageMaker's built-in XGBoost reads them (issue 13, point 2), without Docker: RecordIO-
protobuf written by the SDK v2's own functions, short and parameterised ContentTypes, 1-based libsvm
detected per job in training and per model (or request) in serving, and csv_weights."""
import io
import json
import logging

import numpy as np
import pytest
import scipy.sparse as sp

import opt_ml
from byoc import codecs, recordio
from byoc.errors import DataError, RequestError
from byoc.training import TrainingEnv, run

sdk = pytest.importorskip("sagemaker.amazon.common", reason="the SageMaker SDK v2 is not installed")
from sagemaker.serializers import RecordSerializer  # noqa: E402


def _dense(array, labels=None) -> bytes:
    buffer = io.BytesIO()
    sdk.write_numpy_to_dense_tensor(buffer, array, labels)
    return buffer.getvalue()


def _sparse(matrix, labels=None) -> bytes:
    buffer = io.BytesIO()
    sdk.write_spmatrix_to_sparse_tensor(buffer, matrix, labels)
    return buffer.getvalue()


# RecordIO-protobuf ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, int])  # int: the SDK writes an Int32Tensor
def test_recordio_dense_rows_and_labels_as_the_sdk_writes_them(dtype):
    rng = np.random.default_rng(7)
    array = (rng.random((50, 6)) * 100).astype(dtype)
    labels = rng.integers(0, 2, 50).astype(dtype)
    rows = recordio.read(_dense(array, labels), labels=True)
    assert isinstance(rows.features, np.ndarray) and rows.features.dtype == np.float32
    assert np.array_equal(rows.features, array.astype(np.float32)) and np.array_equal(rows.labels, labels)
    assert recordio.read(_dense(array)).labels is None  # serving: features only


def test_recordio_sparse_rows_keep_their_width_and_empty_rows():
    matrix = sp.random(40, 300, density=0.02, format="csr", random_state=3, dtype=np.float64)
    matrix[5] = 0  # a row with no entries: the SDK writes its shape alone
    matrix.eliminate_zeros()
    assert matrix[5].nnz == 0
    labels = np.arange(40) % 2
    rows = recordio.read(_sparse(matrix, labels.astype(np.float32)), labels=True)
    assert sp.isspmatrix_csr(rows.features) and rows.features.shape == (40, 300)
    assert rows.features.nnz == matrix.nnz and abs(rows.features - matrix).max() < 1e-6
    assert rows.labels.tolist() == labels.tolist()


def test_recordio_record_serializer_body_and_split_records():
    body = RecordSerializer().serialize(np.array([1.5, 2.0, 3.0])).read()  # one row, as predict() sends it
    assert recordio.read(body).features.tolist() == [[1.5, 2.0, 3.0]]
    # MXNet splits a payload that holds the magic into parts (flags 1, 2, 3), the magic taken out between
    # them; the SDK never does, but any RecordIO reader must join them again.
    whole = next(recordio.payloads(_dense(np.array([[1.0, 2.0]], dtype=np.float32))))
    cut = [whole[:3], whole[3:5], whole[5:]]
    framed = b"".join(recordio.MAGIC_BYTES + (len(p) | flag << 29).to_bytes(4, "little") + p + b"\0" * (-len(p) % 4)
                      for p, flag in zip(cut, (1, 2, 3)))
    assert list(recordio.payloads(framed)) == [recordio.MAGIC_BYTES.join(cut)]


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b"junk" + b[4:], r"record 1 \(byte 0\): no RecordIO magic 0xced7230a"),
    (lambda b: b[:-6], r"record 3 \(byte \d+\): its header gives \d+ bytes but \d+ follow; the data is cut short"),
    (lambda b: b + b"\x0a\x23", r"record 4 .*too few for a RecordIO header"),
    (lambda b: b[:8] + b"\xff" * (len(b) - 8), r"record 1: not a Record protobuf"),
])
def test_recordio_damage_is_named_by_record_and_byte(mangle, message):
    body = _dense(np.ones((3, 2), dtype=np.float32))
    with pytest.raises(recordio.RecordIOError, match=message):
        recordio.read(mangle(body))


def test_recordio_training_needs_labels_and_equal_dense_widths():
    with pytest.raises(recordio.RecordIOError, match=r"record 1 has no label\['values'\]"):
        recordio.read(_dense(np.ones((2, 3), dtype=np.float32)), labels=True)
    mixed = _dense(np.ones((2, 3), dtype=np.float32)) + _dense(np.ones((1, 4), dtype=np.float32))
    with pytest.raises(recordio.RecordIOError, match="record 3 has 4 values but record 1 has 3"):
        recordio.read(mixed)
    with pytest.raises(recordio.RecordIOError, match="record 3 is sparse but record 1 is dense"):
        recordio.read(_dense(np.ones((2, 3), dtype=np.float32)) + _sparse(sp.csr_matrix(np.ones((1, 3)))))


# Serving codecs ---------------------------------------------------------------------------------

def test_short_content_types_and_their_parameters():
    assert codecs.media_type("csv") == codecs.CSV and codecs.media_type("libsvm") == codecs.LIBSVM
    assert codecs.media_type("text/csv;label_size=1") == codecs.CSV
    assert codecs.parameters('text/csv; Label_Size=1; charset="utf-8"') == {"label_size": "1", "charset": "utf-8"}
    assert codecs.decode(b"1,2,3\n", "csv", ["a", "b", "c"]).tolist() == [[1, 2, 3]]


def test_libsvm_requests_count_from_the_models_base_or_are_guessed():
    names = [f"f{i}" for i in range(8)]
    one_based = b"0 1:5 8:2\n1 3:1\n"
    with pytest.raises(RequestError, match=r"row 1: feature index 8 is out of range; the model has 8 features \(0\.\.7\)"):
        codecs.decode(one_based, "text/libsvm", names)  # a 0-based model, as before
    for base in (1, None):  # trained on 1-based files; or a model that says nothing, and no index 0 here
        matrix = codecs.decode(one_based, "libsvm", names, libsvm_index_base=base)
        assert matrix[0, 0] == 5 and matrix[0, 7] == 2 and matrix[1, 2] == 1 and np.isnan(matrix[0, 1])
    with pytest.raises(RequestError, match=r"row 2: feature index 0 in a 1-based request"):
        codecs.decode(b"1:1\n0:1 2:1\n", "text/libsvm", names, libsvm_index_base=1)
    with pytest.raises(RequestError, match=r"feature index 9 is out of range; the model has 8 features \(1\.\.8, read 1-based\)"):
        codecs.decode(b"9:1\n", "text/libsvm", names, libsvm_index_base=1)
    guessed = codecs.decode(b"0:1 7:2\n", "text/libsvm", names, libsvm_index_base=None)  # index 0: 0-based
    assert guessed[0, 0] == 1 and guessed[0, 7] == 2


def test_recordio_requests_dense_and_sparse():
    names = [f"f{i}" for i in range(4)]
    dense = RecordSerializer().serialize(np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float32)).read()
    assert codecs.decode(dense, codecs.RECORDIO, names).tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    sparse = codecs.decode(_sparse(sp.csr_matrix(np.array([[0, 2.0, 0, 4.0]]))), codecs.RECORDIO, names)
    assert np.isnan(sparse[0, 0]) and sparse[0, 1] == 2 and sparse[0, 3] == 4  # absent keys are missing
    with pytest.raises(RequestError, match="records have 3 features but the model expects 4"):
        codecs.decode(RecordSerializer().serialize(np.ones((1, 3))).read(), codecs.RECORDIO, names)
    with pytest.raises(RequestError, match="no RecordIO magic"):
        codecs.decode(b"1,2,3,4\n", codecs.RECORDIO, names)


# Training, in process ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hdfs_rows(tmp_path_factory, shared_data):
    return opt_ml.hdfs_csv_rows(tmp_path_factory.mktemp("hdfs-csv"))


def _libsvm(rows: np.ndarray, base: int, first_always: bool = False) -> str:
    """Label first, the non-zero features as index:value; first_always writes feature 0 even when 0
    (the real rows have none: a 0-based file of them has no index 0, which reads as 1-based)."""
    return "".join(" ".join([f"{r[0]:g}", *(f"{i + base}:{v:g}" for i, v in enumerate(r[1:]) if v or (first_always and i == 0))])
                   + "\n" for r in rows)


def _tree(root, files: dict, content_types: dict, hyperparameters=None):
    return opt_ml.write_job(root, files, content_types, {"num_round": 20, **(hyperparameters or {})})


def _metadata(root) -> dict:
    return json.loads((root / "model" / "metadata.json").read_text())


def test_one_based_libsvm_trains_without_a_phantom_column_and_serves_one_based(hdfs_rows, tmp_path, caplog):
    from xgboost_hdfs import Runtime, train

    one = _tree(tmp_path / "one", {n: ("data.libsvm", _libsvm(hdfs_rows[n], 1)) for n in ("train", "validation")},
                {"train": "libsvm", "validation": "text/x-libsvm"})
    zero = _tree(tmp_path / "zero", {n: ("data.libsvm", _libsvm(hdfs_rows[n], 0, first_always=True))
                                     for n in ("train", "validation")}, {"train": "text/libsvm", "validation": "libsvm"})
    with caplog.at_level(logging.INFO):
        assert run(train, one) == 0
    assert "libsvm indices are 1-based" in caplog.text
    assert run(train, zero) == 0
    both = np.concatenate([hdfs_rows["train"], hdfs_rows["validation"]])[:, 1:]
    width = int(np.flatnonzero(both.any(axis=0)).max()) + 1  # libsvm: as wide as the widest index
    assert _metadata(one)["libsvm_index_base"] == 1 and _metadata(zero)["libsvm_index_base"] == 0
    one_model, zero_model = Runtime(one / "model"), Runtime(zero / "model")
    assert one_model.booster.num_features() == zero_model.booster.num_features() == width  # no phantom column 0
    rows = hdfs_rows["validation"][:300]

    def scores(model, body):
        return [p["score"] for p in json.loads(model.invoke(body.encode(), "libsvm", "application/json")[0])["predictions"]]

    expected = scores(zero_model, _libsvm(rows, 0))
    assert scores(one_model, _libsvm(rows, 1)) == pytest.approx(expected, abs=1e-6)  # once: "feature index 30 is out of range"
    with pytest.raises(RequestError, match="row 1: feature index 0 in a 1-based request"):
        one_model.invoke(b"0:1 3:1\n", "text/libsvm", "application/json")

    # A model without metadata.json (a built-in artifact): each request guessed as the built-in does.
    (one / "model" / "metadata.json").unlink()
    bare = Runtime(one / "model")
    assert bare.libsvm_index_base is None
    assert scores(bare, _libsvm(rows, 1)) == pytest.approx(expected, abs=1e-6)
    assert scores(bare, _libsvm(rows, 0, first_always=True)) == pytest.approx(scores(zero_model, _libsvm(rows, 0, True)), abs=1e-6)


def test_libsvm_base_is_one_decision_over_train_and_validation(hdfs_rows, tmp_path):
    """A validation file with index 0 makes the whole job 0-based: the train file is not shifted."""
    from xgboost_hdfs import train

    root = _tree(tmp_path, {"train": ("t.libsvm", _libsvm(hdfs_rows["train"], 1)),
                            "validation": ("v.libsvm", _libsvm(hdfs_rows["validation"], 0, first_always=True))},
                 {"train": "libsvm", "validation": "libsvm"})
    assert run(train, root) == 0
    assert _metadata(root)["libsvm_index_base"] == 0


def test_libsvm_base_is_the_same_on_every_host(hdfs_rows, tmp_path):
    """Two hosts' shares: one has only 1-based-looking rows, the other an index 0. Each host's decision
    comes from what every host saw (Cluster.gather's contract: every host's value in rank order)."""
    from xgboost_hdfs.data import settle_libsvm_base

    shares = []
    for rank, text in enumerate((_libsvm(hdfs_rows["train"][:100], 1), _libsvm(hdfs_rows["train"][100:200], 0, True))):
        root = _tree(tmp_path / f"host-{rank}", {"train": ("t.libsvm", text)}, {"train": "libsvm"})
        shares.append(_load_libsvm(root))
    seen = []

    def contribute(value):  # what this host sends; stop before deciding, as a host waits for the others
        seen.append(value)
        raise StopIteration

    for dataset in shares:
        with pytest.raises(StopIteration):
            settle_libsvm_base(contribute, dataset)
    for dataset in shares:
        assert settle_libsvm_base(lambda value: seen, dataset) == 0 and dataset.index_base == 0
    alone = _load_libsvm(tmp_path / "host-0")
    assert settle_libsvm_base(lambda value: [value, [False, False]], alone) == 1  # another host with no libsvm
    assert alone.features.shape[1] == shares[0].features.shape[1] - 1


def _load_libsvm(root):
    from xgboost_hdfs.data import load_channel
    from xgboost_hdfs.logparse import TemplateMatcher

    return load_channel(TrainingEnv.load(root), "train", TemplateMatcher())


def test_recordio_channels_train_and_serve(hdfs_rows, tmp_path):
    """Dense records (write_numpy_to_dense_tensor; validation found by its magic, no ContentType) train the
    trees the same rows in CSV train; sparse ones (write_spmatrix_to_sparse_tensor) those libsvm trains,
    an absent key being a missing value in both, as XGBoost reads a CSR matrix. Each model answers
    RecordSerializer bodies as it answers CSV (dense) or libsvm (sparse)."""
    from xgboost_hdfs import Runtime, train

    def text(rows, base=None):
        return _libsvm(rows, base) if base is not None else "".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows)

    jobs = {
        "dense": ({n: ("data.rec", _dense(hdfs_rows[n][:, 1:], hdfs_rows[n][:, 0])) for n in ("train", "validation")},
                  {"train": "application/x-recordio-protobuf"}),
        "sparse": ({n: ("data.rec", _sparse(sp.csr_matrix(hdfs_rows[n][:, 1:]), hdfs_rows[n][:, 0])) for n in ("train", "validation")},
                   {"train": "application/x-recordio-protobuf", "validation": "application/x-recordio-protobuf"}),
        "csv": ({n: ("data.csv", text(hdfs_rows[n])) for n in ("train", "validation")}, {"train": "csv"}),
        "libsvm": ({n: ("data.libsvm", text(hdfs_rows[n], 0)) for n in ("train", "validation")}, {"train": "libsvm"}),
    }
    roots = {case: _tree(tmp_path / case, files, types) for case, (files, types) in jobs.items()}
    for root in roots.values():
        assert run(train, root) == 0
    for case in ("dense", "sparse"):
        metadata = _metadata(roots[case])
        assert metadata["feature_source"] == codecs.RECORDIO and metadata["libsvm_index_base"] is None
        assert json.loads((roots[case] / "output" / "data" / "evaluation.json").read_text())["f1"] > 0.85
    probe = hdfs_rows["validation"][:100]
    models = {case: Runtime(root / "model") for case, root in roots.items()}

    def scores(case, body, kind):
        return [p["score"] for p in json.loads(models[case].invoke(body, kind, "application/json")[0])["predictions"]]

    from_csv = scores("csv", text(probe[:, 1:]).encode(), "text/csv")
    assert scores("dense", RecordSerializer().serialize(probe[:, 1:]).read(), codecs.RECORDIO) == from_csv
    assert scores("dense", text(probe[:, 1:]).encode(), "text/csv") == from_csv
    # The libsvm job reads its 0-based file (no index 0 in these rows) as 1-based, as the built-in would,
    # and its model reads requests so: the same file's rows get the same scores.
    assert _metadata(roots["libsvm"])["libsvm_index_base"] == 1
    from_libsvm = scores("libsvm", text(probe, 0).encode(), "libsvm")
    assert scores("sparse", _sparse(sp.csr_matrix(probe[:, 1:])), codecs.RECORDIO) == pytest.approx(from_libsvm, abs=1e-6)


def test_csv_weights_and_label_size(hdfs_rows, tmp_path):
    from xgboost_hdfs import Runtime, train
    from xgboost_hdfs.data import load_channel
    from xgboost_hdfs.logparse import TemplateMatcher

    rows = hdfs_rows["train"]
    weights = np.where(rows[:, 0] == 1, 5.0, 1.0)

    def weighted(table, w):
        return "".join(",".join([f"{r[0]:g}", f"{x:g}", *(f"{v:g}" for v in r[1:])]) + "\n" for r, x in zip(table, w))

    roots = {}
    for case, w in (("ones", np.ones(len(rows))), ("fives", weights)):
        roots[case] = _tree(tmp_path / case, {"train": ("w.csv", weighted(rows, w))}, {"train": "text/csv;label_size=1"},
                            {"csv_weights": 1})
    plain = _tree(tmp_path / "plain", {"train": ("p.csv", "".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows))},
                  {"train": "csv"})
    dataset = load_channel(TrainingEnv.load(roots["fives"]), "train", TemplateMatcher(), csv_weights=True)
    assert dataset.weights.tolist() == weights.tolist() and dataset.features.shape[1] == rows.shape[1] - 1
    for root in (*roots.values(), plain):
        assert run(train, root) == 0
    probe = "".join(",".join(f"{v:g}" for v in r[1:]) + "\n" for r in rows[:200]).encode()

    def scores(root):
        return [p["score"] for p in json.loads(Runtime(root / "model").invoke(probe, "text/csv", "application/json")[0])["predictions"]]

    assert scores(roots["ones"]) == scores(plain)  # weight 1 everywhere is no weight
    assert scores(roots["fives"]) != scores(plain)  # the weights reach XGBoost

    bad = _tree(tmp_path / "negative", {"train": ("w.csv", weighted(rows[:50], [1.0] * 9 + [-2.0] * 41))},
                {"train": "text/csv"}, {"csv_weights": 1})
    with pytest.raises(DataError, match=r"w.csv: row 10: the weight \(column 2, csv_weights=1\) is -2.0"):
        load_channel(TrainingEnv.load(bad), "train", TemplateMatcher(), csv_weights=True)
    unweighted_validation = _tree(tmp_path / "unweighted", {"train": ("w.csv", weighted(rows[:50], [1.0] * 50)),
                                                            "validation": ("v.csv", "".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows[:50]))},
                                  {"train": "csv"}, {"csv_weights": 1})
    env = TrainingEnv.load(unweighted_validation)
    with pytest.raises(DataError, match="channel 'validation' has 30 feature columns after the label and the weight but train has 31"):
        load_channel(env, "validation", TemplateMatcher(), like=load_channel(env, "train", TemplateMatcher(), csv_weights=True),
                     csv_weights=True)
    two = _tree(tmp_path / "label2", {"train": ("p.csv", "1,0,3\n")}, {"train": "text/csv; label_size=2"})
    with pytest.raises(DataError, match=r"channel 'train': ContentType 'text/csv; label_size=2': label_size=2 is not supported"):
        load_channel(TrainingEnv.load(two), "train", TemplateMatcher())
    assert run(train, _tree(tmp_path / "csv_weights_2", {"train": ("p.csv", "1,0,3\n")}, {}, {"csv_weights": 2})) != 0


def test_sklearn_cpu_answers_record_serializer_bodies_as_csv(shared_data, tmp_path):
    """The codec is shared core: sklearn-cpu's built-in model takes RecordIO requests too (float64 rows)."""
    from sklearn_cpu import train
    from sklearn_cpu.runtime import BuiltinRuntime

    opt_ml.prtg_csv(tmp_path)
    opt_ml.write_config(tmp_path, {"features": "minutes hour day_of_week", "target": "snmpcpu_processor_1"},
                        channels=("train", "test"))
    assert run(train, tmp_path) == 0
    runtime = BuiltinRuntime(tmp_path / "model")
    rows = np.array([[38, 16, 4], [0, 3, 6], [59, 23, 0]], dtype=np.float64)
    from_csv = json.loads(runtime.invoke(b"38,16,4\n0,3,6\n59,23,0\n", "text/csv", "application/json")[0])
    body, kind = runtime.invoke(RecordSerializer().serialize(rows).read(), codecs.RECORDIO, "application/json")
    assert kind == "application/json" and json.loads(body) == from_csv
