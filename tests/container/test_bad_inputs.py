"""A matrix of bad training inputs for both images, each run as a real `train` container.

Every case lays out an /opt/ml tree from the real data in ../shared/data, breaks one thing, and
expects: a non-zero exit, a one-line /opt/ml/output/failure that names the file, line, column or
parameter and says how to fix it (its expected words), no traceback in that line, and no model.
The containers of one image run two at a time to keep the module short.
"""
from __future__ import annotations

import gzip
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import pytest

import opt_ml
from support import REPO, SHARED_DATA, build, run_job

HDFS = SHARED_DATA / "hdfs"
RAW_LINES = 3000  # the first lines of HDFS.log.gz: about 150 blocks, enough for every raw-log case
TARGET = "snmpcpu_processor_1"


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], None]  # lays out the tree, broken
    words: tuple[str, ...]  # all expected in the failure line: where, what, how to fix
    docker_args: tuple = ()  # e.g. a memory limit


# Real data, a slice of it ----------------------------------------------------------------------

@lru_cache(maxsize=None)
def _log_lines() -> tuple[str, ...]:
    with gzip.open(HDFS / "HDFS.log.gz", "rt") as logs:
        return tuple(next(logs) for _ in range(RAW_LINES))


@lru_cache(maxsize=None)
def _labels() -> dict[str, str]:
    rows = (HDFS / "anomaly_label.csv").read_text().split()[1:]
    return dict(row.split(",") for row in rows)


def _blocks(lines) -> list[str]:
    import re

    return list(dict.fromkeys(b for line in lines for b in re.findall(r"blk_-?\d+", line)))


@lru_cache(maxsize=None)
def _feature_rows() -> tuple[str, ...]:
    """'label,E1,...,E30,unmatched' rows of the blocks in the first 20,000 log lines, as the image reads them."""
    from xgboost_hdfs.logparse import TemplateMatcher, count_events, numbered

    with gzip.open(HDFS / "HDFS.log.gz", "rt") as logs:
        lines = [next(logs) for _ in range(20000)]
    counts = count_events(numbered("HDFS.log.gz", lines), TemplateMatcher())
    labels = _labels()
    return tuple(",".join([str(int(labels[b] == "Anomaly")), *map(str, v.tolist())]) for b, v in counts.counts.items())


def _channel(root: Path, name: str = "train") -> Path:
    folder = root / "input" / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def raw_logs(root: Path, lines=None, labels: bool = True, hyperparameters: dict | None = None,
             content_types: dict | None = None) -> Path:
    lines = list(_log_lines() if lines is None else lines)
    folder = _channel(root)
    with gzip.open(folder / "HDFS.log.gz", "wt") as out:
        out.writelines(lines)
    if labels:
        known = _labels()
        (folder / "anomaly_label.csv").write_text(
            "BlockId,Label\n" + "".join(f"{b},{known[b]}\n" for b in _blocks(lines) if b in known))
    opt_ml.write_config(root, hyperparameters, content_types, channels=("train",))
    return folder


def feature_csv(root: Path, rows=None, name: str = "features.csv", hyperparameters: dict | None = None,
                channels=("train",)) -> Path:
    folder = _channel(root)
    (folder / name).write_text("".join(r + "\n" for r in (_feature_rows() if rows is None else rows)))
    opt_ml.write_config(root, hyperparameters, channels=channels)
    return folder / name


def _cell(rows, row: int, column: int, value: str) -> list[str]:
    """Rows with one cell replaced (1-based row and column, as the messages count)."""
    rows = list(rows)
    cells = rows[row - 1].split(",")
    cells[column - 1] = value
    rows[row - 1] = ",".join(cells)
    return rows


def _big_gzip(path: Path, row: str, mib: int) -> None:
    """A gzip file of real rows repeated to `mib` MiB uncompressed (a few hundred KiB on disk)."""
    chunk = (row + "\n") * ((1 << 20) // (len(row) + 1))
    with gzip.open(path, "wt", compresslevel=1) as out:
        for _ in range(mib):
            out.write(chunk)


# xgboost-hdfs cases ----------------------------------------------------------------------------

def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _corrupt(path: Path) -> None:
    """Damage the deflate stream in the middle of a gzip file (as a bad copy would)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)
    path.write_bytes(bytes(data))


def _gzip_in_place(path: Path) -> Path:
    """Replace a file by its gzip copy (NAME.gz); returns the copy's path."""
    gzipped = path.with_suffix(path.suffix + ".gz")
    with gzip.open(gzipped, "wt") as out:
        out.write(path.read_text())
    path.unlink()
    return gzipped


def _no_channel(root):  # both images
    opt_ml.write_config(root, channels=("train",))


def _empty_channel(root):  # both images
    _channel(root)
    opt_ml.write_config(root, channels=("train",))


def _x_empty_file(root):
    feature_csv(root).write_text("")


def _x_truncated_gzip(root):
    _truncate(raw_logs(root) / "HDFS.log.gz")


def _x_corrupt_gzip_logs(root):
    _corrupt(raw_logs(root) / "HDFS.log.gz")


def _x_corrupt_gzip_csv(root):
    _corrupt(_gzip_in_place(feature_csv(root)))


def _x_not_parquet(root):
    feature_csv(root)
    opt_ml.write_config(root, content_types={"train": "application/x-parquet"}, channels=("train",))


def _x_truncated_parquet(root):
    import pandas as pd

    frame = pd.DataFrame([list(map(float, r.split(","))) for r in _feature_rows()])
    frame.columns = ["label", *(f"E{i}" for i in range(1, 31)), "unmatched"]
    path = _channel(root) / "features.parquet"
    frame.to_parquet(path)
    _truncate(path, 0.6)
    opt_ml.write_config(root, channels=("train",))


def _x_parquet_text_column(root):
    import pandas as pd

    frame = pd.DataFrame([list(map(float, r.split(","))) for r in _feature_rows()])
    frame.columns = ["label", *(f"E{i}" for i in range(1, 31)), "unmatched"]
    frame["E5"] = frame["E5"].astype(str)
    frame.to_parquet(_channel(root) / "features.parquet")
    opt_ml.write_config(root, channels=("train",))


def _x_header(root):
    header = ",".join(["label", *(f"E{i}" for i in range(1, 31)), "unmatched"])
    feature_csv(root, [header, *_feature_rows()])


def _x_non_numeric(root):
    feature_csv(root, _cell(_feature_rows(), 5, 3, "abc"))


def _x_label(value):
    return lambda root: feature_csv(root, _cell(_feature_rows(), 4, 1, value))


def _x_inf_feature(root):
    feature_csv(root, _cell(_feature_rows(), 3, 5, "inf"))


def _x_ragged_row(root):
    rows = list(_feature_rows())
    rows[6] = rows[6].rsplit(",", 2)[0]
    feature_csv(root, rows)


def _x_widths_across_files(root):
    rows = _feature_rows()
    feature_csv(root, rows[:200], name="part-1.csv")
    feature_csv(root, [r.rsplit(",", 1)[0] for r in rows[200:]], name="part-2.csv")


def _x_labels_missing_blocks(root):
    folder = raw_logs(root)
    labels = (folder / "anomaly_label.csv").read_text().splitlines()
    del labels[6]  # the sixth block
    (folder / "anomaly_label.csv").write_text("\n".join(labels) + "\n")


def _x_line_without_block(root):
    lines = list(_log_lines())
    lines.insert(9, "081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.allocateBlock: /mnt/hadoop/x.dat\n")
    raw_logs(root, lines)


def _x_no_label_file(root):
    raw_logs(root, labels=False)


def _x_label_header(root):
    folder = raw_logs(root)
    path = folder / "anomaly_label.csv"
    path.write_text("block,label\n" + path.read_text().split("\n", 1)[1])


def _x_label_value(root):
    folder = raw_logs(root)
    path = folder / "anomaly_label.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].split(",")[0] + ",Maybe"
    path.write_text("\n".join(lines) + "\n")


def _x_conflicting_labels(root):
    path = raw_logs(root) / "anomaly_label.csv"
    lines = path.read_text().splitlines()
    block, label = lines[4].split(",")  # line 5
    lines.insert(9, f"{block},{'Normal' if label == 'Anomaly' else 'Anomaly'}")  # line 10
    path.write_text("\n".join(lines) + "\n")


def _x_parquet_validation_column(root):
    import pandas as pd

    columns = ["label", *(f"E{i}" for i in range(1, 31)), "unmatched"]
    frame = pd.DataFrame([list(map(float, r.split(","))) for r in _feature_rows()], columns=columns)
    frame.to_parquet(_channel(root) / "train.parquet")
    frame[[c for c in reversed(columns) if c != "E7"]].to_parquet(_channel(root, "validation") / "validation.parquet")
    opt_ml.write_config(root, channels=("train", "validation"))


def _x_hyperparameters(values):
    return lambda root: feature_csv(root, hyperparameters=values)


def _x_one_class(root):
    feature_csv(root, [r for r in _feature_rows() if r.startswith("0,")])


def _x_validation_width(root):
    feature_csv(root, channels=("train", "validation"))
    (_channel(root, "validation") / "features.csv").write_text(
        "".join(r.rsplit(",", 1)[0] + "\n" for r in _feature_rows()[:100]))


def _x_content_type(root):
    feature_csv(root)
    opt_ml.write_config(root, content_types={"train": "application/json"}, channels=("train",))


def _x_bad_json(root):
    feature_csv(root)
    (root / "input" / "config" / "hyperparameters.json").write_text('{"num_round": "10",}')


def _x_libsvm(root):
    rows = [" ".join([r.split(",")[0], *(f"{i}:{v}" for i, v in enumerate(r.split(",")[1:]) if v != "0")])
            for r in _feature_rows()]
    rows[1] = rows[1] + " 7=3"
    feature_csv(root, rows, name="features.libsvm")


def _x_libsvm_too_wide(root):
    rows = [" ".join([r.split(",")[0], *(f"{i}:{v}" for i, v in enumerate(r.split(",")[1:]) if v != "0")])
            for r in _feature_rows()]
    rows[2] += " 1048576:1"
    feature_csv(root, rows, name="features.libsvm")


def _x_too_big(root):
    folder = _channel(root)
    _big_gzip(folder / "features.csv.gz", _feature_rows()[0], 200)
    opt_ml.write_config(root, channels=("train",))


XGBOOST = [
    Case("no-train-channel", _no_channel, ("'train' channel", "Pass a 'train' input", "channels found: none")),
    Case("empty-channel", _empty_channel, ("'train' channel", "has no files", "upload")),
    Case("empty-file", _x_empty_file, ("features.csv", "empty", "remove it")),
    Case("truncated-gzip", _x_truncated_gzip, ("HDFS.log.gz", "truncated gzip", "upload it again")),
    Case("corrupt-gzip", _x_corrupt_gzip_csv, ("features.csv.gz", "damaged", "gzip -t")),
    Case("corrupt-gzip-logs", _x_corrupt_gzip_logs, ("HDFS.log.gz", "damaged", "gzip -t")),
    Case("csv-declared-parquet", _x_not_parquet, ("features.csv", "not a readable parquet file", "ContentType")),
    Case("truncated-parquet", _x_truncated_parquet, ("features.parquet", "not a readable parquet file", "to_parquet")),
    Case("parquet-text-column", _x_parquet_text_column, ("features.parquet", "'E5'", "not numeric", "store")),
    Case("csv-header", _x_header, ("features.csv", "row 1, column 1", "'label'", "remove the header")),
    Case("non-numeric-cell", _x_non_numeric, ("features.csv", "row 5, column 3", "'abc'", "fix or remove")),
    Case("nan-label", _x_label("nan"), ("features.csv", "row 4", "nan", "0 or 1", "fix that row")),
    Case("infinite-label", _x_label("inf"), ("features.csv", "row 4", "inf", "0 or 1", "fix that row")),
    Case("label-2", _x_label("2"), ("features.csv", "row 4", "2.0", "0 or 1", "fix that row")),
    Case("infinite-feature", _x_inf_feature, ("features.csv", "row 3, column 5", "infinite", "finite number")),
    Case("ragged-row", _x_ragged_row, ("features.csv", "row 7", "30 columns", "32", "same number of cells")),
    Case("widths-across-files", _x_widths_across_files, ("part-2.csv", "31 columns", "32", "same columns")),
    Case("labels-missing-blocks", _x_labels_missing_blocks,
         ("anomaly_label.csv", "blk_", "HDFS.log.gz, line", "add a '<block id>,Normal|Anomaly' row")),
    Case("line-without-block", _x_line_without_block, ("HDFS.log.gz, line 10", "no block id", "remove or fix")),
    Case("no-label-file", _x_no_label_file, ("raw logs", "no anomaly_label.csv", "add it")),
    Case("label-file-header", _x_label_header, ("anomaly_label.csv, line 1", "'BlockId,Label'", "first line")),
    Case("label-file-value", _x_label_value, ("anomaly_label.csv, line 3", "Maybe", "Normal|Anomaly", "fix or remove")),
    Case("unknown-hyperparameter", _x_hyperparameters({"max_dept": "5"}), ("max_dept", "unknown", "Allowed: ", "max_depth")),
    Case("out-of-range", _x_hyperparameters({"eta": "2"}), ("eta='2'", "out of range", "[0.0, 1.0]")),
    Case("not-a-number", _x_hyperparameters({"num_round": "ten"}), ("num_round='ten'", "expected int")),
    Case("unknown-objective", _x_hyperparameters({"objective": "multi:softmaxx"}),
         ("objective='multi:softmaxx'", "binary:logistic", "multi:softmax")),
    Case("multi-class-without-num-class", _x_hyperparameters({"objective": "multi:softmax"}),
         ("objective=multi:softmax", "needs num_class")),
    Case("early-stopping-alone", _x_hyperparameters({"early_stopping_rounds": "5"}),
         ("early_stopping_rounds", "'validation' channel", "add one")),
    Case("one-class", _x_one_class, ("only one class", "add rows of the missing class")),
    Case("validation-width", _x_validation_width, ("validation has 30 features", "train has 31", "same columns")),
    Case("unsupported-content-type", _x_content_type, ("'application/json'", "not supported", "text/csv")),
    Case("hyperparameters-json", _x_bad_json, ("hyperparameters.json", "line 1, column", "fix the file")),
    Case("libsvm-token", _x_libsvm, ("features.libsvm, line 2", "'7=3'", "index:value")),
    Case("libsvm-index-over-2^20", _x_libsvm_too_wide,
         ("features.libsvm, line 3", "feature index 1048576 is too large", "1,048,576 features", "renumber")),
    Case("conflicting-labels", _x_conflicting_labels,
         ("anomaly_label.csv, line 5", "anomaly_label.csv, line 10", "has two labels", "blk_", "keep the right one")),
    Case("parquet-validation-without-a-column", _x_parquet_validation_column,
         ("validation.parquet", "lacks column(s) ['E7']", "the train channel", "in any order")),
    Case("more-memory-than-the-instance", _x_too_big, ("MiB of memory", "MiB free", "more memory"),
         docker_args=("--memory", "300m")),
]


# sklearn-cpu cases -----------------------------------------------------------------------------

PRTG = opt_ml.PRTG


def prtg_raw(root: Path, hyperparameters: dict | None = None, content_types: dict | None = None) -> Path:
    opt_ml.prtg_raw(root)
    opt_ml.write_config(root, hyperparameters, content_types, channels=("train",))
    return _channel(root) / PRTG.name


@lru_cache(maxsize=None)
def _prtg_csv_texts() -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as folder:
        opt_ml.prtg_csv(Path(folder))
        return tuple((_channel(Path(folder), name) / f"{name}.csv").read_text() for name in ("train", "test"))


def prtg_table(root: Path, hyperparameters: dict | None = None) -> tuple[Path, Path]:
    """train.csv / test.csv with minutes,hour,day_of_week,target as DataFrame.to_csv writes them."""
    train, test = _channel(root) / "train.csv", _channel(root, "test") / "test.csv"
    train_text, test_text = _prtg_csv_texts()
    train.write_text(train_text)
    test.write_text(test_text)
    opt_ml.write_config(root, hyperparameters, channels=("train", "test"))
    return train, test


def _edit_csv(path: Path, line: int, column: str, value: str) -> None:
    """Replace one cell of a CSV with a header (line counts the header as 1)."""
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _edit_parquet(path: Path, row: int, column: str, value) -> None:
    import pandas as pd

    frame = pd.read_parquet(path)
    frame[column] = frame[column].astype(type(value)) if isinstance(value, str) else frame[column]
    frame.loc[row - 1, column] = value
    frame.to_parquet(path)


def _s_empty_file(root):
    train, _ = prtg_table(root)
    train.write_text("")


def _s_header_only(root):
    train, _ = prtg_table(root)
    train.write_text(train.read_text().split("\n", 1)[0] + "\n")


def _s_truncated_gzip(root):
    _truncate(_gzip_in_place(prtg_table(root)[0]))


def _s_corrupt_gzip(root):
    _corrupt(_gzip_in_place(prtg_table(root)[0]))


def _s_csv_declared_parquet(root):
    prtg_table(root)
    opt_ml.write_config(root, content_types={"train": "application/x-parquet"}, channels=("train", "test"))


def _s_truncated_parquet(root):
    _truncate(prtg_raw(root), 0.7)


def _s_hyperparameters(values, table: bool = False):
    return (lambda root: prtg_table(root, values)) if table else (lambda root: prtg_raw(root, values))


def _s_non_numeric(root):
    train, _ = prtg_table(root, {"target": TARGET})
    _edit_csv(train, 120, "hour", "noon")


def _s_empty_target_cell(root):
    train, _ = prtg_table(root, {"target": TARGET})
    _edit_csv(train, 42, TARGET, "")


def _s_infinite_target(root):
    _edit_parquet(prtg_raw(root), 1000, TARGET, float("inf"))


def _s_bad_time(root):
    _edit_parquet(prtg_raw(root), 77, "ts", "yesterday")


def _s_time_as_small_numbers(root):
    """Minutes since the first reading: numbers, but no Unix time."""
    import pandas as pd

    path = prtg_raw(root)
    frame = pd.read_parquet(path)
    frame["ts"] = (frame.ts - frame.ts.min()).dt.total_seconds() // 60
    frame.to_parquet(path)


def _s_times_within_a_second(root):
    """Epoch seconds once taken for nanoseconds (pd.to_datetime's default): every row in 1970's first seconds."""
    import pandas as pd

    path = prtg_raw(root)
    frame = pd.read_parquet(path)
    frame["ts"] = pd.to_datetime(frame.ts.astype("datetime64[ns]").astype("int64") // 10**9)
    frame.to_parquet(path)


def _s_text_column(root):
    train, test = prtg_table(root, {"target": TARGET})
    for path in (train, test):
        lines = path.read_text().splitlines()
        path.write_text("\n".join([lines[0] + ",site"] + [line + ",berlin" for line in lines[1:]]) + "\n")


def _s_columns_across_files(root):
    train, _ = prtg_table(root)
    lines = train.read_text().splitlines()
    train.write_text("\n".join(lines[:1000]) + "\n")
    (train.parent / "more.csv").write_text("\n".join([lines[0].replace("hour", "hours"), *lines[1000:]]) + "\n")


def _s_ragged_csv(root):
    train, _ = prtg_table(root)
    lines = train.read_text().splitlines()
    lines[6] += ",7,8"
    train.write_text("\n".join(lines) + "\n")


def _s_test_without_feature(root):
    _, test = prtg_table(root, {"features": "minutes hour day_of_week", "target": TARGET})
    lines = test.read_text().splitlines()
    test.write_text("\n".join(",".join(line.split(",")[:2] + line.split(",")[3:]) for line in lines) + "\n")


def _s_content_type(root):
    prtg_raw(root, content_types={"train": "application/json"})


def _s_bad_json(root):
    prtg_raw(root)
    (root / "input" / "config" / "hyperparameters.json").write_text('{"model": Ridge}')


def _s_script_missing(root):
    prtg_table(root, {"sagemaker_program": "missing.py", "sagemaker_submit_directory": "/opt/ml/code"})
    shutil.copytree(REPO / "examples" / "sklearn-script", root / "code")


def _s_too_big(root):
    train, _ = prtg_table(root)
    lines = train.read_text().splitlines()
    path = train.with_suffix(".csv.gz")
    with gzip.open(path, "wt", compresslevel=1) as out:
        out.write(lines[0] + "\n")
        for _ in range(80):
            out.write("\n".join(lines[1:]) + "\n")
    train.unlink()


SKLEARN = [
    Case("no-train-channel", _no_channel, ("'train' channel", "Pass a 'train' input")),
    Case("empty-channel", _empty_channel, ("'train' channel", "has no files", "upload")),
    Case("empty-file", _s_empty_file, ("train.csv", "empty", "header row")),
    Case("header-only", _s_header_only, ("train.csv", "no rows", "upload its data")),
    Case("truncated-gzip", _s_truncated_gzip, ("train.csv.gz", "truncated gzip", "upload it again")),
    Case("corrupt-gzip", _s_corrupt_gzip, ("train.csv.gz", "damaged", "gzip -t")),
    Case("csv-declared-parquet", _s_csv_declared_parquet, ("train.csv", "not a readable parquet file", "ContentType")),
    Case("truncated-parquet", _s_truncated_parquet, (PRTG.name, "not a readable parquet file", "to_parquet")),
    Case("missing-target", _s_hyperparameters({"target": "cpu"}), ("target 'cpu'", "'train' channel", TARGET,
                                                                   "set the target hyperparameter")),
    Case("feature-not-a-column", _s_hyperparameters({"features": "minutes weekday", "target": TARGET}, table=True),
         ("['weekday']", "day_of_week", "set features")),
    Case("constant-target", _s_hyperparameters({"target": "snmpcpu_processor_2"}),
         ("'snmpcpu_processor_2'", "constant", "choose another target")),
    Case("empty-target-column", _s_hyperparameters({"target": "snmpcpu_processor_7"}),
         (f"{PRTG.name}, row 1,", "'snmpcpu_processor_7'", "an empty cell", "fix or remove")),
    Case("non-numeric-cell", _s_non_numeric, ("train.csv, line 120", "'hour'", "'noon'", "fix or remove")),
    Case("missing-target-cell", _s_empty_target_cell, ("train.csv, line 42", f"'{TARGET}'", "an empty cell", "fix or remove")),
    Case("infinite-target", _s_infinite_target, (f"{PRTG.name}, row 1000", f"'{TARGET}'", "inf", "fix or remove")),
    Case("not-a-timestamp", _s_bad_time, (f"{PRTG.name}, row 77", "'ts'", "'yesterday'", "not a timestamp")),
    Case("numbers-not-unix-times", _s_time_as_small_numbers,
         (f"{PRTG.name}, row 1", "'ts'", "0.0 is not a timestamp", "Unix time")),
    Case("constant-time-features", _s_times_within_a_second,
         ("column 'ts'", "span only 1970-01-01", "all constant", "Unix times")),
    Case("text-column", _s_text_column, ("train.csv, line 2", "'site'", "'berlin'", "leave the column out")),
    Case("columns-across-files", _s_columns_across_files, ("more.csv", "'hours'", "same columns")),
    Case("ragged-csv", _s_ragged_csv, ("train.csv", "line 7", "not readable CSV", "as many cells as the header")),
    Case("test-without-feature", _s_test_without_feature, ("test channel", "['hour']", "same columns")),
    Case("unknown-hyperparameter", _s_hyperparameters({"n_trees": "100"}), ("n_trees", "unknown", "n_estimators")),
    Case("out-of-range", _s_hyperparameters({"test_fraction": "0.9"}), ("test_fraction='0.9'", "[0.05, 0.5]")),
    Case("unknown-model", _s_hyperparameters({"model": "SVR"}), ("model='SVR'", "LinearRegression")),
    Case("parameter-of-another-model", _s_hyperparameters({"alpha": "0.5"}),
         ("alpha", "model=LinearRegression", "takes none")),
    Case("target-is-a-feature", _s_hyperparameters({"features": f"hour {TARGET}", "target": TARGET}, table=True),
         (f"'{TARGET}'", "cannot also be a feature", "remove it from features")),
    Case("history-longer-than-data", _s_hyperparameters({"lags": "100000"}),
         ("fewer rows than the longest history", "100000", "lower lags")),
    Case("unsupported-content-type", _s_content_type, ("'application/json'", "not supported", "text/csv")),
    Case("hyperparameters-json", _s_bad_json, ("hyperparameters.json", "line 1, column", "fix the file")),
    Case("script-not-found", _s_script_missing, ("sagemaker_program 'missing.py'", "train.py", "set entry_point")),
    Case("more-memory-than-the-instance", _s_too_big, ("MiB of memory", "MiB free", "more memory"),
         docker_args=("--memory", "300m")),
]


# Running them ----------------------------------------------------------------------------------

def _run_all(image: str, cases: list[Case], base: Path) -> dict:
    def one(case: Case):
        root = base / case.id
        root.mkdir()
        case.make(root)
        return case.id, (root, run_job(image, root, "train", docker_args=case.docker_args, timeout=300))

    _log_lines(), _labels(), _feature_rows(), _prtg_csv_texts()  # the real data's slices, once, before the threads
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, cases))


def _selected(request, cases: list[Case]) -> list[Case]:
    """The cases this session runs (all, or those picked with -k): no container for the others."""
    picked = {item.callspec.params["case"].id for item in request.session.items
              if hasattr(item, "callspec") and item.callspec.params.get("case") in cases}
    return [case for case in cases if case.id in picked]


@pytest.fixture(scope="module")
def xgboost_jobs(request, tmp_path_factory, shared_data):
    return _run_all(build("xgboost-hdfs"), _selected(request, XGBOOST), tmp_path_factory.mktemp("bad-xgboost"))


@pytest.fixture(scope="module")
def sklearn_jobs(request, tmp_path_factory, shared_data):
    return _run_all(build("sklearn-cpu"), _selected(request, SKLEARN), tmp_path_factory.mktemp("bad-sklearn"))


def _check(jobs: dict, case: Case) -> None:
    root, job = jobs[case.id]
    log = f"stdout:\n{job.stdout[-1500:]}\nstderr:\n{job.stderr[-3000:]}"
    assert job.returncode not in (0, 137), f"exit code {job.returncode}\n{log}"
    failure = root / "output" / "failure"
    assert failure.exists(), f"no failure file\n{log}"
    text = failure.read_text()
    assert text.endswith("\n") and text.count("\n") == 1, f"not one line: {text!r}"
    assert "Traceback" not in text and "internal error" not in text, text
    missing = [word for word in case.words if word not in text]
    assert not missing, f"{missing} not in the failure line: {text}"
    model = [p for p in (root / "model").rglob("*") if p.is_file()] if (root / "model").exists() else []
    assert not model, f"a failed job wrote {model}"


def test_every_image_has_twenty_kinds_of_bad_input():
    assert len(XGBOOST) >= 20 and len(SKLEARN) >= 20
    assert len({c.id for c in XGBOOST}) == len(XGBOOST) and len({c.id for c in SKLEARN}) == len(SKLEARN)


@pytest.mark.parametrize("case", XGBOOST, ids=lambda c: c.id)
def test_xgboost_hdfs_bad_input(xgboost_jobs, case):
    _check(xgboost_jobs, case)


@pytest.mark.parametrize("case", SKLEARN, ids=lambda c: c.id)
def test_sklearn_cpu_bad_input(sklearn_jobs, case):
    _check(sklearn_jobs, case)
