"""Training channels -> (features, labels): raw HDFS logs + anomaly_label.csv, CSV, libsvm, parquet or
RecordIO-protobuf.

The format comes from the channel's ContentType (the names SageMaker's built-in XGBoost takes, short
ones included) or, when absent, from the files themselves.
"""
from __future__ import annotations

import csv
from array import array
import logging
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from byoc import codecs, memory, recordio
from byoc.datafiles import is_parquet, read_parquet
from byoc.errors import DataError, RequestError
from byoc.training import GZIP_ERRORS, TrainingEnv, check_gzip, damaged_gzip, open_text

from . import libsvm
from .logparse import LogFormatError, TemplateMatcher
from .rawlogs import TruncatedFile, count_files

log = logging.getLogger(__name__)

LABEL_FILE = "anomaly_label.csv"
LABELS_CHANNEL = "labels"  # optional replicated channel for LABEL_FILE when the logs are sharded
RAW_LOGS = "raw-logs"
PARQUET = "parquet"
RECORDIO = codecs.RECORDIO
CONTENT_TYPES = {
    "text/csv": codecs.CSV,
    "csv": codecs.CSV,
    "text/libsvm": codecs.LIBSVM,
    "text/x-libsvm": codecs.LIBSVM,
    "libsvm": codecs.LIBSVM,
    "application/x-parquet": PARQUET,
    "application/parquet": PARQUET,
    "parquet": PARQUET,
    RECORDIO: RECORDIO,
    "text/plain": RAW_LOGS,
    "text/x-hdfs-log": RAW_LOGS,
}
# Bytes of memory per byte of input while training (the text, its lines, the matrix, XGBoost's copy),
# from the peak use of real-data jobs (CSV: OOM-killed with 750 MiB for 100 MiB, fine with 900).
# Raw logs are streamed and only per-block counts stay. libsvm is sparse: counted by its entries.
# RecordIO: the file's bytes, 1.8x them while parsing (measured, recordio.py), the float32 matrix
# and XGBoost's copy.
MEMORY_FACTOR = {RAW_LOGS: 0.5, codecs.CSV: 9, PARQUET: 3, RECORDIO: 8}
# XGBoost's own use in any job, whatever its input: its threads, first allocations and the modules
# loaded as training starts (48 MiB measured in the container, for 300 KB of CSV or of libsvm).
TRAINING_BASE = 48 * memory.MIB
_LABEL_NAMES = ("Normal", "Anomaly")
_LOG_LINE = re.compile(r"\d{6} \d{6} \d+ [A-Z]+ ")  # an HDFS_v1 line: date, time, pid, level


@dataclass
class Dataset:
    features: np.ndarray | sp.csr_matrix  # CSR for libsvm: sparse data stays sparse
    labels: np.ndarray
    feature_names: list[str] | None  # None for libsvm: its columns are just numbered
    source: str  # RAW_LOGS or the feature file format
    report: dict = field(default_factory=dict)
    label_column: str | None = None  # parquet: the label's column name
    qid: np.ndarray | None = None  # libsvm 'qid:': each row's ranking query group
    weights: np.ndarray | None = None  # CSV with csv_weights=1: the column after the label
    index_base: int | None = None  # libsvm: 1 when the files were 1-based (see settle_libsvm_base)


@dataclass(frozen=True)
class LabelRule:
    """The labels an objective takes: `wrong` marks the others, `needs` says what is expected."""

    wrong: Callable[[np.ndarray], np.ndarray]
    needs: str


BINARY_LABELS = LabelRule(lambda y: ~np.isin(y, (0.0, 1.0)), "a binary classifier needs 0 or 1")


@dataclass(frozen=True)
class Share:
    """The part of a channel this host trains on when several hosts train one model.

    A sharded channel (ShardedByS3Key) is already this host's part. A replicated one is split here:
    files round-robin when there are enough of them, else contiguous rows; raw logs by a hash of
    the block id, since one block's lines are spread over the files and must stay together."""

    rank: int = 0
    size: int = 1
    replicated: bool = True

    @classmethod
    def of(cls, env: TrainingEnv, channel: str) -> "Share":
        return cls(env.rank, len(env.hosts), not env.is_sharded(channel))

    @property
    def whole(self) -> bool:
        return self.size == 1 or not self.replicated

    def splits_files(self, files: list[Path]) -> bool:
        return not self.whole and len(files) >= self.size

    def rows(self, count: int) -> slice:
        start, stop = (count * self.rank) // self.size, (count * (self.rank + 1)) // self.size
        return slice(0, count) if self.whole else slice(start, stop)

    def keeps_block(self, block_id: str) -> bool:
        return self.whole or zlib.crc32(block_id.encode()) % self.size == self.rank


def detect_format(env: TrainingEnv, channel: str, files: list[Path], label_files: list[Path] = ()) -> str:
    declared = env.content_type(channel)
    if declared:
        if declared not in CONTENT_TYPES:
            raise DataError(
                f"channel '{channel}': ContentType {declared!r} is not supported; "
                f"use one of {sorted(CONTENT_TYPES)}"
            )
        _check_parameters(channel, env.input_data_config[channel]["ContentType"])
        return CONTENT_TYPES[declared]
    if any(f.name == LABEL_FILE for f in [*files, *label_files]):
        return RAW_LOGS
    first = files[0]
    if is_parquet(first):
        return PARQUET
    with open(first, "rb") as probe:
        if recordio.is_recordio(probe.read(4)):
            return RECORDIO
    try:
        with open_text(first) as handle:
            line = handle.readline()
    except GZIP_ERRORS as exc:
        raise damaged_gzip(first, exc) from None
    if _LOG_LINE.match(line):
        return RAW_LOGS  # logs without their label file: _load_raw_logs says so
    tokens = line.split()
    if len(tokens) > 1 and all(":" in t for t in tokens[1:]) and "," not in line:
        return codecs.LIBSVM
    return codecs.CSV


def _check_parameters(channel: str, content_type: str) -> None:
    """label_size=1 (the label is one column, the first) is the only label size, as in the built-in."""
    size = codecs.parameters(content_type).get("label_size")
    if size is not None and size.strip() != "1":
        raise DataError(f"channel '{channel}': ContentType {content_type!r}: label_size={size} is not supported; "
                        "the label is the first column alone (label_size=1): drop the parameter or set it to 1")


def memory_needed(env: TrainingEnv, channel: str) -> int:
    """Estimated bytes that loading a channel takes, from its files' sizes or libsvm entries (0 without the
    channel); the train channel's includes TRAINING_BASE."""
    files = env.channel_files(channel, required=False)
    if not files:
        return 0
    base = TRAINING_BASE if channel == "train" else 0
    labels = [f for f in env.channel_files(LABELS_CHANNEL, required=False) if f.name == LABEL_FILE]
    kind = detect_format(env, channel, files, labels)
    if kind == codecs.LIBSVM:
        return base + sum(libsvm.memory_needed(f) for f in files)
    return base + int(sum(memory.loaded_size(f) for f in files) * MEMORY_FACTOR[kind])


def load_channel(env: TrainingEnv, channel: str, matcher: TemplateMatcher, required: bool = True,
                 like: Dataset | None = None, labels: LabelRule | None = None, csv_weights: bool = False) -> Dataset | None:
    """A channel's rows; with `like` (the train channel, when loading validation) its columns are the
    train channel's: parquet columns matched by name, sparse widths made equal (both widened).
    `labels`: which labels the objective takes (default: 0 or 1). csv_weights: in CSV, the column
    after the label is each row's instance weight."""
    labels = labels or BINARY_LABELS
    files = env.channel_files(channel, required=required)
    if not files:
        return None
    share = Share.of(env, channel)
    label_files = [f for f in env.channel_files(LABELS_CHANNEL, required=False) if f.name == LABEL_FILE]
    kind = detect_format(env, channel, files, label_files)
    log.info("channel '%s': %d file(s), format %s", channel, len(files), kind)
    if kind == RAW_LOGS:
        return _load_raw_logs(channel, files, label_files, matcher, share)
    if share.splits_files(files):
        files = files[share.rank::share.size]
        share = Share()
    like = like if like is not None and like.source == kind else None  # another format: train.py says so
    if csv_weights and kind != codecs.CSV:
        log.warning("channel '%s' is %s: csv_weights applies to CSV channels only, its rows are unweighted", channel, kind)
    if kind == PARQUET:
        dataset = _load_parquet(files, like, labels)
    elif kind == RECORDIO:
        dataset = _load_recordio(files, labels)
    else:
        dataset = _load_feature_text(files, kind, labels, csv_weights)
        if csv_weights and kind == codecs.CSV and like is not None and dataset.features.shape[1] != like.features.shape[1]:
            raise DataError(f"channel '{channel}' has {dataset.features.shape[1]} feature columns after the label and "
                            f"the weight but train has {like.features.shape[1]}; with csv_weights=1 every CSV channel "
                            "has each row's weight in its second column")
    if like is not None and (sp.issparse(dataset.features) or sp.issparse(like.features)):
        match_widths([], dataset, like)
    if not share.whole:
        part = share.rows(len(dataset.labels))
        dataset.features, dataset.labels = dataset.features[part], dataset.labels[part]
        dataset.qid = dataset.qid[part] if dataset.qid is not None else None
        if dataset.weights is not None:
            dataset.weights = dataset.weights[part]
    if not share.whole or share.size > 1:
        log.info("channel '%s': this host (rank %d of %d) trains on %d rows", channel, share.rank, share.size,
                 len(dataset.labels))
    return dataset


def match_widths(widths: list[int], *datasets: Dataset | None) -> None:
    """Make sparse datasets as wide as the widest of them and of `widths` (each host's train width),
    widened with missing values; dense ones of different widths are an error."""
    sparse = [d for d in datasets if d is not None and sp.issparse(d.features)]
    if sparse:
        width = max([*widths, *(d.features.shape[1] for d in sparse)])
        for dataset in sparse:
            dataset.features = _widened(dataset.features, width)
    elif len(set(widths)) > 1:
        raise DataError(f"the hosts' shares of the train channel have different widths {sorted(set(widths))}; "
                        "every training file needs the same columns")


def settle_libsvm_base(gather, *datasets: Dataset | None) -> int | None:
    """Whether this job's libsvm indices count from 1, decided once over every file of every channel on
    every host (`gather`: Cluster.gather), as XGBoost guesses: 1-based when no row anywhere has index 0.
    Then every column moves one to the left (no phantom column 0); a 0-based job is left alone.
    Returns the base, also set on the datasets (None: no libsvm channel)."""
    sets = [d for d in datasets if d is not None and d.source == codecs.LIBSVM]
    seen = gather([bool(sets), any(bool((d.features.indices == 0).any()) for d in sets)])
    if not any(has_libsvm for has_libsvm, _ in seen):
        return None
    base = 0 if any(has_zero for _, has_zero in seen) else 1
    for dataset in sets:
        if base:
            rows, width = dataset.features.shape
            dataset.features = sp.csr_matrix((dataset.features.data, dataset.features.indices - 1,
                                               dataset.features.indptr), shape=(rows, max(width - 1, 1)))
        dataset.index_base = base
    log.info("libsvm indices are %d-based: %s", base, "no row of train or validation has index 0, so index 1 is the "
             "first feature (column 0 of the model)" if base else "index 0 appears, so indices are the model's columns")
    return base


# Raw logs -------------------------------------------------------------------------------------

def _read_labels(path: Path, labels: dict[str, int], earlier: list[Path]) -> None:
    """Adds the file's rows to `labels` (block id -> 0 or 1); `earlier` are the label files read before.
    A block listed again with the same label is accepted (label files put together); with the other
    label it is an error naming both lines."""
    rows = repeats = 0
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or [h.strip() for h in header[:2]] != ["BlockId", "Label"]:
            raise DataError(f"{path.name}, line 1: expected the header 'BlockId,Label', found {header}; "
                            "make that the first line")
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 2 or row[1].strip() not in ("Normal", "Anomaly"):
                raise DataError(f"{path.name}, line {number}: expected '<block id>,Normal|Anomaly', found "
                                f"{','.join(row)!r}; fix or remove that line")
            block, label = row[0].strip(), int(row[1].strip() == "Anomaly")
            rows += 1
            if block in labels:
                if labels[block] != label:
                    raise DataError(f"block {block} has two labels: {_LABEL_NAMES[labels[block]]} at "
                                    f"{_label_row([*earlier, path], block)} and {_LABEL_NAMES[label]} at {path.name}, "
                                    f"line {number}; keep the right one and remove the other")
                repeats += 1
                continue
            labels[block] = label
    if not rows:
        raise DataError(f"{path.name} has no labels; it must list 'BlockId,Label' rows")
    if repeats:
        log.warning("%s: %d block(s) listed more than once with the same label; each counts once", path.name, repeats)


def _label_row(paths: list[Path], block: str) -> str:
    """'file, line N' of a block's first row (read again only on this error path)."""
    for path in paths:
        with open_text(path) as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                if row and row[0].strip() == block:
                    return f"{path.name}, line {number}"
    return "an unknown line"


def _check_gzips(paths: list[Path]) -> None:
    for path in paths:
        check_gzip(path)


def _load_raw_logs(channel: str, files: list[Path], extra_label_files: list[Path], matcher: TemplateMatcher,
                   share: Share) -> Dataset:
    label_files = [f for f in files if f.name == LABEL_FILE] or extra_label_files
    if not label_files:
        raise DataError(f"channel '{channel}' holds raw logs but no {LABEL_FILE} (BlockId,Label) beside them: add it"
                        f" (with sharded logs, give {LABEL_FILE} its own replicated '{LABELS_CHANNEL}' channel)")
    labels: dict[str, int] = {}
    for number, path in enumerate(label_files):
        _read_labels(path, labels, label_files[:number])
    logs = [f for f in files if f.name != LABEL_FILE]
    if not logs:
        raise DataError(f"channel '{channel}' has {LABEL_FILE} but no log files")
    try:
        counts = count_files(logs, matcher)
    except LogFormatError as exc:
        _check_gzips([p for p in logs if p.name == exc.source])  # garbage from a damaged stream is the real problem
        raise DataError(f"{exc}: remove or fix that line") from None
    except TruncatedFile as exc:
        raise damaged_gzip(next(p for p in logs if p.name == exc.args[0]), exc) from None
    except GZIP_ERRORS:  # raised in a reading thread or worker: find the file
        _check_gzips(logs)
        raise
    blocks = counts.block_ids()  # chronological: order of first appearance
    unlabelled = [b for b in blocks if b not in labels]
    if unlabelled:
        raise DataError(
            f"{len(unlabelled)} block(s) in the logs of channel '{channel}' have no row in {LABEL_FILE}, "
            f"e.g. {unlabelled[:3]}, first named at {_first_mention(logs, unlabelled[0])}; "
            f"add a '<block id>,Normal|Anomaly' row for each to {LABEL_FILE}"
        )
    if counts.unmatched_lines:
        log.warning("%d line(s) matched no template and were counted in the '%s' column, e.g. %s",
                    counts.unmatched_lines, matcher.feature_names[-1], counts.unmatched_examples)
    block_ids = [b for b in blocks if share.keeps_block(b)]
    report = {
        "lines": counts.lines,
        "blocks": counts.blocks,
        "blocks_on_this_host": len(block_ids),
        "unmatched_lines": counts.unmatched_lines,
        "unmatched_examples": counts.unmatched_examples,
        "labelled_blocks_without_logs": len(labels) - counts.blocks,
    }
    return Dataset(
        features=counts.matrix(block_ids if len(block_ids) < counts.blocks else None),
        labels=np.array([labels[b] for b in block_ids], dtype=np.float32),
        feature_names=list(matcher.feature_names),
        source=RAW_LOGS,
        report=report,
    )


def _first_mention(logs: list[Path], block_id: str) -> str:
    """'file, line N' where a block first appears (read again only on this error path)."""
    pattern = re.compile(rf"{re.escape(block_id)}\b")
    for path in logs:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if pattern.search(line):
                    return f"{path.name}, line {number}"
    return "an unknown line"


# Ready features -------------------------------------------------------------------------------

def _load_feature_text(files: list[Path], kind: str, rule: LabelRule, csv_weights: bool = False) -> Dataset:
    """CSV (label first, then the weight with csv_weights, no header) or libsvm (label first, index:value)."""
    if kind == codecs.LIBSVM:
        return _load_libsvm(files, rule)
    parts, labels, weights = [], [], []
    for path in files:
        try:
            with open_text(path) as handle:
                body = handle.read().encode()
        except GZIP_ERRORS as exc:
            raise damaged_gzip(path, exc) from None
        if not body.strip():
            raise DataError(f"{path.name} is empty; remove it from the channel or upload its data again")
        try:
            matrix = codecs.decode_csv(body)
        except RequestError as exc:
            raise DataError(f"{path.name}: {exc}{_hint(str(exc))}") from None
        first = 2 if csv_weights else 1
        if matrix.shape[1] <= first:
            raise DataError(f"{path.name} has {matrix.shape[1]} column(s): no feature after the label"
                            f"{' and the weight (csv_weights=1)' if csv_weights else ''}; add the feature columns")
        label, features = matrix[:, 0], matrix[:, first:]
        if csv_weights:
            weights.append(_check_weights(matrix[:, 1], path))
        _check_finite(features, path, offset=first + 1)
        parts.append((path, features))
        labels.append(_check_labels(label, path, rule))
    width = max(f.shape[1] for _, f in parts)
    for path, features in parts:
        if features.shape[1] != width:
            raise DataError(f"{path.name} has {features.shape[1] + first} columns but other files have {width + first}; "
                            "every training file needs the same columns")
    features = np.concatenate([f for _, f in parts])
    return Dataset(features, np.concatenate(labels), [f"f{i}" for i in range(width)], kind,
                   weights=np.concatenate(weights) if csv_weights else None)


def _check_weights(weights: np.ndarray, path: Path) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if bad.size:
        raise DataError(f"{path.name}: row {bad[0] + 1}: the weight (column 2, csv_weights=1) is {weights[bad[0]]}; "
                        "an instance weight is a finite number >= 0")
    return weights


def _load_recordio(files: list[Path], rule: LabelRule) -> Dataset:
    """Dense or sparse records as the SDK writes them, labels from each record's label; sparse files make
    a CSR matrix (absent keys are missing values), 0-based as the SDK writes scipy's columns."""
    parts = []
    for path in files:
        try:
            rows = recordio.read(path.read_bytes(), labels=True)
        except recordio.RecordIOError as exc:
            raise DataError(f"{path.name}: {exc}") from None
        values = rows.features.data if sp.issparse(rows.features) else rows.features
        if np.isinf(values).any():
            raise DataError(f"{path.name}: a feature value is infinite (or beyond float32); use a finite number")
        parts.append((path, rows.features, _check_labels(rows.labels, path, rule, "the record's label")))
    if any(sp.issparse(features) for _, features, _ in parts):
        width = max(features.shape[1] for _, features, _ in parts)
        if width > libsvm.MAX_FEATURES:
            raise DataError(f"sparse records are {width:,} features wide: training takes at most "
                            f"{libsvm.MAX_FEATURES:,} (keys 0..{libsvm.MAX_FEATURES - 1}); renumber the features densely")
        memory.require(libsvm.width_memory(width), f"training on {width:,} sparse features (the records' shape)")
        features = sp.vstack([_widened(sp.csr_matrix(f), width) for _, f, _ in parts], format="csr")
    else:
        width = parts[0][1].shape[1]
        for path, f, _ in parts:
            if f.shape[1] != width:
                raise DataError(f"{path.name} has {f.shape[1]} features but {parts[0][0].name} has {width}; "
                                "every training file needs the same features")
        features = np.concatenate([f for _, f, _ in parts])
    # No feature names, dense or sparse: a dense train channel and a sparse validation one go together.
    return Dataset(features, np.concatenate([labels for _, _, labels in parts]), None, RECORDIO)


def _load_libsvm(files: list[Path], rule: LabelRule) -> Dataset:
    """Sparse rows stay sparse; narrower files are widened (an absent entry is missing). No feature
    names: XGBoost's per-round checks of 65,536 names cost more than the training (13.7 s against 2.8)."""
    query_ids = [array("q") for _ in files]
    parts = [libsvm.read(path, ids) for path, ids in zip(files, query_ids)]
    if any(query_ids) and not all(query_ids):
        with_ids = [path.name for path, ids in zip(files, query_ids) if ids]
        raise DataError(f"{with_ids[0]} has qid (ranking query groups) but "
                        f"{next(p.name for p, ids in zip(files, query_ids) if not ids)} has none; give all or none")
    for path, (labels, _) in zip(files, parts):
        _check_labels(labels, path, rule)
    width = max(features.shape[1] for _, features in parts)
    memory.require(libsvm.width_memory(width), f"training on {width:,} libsvm features (the widest index + 1)")
    matrices = [_widened(features, width) for _, features in parts]
    features = matrices[0] if len(matrices) == 1 else sp.vstack(matrices, format="csr")
    qid = np.concatenate([np.frombuffer(ids, dtype=np.int64) for ids in query_ids]) if any(query_ids) else None
    return Dataset(features, np.concatenate([labels for labels, _ in parts]), None, codecs.LIBSVM, qid=qid)


def _widened(features: sp.csr_matrix, width: int) -> sp.csr_matrix:
    """The same rows `width` columns wide (the new columns hold no entries: missing values)."""
    if features.shape[1] != width:
        features.resize((features.shape[0], width))
    return features


def _hint(problem: str) -> str:
    if " columns but " in problem:
        return "; every row needs the same number of cells: fix or remove that row"
    if problem.startswith("row 1, column"):
        return ("; row 1 looks like a header, but training CSV has none (the label is the first column): "
                "remove the header row")
    return "; every cell must be a number (an empty cell is a missing value): fix or remove that row"


def _check_finite(features: np.ndarray, path: Path, names: list | None = None, offset: int = 2) -> None:
    """XGBoost refuses infinity; NaN is a missing value and welcome. offset: CSV's column of feature 0."""
    infinite = np.argwhere(np.isinf(features))
    if infinite.size:
        row, column = map(int, infinite[0])
        where = f"column {names[column]!r}" if names else f"column {column + offset}"  # CSV: the label is column 1
        raise DataError(f"{path.name}: row {row + 1}, {where} is infinite; use a finite number, "
                        "or leave the value empty (NaN) for a missing value")


def _load_parquet(files: list[Path], like: Dataset | None, rule: LabelRule) -> Dataset:
    """Columns are matched by name: each file's (and a validation channel's) in the first one's order."""
    import pandas as pd

    frames = [read_parquet(path) for path in files]
    if like is not None:  # validation: the train channel's label and features
        label, names, origin = like.label_column, like.feature_names, "the train channel"
    else:
        first = [str(c) for c in frames[0].columns]
        label = "label" if "label" in first else first[0]
        names, origin = [c for c in first if c != label], files[0].name
    for index, (path, frame) in enumerate(zip(files, frames)):
        frame.columns = [str(c) for c in frame.columns]
        _check_columns(path, list(frame.columns), [label, *names], origin)
        for column in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
                raise DataError(f"{path.name}: column {column!r} is {frame[column].dtype}, not numeric; "
                                "store every feature and the label as numbers")
        frames[index] = frame = frame[[label, *names]]  # the reference's order
        _check_labels(frame[label].to_numpy(dtype=np.float32), path, rule, f"column {label!r}")
        _check_finite(frame[names].to_numpy(dtype=np.float32), path, names)
    frame = pd.concat(frames, ignore_index=True)
    return Dataset(frame[names].to_numpy(dtype=np.float32), frame[label].to_numpy(dtype=np.float32), names, PARQUET,
                   label_column=label)


def _check_columns(path: Path, found: list[str], expected: list[str], origin: str) -> None:
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    if missing or extra:
        problems = ([f"lacks column(s) {missing}"] if missing else []) + ([f"has column(s) {extra}"] if extra else [])
        raise DataError(f"{path.name} {' and '.join(problems)} unlike {origin} (columns {expected}); every file "
                        "of the train and validation channels needs the same columns, in any order")


def _check_labels(labels: np.ndarray, path: Path, rule: LabelRule, where: str = "the first column") -> np.ndarray:
    bad = np.flatnonzero(rule.wrong(labels))
    if bad.size:
        raise DataError(
            f"{path.name}: row {bad[0] + 1}: the label is {labels[bad[0]]} but {rule.needs} "
            f"(in {where}); fix that row's label or remove the row"
        )
    return labels
