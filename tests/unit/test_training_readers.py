"""Training inputs read as what they are (issue #12, §2), on the real data, without Docker: sparse
libsvm stays sparse, label files and parquet columns are checked by name, and numeric timestamps
are read in their own unit."""
import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import xgboost as xgb

import opt_ml
from byoc.errors import DataError
from byoc.training import TrainingEnv, run

WIDE = 65535  # the index that made a 1,000 MiB dense matrix of a 67 KB file


# xgboost-hdfs: libsvm ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hdfs_rows(tmp_path_factory, shared_data):
    """The real event-count rows (label first), train and validation, as hdfs-csv lays them out."""
    root = tmp_path_factory.mktemp("hdfs-csv")
    opt_ml.hdfs_csv(root)
    return {name: (root / "input" / "data" / name / "features.csv").read_text().split() for name in ("train", "validation")}


def _libsvm(rows, extra: str = "", at: int = 3) -> str:
    lines = [" ".join([cells[0], *(f"{i}:{v}" for i, v in enumerate(cells[1:]) if v != "0")])
             for cells in (row.split(",") for row in rows)]
    if extra:
        lines[at] += f" {extra}"
    return "\n".join(lines) + "\n"


def _libsvm_tree(root, hdfs_rows, train_extra="", validation=True, hyperparameters=None):
    channels = ("train", "validation") if validation else ("train",)
    for name in channels:
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True)
        (folder / "data.libsvm").write_text(_libsvm(hdfs_rows[name], train_extra if name == "train" else ""))
    opt_ml.write_config(root, hyperparameters, {c: "text/libsvm" for c in channels}, channels=channels)
    return root


def _load(root, channel="train", like=None):
    from xgboost_hdfs.data import load_channel
    from xgboost_hdfs.logparse import TemplateMatcher

    return load_channel(TrainingEnv.load(root), channel, TemplateMatcher(), required=False, like=like)


def test_wide_libsvm_stays_sparse_trains_and_serves(hdfs_rows, tmp_path):
    from xgboost_hdfs import Runtime, train

    root = _libsvm_tree(tmp_path, hdfs_rows, f"{WIDE}:1", hyperparameters={"num_round": 10})
    dataset = _load(root)
    entries = sum(len(line.split()) - 1 for line in _libsvm(hdfs_rows["train"], f"{WIDE}:1").splitlines())
    assert sp.isspmatrix_csr(dataset.features) and dataset.features.shape == (6440, WIDE + 1)
    assert dataset.features.nnz == entries  # 8 bytes an entry, where a dense matrix took 1,610 MiB
    assert run(train, root) == 0
    booster = xgb.Booster()
    booster.load_model(bytearray((root / "model" / "xgboost-model").read_bytes()))
    # No row has index 0: read 1-based, as XGBoost and the built-in guess (issue 13), one column narrower.
    assert booster.num_features() == WIDE
    assert json.loads((root / "model" / "metadata.json").read_text())["libsvm_index_base"] == 1
    assert json.loads((root / "output" / "data" / "evaluation.json").read_text())["f1"] > 0.85
    runtime = Runtime(root / "model")
    body, _ = runtime.invoke(f"0 4:1 {WIDE}:1\n0 4:1\n".encode(), "text/libsvm", "application/json")
    assert len(json.loads(body)["predictions"]) == 2


def test_libsvm_widths_follow_the_widest_file_channel_and_host(hdfs_rows, tmp_path):
    from xgboost_hdfs.data import match_widths

    root = _libsvm_tree(tmp_path, hdfs_rows, "100:1")
    folder = root / "input" / "data" / "train"
    (folder / "part-2.libsvm").write_text(_libsvm(hdfs_rows["train"][:50]))  # narrower: up to index 30
    train_set = _load(root)
    assert train_set.features.shape == (6490, 101)
    validation = _load(root, "validation", like=train_set)  # once refused: "validation has 31 features"
    assert validation.features.shape[1] == 101 and validation.features.nnz > 0
    match_widths([101, 4000], train_set, validation)  # another host read an index 3,999
    assert train_set.features.shape[1] == validation.features.shape[1] == 4000
    dense = _load(_csv_tree(tmp_path / "csv", hdfs_rows))
    with pytest.raises(DataError, match=r"hosts' shares .* different widths \[31, 40\]"):
        match_widths([31, 40], dense)


def test_hosts_split_sparse_rows_and_agree_on_one_width(hdfs_rows, tmp_path):
    from xgboost_hdfs.data import load_channel, match_widths
    from xgboost_hdfs.logparse import TemplateMatcher

    root = _libsvm_tree(tmp_path, hdfs_rows, f"{WIDE}:1", validation=False)  # index 65,535 in the first half
    hosts = {"hosts": ["algo-1", "algo-2"]}
    parts = [load_channel(TrainingEnv(root=root, input_data_config={"train": {}},
                                      resource_config={**hosts, "current_host": host}), "train", TemplateMatcher())
             for host in hosts["hosts"]]
    whole = _load(root)
    assert [p.features.shape[1] for p in parts] == [WIDE + 1, WIDE + 1]  # the rows split, the file's width stays
    assert (sp.vstack([p.features for p in parts]) != whole.features).nnz == 0
    match_widths([WIDE + 1, 70000], *parts)
    assert all(sp.isspmatrix_csr(p.features) and p.features.shape[1] == 70000 for p in parts)


def _csv_tree(root, hdfs_rows):
    folder = root / "input" / "data" / "train"
    folder.mkdir(parents=True)
    (folder / "features.csv").write_text("\n".join(hdfs_rows["train"]) + "\n")
    opt_ml.write_config(root, channels=("train",))
    return root


def test_libsvm_memory_is_estimated_from_its_entries(hdfs_rows, tmp_path):
    from xgboost_hdfs import libsvm
    from xgboost_hdfs.data import TRAINING_BASE, memory_needed

    root = _libsvm_tree(tmp_path, hdfs_rows, f"{WIDE}:1", validation=False)
    path = root / "input" / "data" / "train" / "data.libsvm"
    labels, features = libsvm.read(path)
    assert libsvm.count(path) == (len(labels), features.nnz)
    with open(path, "rb") as plain, gzip.open(path.with_suffix(".gz"), "wb") as packed:
        packed.write(plain.read().rstrip(b"\n"))  # no newline at the end: the last row still counts
    path.unlink()
    assert libsvm.count(path.with_suffix(".gz")) == (len(labels), features.nnz)
    expected = TRAINING_BASE + len(labels) * libsvm.ROW_BYTES + features.nnz * libsvm.ENTRY_BYTES
    assert memory_needed(TrainingEnv.load(root), "train") == expected
    assert libsvm.width_memory(WIDE + 1, threads=2) == (WIDE + 1) * (libsvm.FEATURE_BYTES + 2 * libsvm.THREAD_FEATURE_BYTES)


@pytest.mark.parametrize("line, words", [
    ("1 3:1 5:2 3:4", ("line 2", "feature index 3 appears more than once", "keep one")),
    ("1 5:2 3:1 5:4", ("line 2", "feature index 5 appears more than once")),  # unsorted rows too
    ("1 1048576:1", ("line 2", "feature index 1048576 is too large", "1,048,576 features")),
    ("1 3:inf", ("line 2", "'3:inf'", "infinite", "leave the entry out")),
    ("1 3:abc", ("line 2", "'abc' is not a number")),
    ("3:1 4:1", ("line 2", "label '3:1' is not a number", "the label comes first")),
    ("1 7=3", ("line 2", "'7=3' is not index:value", "0-based")),
])
def test_libsvm_errors_name_file_line_and_entry(tmp_path, line, words):
    from xgboost_hdfs import libsvm

    path = tmp_path / "bad.libsvm"
    path.write_text(f"0 1:2 4:1\n{line}\n\n1 2:1\n")
    with pytest.raises(DataError) as error:
        libsvm.read(path)
    assert all(w in str(error.value) for w in ("bad.libsvm", *words)), str(error.value)


def test_libsvm_rows_in_any_index_order_and_nan_are_kept(tmp_path):
    from xgboost_hdfs import libsvm

    path = tmp_path / "rows.libsvm"
    path.write_text("1 5:1 2:4\n\n0 0:nan 3:2\n")
    labels, features = libsvm.read(path)
    assert labels.tolist() == [1.0, 0.0] and features.has_sorted_indices
    assert np.array_equal(features.toarray(), [[0, 0, 4, 0, 0, 1], [np.nan, 0, 0, 2, 0, 0]], equal_nan=True)


# xgboost-hdfs: anomaly_label.csv ----------------------------------------------------------------

@pytest.fixture(scope="module")
def raw_slice(shared_data):
    """The first 3,000 real log lines and their blocks' label rows."""
    import re

    with gzip.open(shared_data / "hdfs" / "HDFS.log.gz", "rt") as logs:
        lines = [next(logs) for _ in range(3000)]
    known = dict(row.split(",") for row in (shared_data / "hdfs" / "anomaly_label.csv").read_text().split()[1:])
    blocks = dict.fromkeys(b for line in lines for b in re.findall(r"blk_-?\d+", line))
    return "".join(lines), [f"{b},{known[b]}" for b in blocks]


def _raw_tree(root, raw_slice, label_files):
    folder = root / "input" / "data" / "train"
    folder.mkdir(parents=True)
    (folder / "HDFS.log").write_text(raw_slice[0])
    for name, rows in label_files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("BlockId,Label\n" + "\n".join(rows) + "\n")
    opt_ml.write_config(root, channels=("train",))
    return root


def _flipped(row: str) -> str:
    block, label = row.split(",")
    return f"{block},{'Normal' if label == 'Anomaly' else 'Anomaly'}"


def test_conflicting_duplicate_labels_name_the_block_and_both_lines(raw_slice, tmp_path):
    rows = raw_slice[1]
    _raw_tree(tmp_path, raw_slice, {"anomaly_label.csv": [*rows[:10], _flipped(rows[3]), *rows[10:]]})
    block, label = rows[3].split(",")
    with pytest.raises(DataError) as error:
        _load(tmp_path)
    message = str(error.value)
    assert f"block {block} has two labels" in message and "keep the right one" in message
    assert f"{label} at anomaly_label.csv, line 5" in message and "at anomaly_label.csv, line 12" in message


def test_conflicting_labels_across_label_files_name_both_files(raw_slice, tmp_path):
    rows = raw_slice[1]
    _raw_tree(tmp_path, raw_slice, {"a/anomaly_label.csv": rows, "b/anomaly_label.csv": [_flipped(rows[0])]})
    with pytest.raises(DataError, match=r"two labels: .* at anomaly_label.csv, line 2 and .* at anomaly_label.csv, line 2"):
        _load(tmp_path)


def test_identical_duplicate_labels_are_accepted(raw_slice, tmp_path):
    rows = raw_slice[1]
    once = _load(_raw_tree(tmp_path / "once", raw_slice, {"anomaly_label.csv": rows}))
    twice = _load(_raw_tree(tmp_path / "twice", raw_slice, {"anomaly_label.csv": [*rows, *rows[:20]]}))
    assert np.array_equal(once.labels, twice.labels) and np.array_equal(once.features, twice.features)


# xgboost-hdfs: parquet columns by name ----------------------------------------------------------

COLUMNS = ["anomaly", *(f"E{i}" for i in range(1, 31)), "unmatched"]  # no 'label': the first column is


def _parquet_tree(root, hdfs_rows, validation_columns=None):
    for name in ("train", "validation"):
        folder = root / "input" / "data" / name
        folder.mkdir(parents=True)
        frame = pd.DataFrame([list(map(float, r.split(","))) for r in hdfs_rows[name]], columns=COLUMNS)
        frame.to_parquet(folder / "part-0.parquet") if name == "train" else \
            frame[validation_columns or COLUMNS].to_parquet(folder / "part-0.parquet")
    opt_ml.write_config(root, {"num_round": 20})
    return root


def test_parquet_validation_in_another_column_order_trains_as_the_ordered_one(hdfs_rows, tmp_path):
    from xgboost_hdfs import train

    shuffled = list(np.random.default_rng(7).permutation(COLUMNS))
    assert shuffled[0] != "anomaly"  # the label is found by the train channel's name, not by place
    results = []
    for name, columns in (("ordered", COLUMNS), ("shuffled", shuffled)):
        root = _parquet_tree(tmp_path / name, hdfs_rows, columns)
        assert run(train, root) == 0  # was: internal error ... feature_names mismatch, exit 2
        results.append(json.loads((root / "output" / "data" / "evaluation.json").read_text()))
    assert results[0] == results[1]


@pytest.mark.parametrize("change, words", [
    (lambda c: [x for x in c if x != "E7"], ("lacks column(s) ['E7']", "the train channel")),
    (lambda c: [*c, "extra"], ("has column(s) ['extra']",)),
])
def test_parquet_validation_missing_or_extra_column_is_named(hdfs_rows, tmp_path, change, words):
    root = _parquet_tree(tmp_path, hdfs_rows)
    path = root / "input" / "data" / "validation" / "part-0.parquet"
    frame = pd.read_parquet(path)
    frame["extra"] = 1.0
    frame[change(COLUMNS)].to_parquet(path)
    with pytest.raises(DataError) as error:
        _load(root, "validation", like=_load(root))
    assert all(w in str(error.value) for w in ("part-0.parquet", *words, "in any order")), str(error.value)


# sklearn-cpu: numeric timestamps ----------------------------------------------------------------

@pytest.fixture(scope="module")
def prtg(shared_data):
    return pd.read_parquet(opt_ml.PRTG)


@pytest.mark.parametrize("unit, divisor", [("s", 10**9), ("ms", 10**6), ("us", 10**3), ("ns", 1)])
def test_numeric_timestamps_are_read_in_their_unit(prtg, unit, divisor):
    from sklearn_cpu.data import to_times

    as_ns = prtg.ts.astype("datetime64[ns]")
    numbers = as_ns.astype("int64") // divisor
    assert (to_times(numbers, "ts").astype("datetime64[ns]") == as_ns).all()  # the real times are whole seconds
    assert (to_times(numbers.astype(float), "ts").astype("datetime64[ns]") == as_ns).all() or unit == "ns"
    assert to_times(prtg.ts, "ts").equals(prtg.ts)


@pytest.mark.parametrize("values, words", [
    ([1, 2, 3], ("row 1", "'ts'", "1 is not a timestamp", "Unix time")),
    ([1622505626, 1622505686000, 1622505746], ("row 2", "in ms but row 1", "in s", "one unit")),
    ([1622505626.0, np.nan, 1622505746.0], ("row 2", "an empty cell is not a timestamp")),
])
def test_numbers_that_are_no_unix_times_fail_naming_row_and_column(values, words):
    from sklearn_cpu.data import to_times

    with pytest.raises(DataError) as error:
        to_times(pd.Series(values), "ts")
    assert all(w in str(error.value) for w in words), str(error.value)


def test_constant_time_features_fail_naming_the_column():
    from sklearn_cpu import features as feats

    frame = pd.DataFrame({"ts": pd.to_datetime([1622505626 + i for i in range(50)], unit="ns"), "y": np.arange(50.0)})
    with pytest.raises(DataError, match=r"column 'ts': the 50 rows' times span only .* all constant"):
        feats.build(frame, "ts", "y", lags=[1], windows=[2])


@pytest.mark.parametrize("divisor", [10**9, 10**6])
def test_epoch_timestamps_train_as_the_datetimes_do(prtg, tmp_path, divisor):
    from sklearn_cpu import train

    evaluations = []
    for name, ts in (("datetime", prtg.ts), ("epoch", prtg.ts.astype("datetime64[ns]").astype("int64") // divisor)):
        root = tmp_path / name
        opt_ml.prtg_raw(root)
        path = root / "input" / "data" / "train" / opt_ml.PRTG.name
        prtg.assign(ts=ts).to_parquet(path)
        assert run(train, root) == 0
        evaluations.append(json.loads((root / "output" / "data" / "evaluation.json").read_text()))
    assert evaluations[0] == evaluations[1] and evaluations[0]["model"]["R2"] > 0.45
