"""Training libsvm files as scipy.sparse CSR matrices: memory follows the entries, never rows x widest index.

A row is '<label> <index>:<value> ...' with 0-based indices (XGBoost's convention); an absent entry,
like a NaN value, is a missing value. Rows are read line by line into typed arrays (8 bytes an entry),
so a file's text is never held whole.
"""
from __future__ import annotations

import gzip
import math
import os
from array import array
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from byoc.errors import DataError
from byoc.training import GZIP_ERRORS, GZIP_MAGIC, damaged_gzip, open_text

# The widest row training accepts. XGBoost's hist method keeps cuts and histograms for every feature,
# even one no row has (see FEATURE_BYTES; 1,048,576 features took 580 MiB and 16 s for 20 rounds of
# 6,440 rows on 2 threads), so 2^20 is the most that trains in reasonable time and memory.
MAX_FEATURES = 1 << 20
# Bytes of memory while training, rounded up from the peak use of real-data jobs (HDFS event counts,
# 100 rounds, validation beside): per entry (CSR 8, XGBoost's copy and its bin index) 29 measured,
# per row (labels, gradients, predictions, evaluation) 127, per feature 400 plus 144 per thread.
ENTRY_BYTES, ROW_BYTES = 32, 128
FEATURE_BYTES, THREAD_FEATURE_BYTES = 512, 160
FORMAT_HINT = "write each row as '<label> <index>:<value> ...' with 0-based indices"
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def read(path: Path, query_ids: array | None = None) -> tuple[np.ndarray, sp.csr_matrix]:
    """(labels, features) of one file; errors name the file, its line and the token. A row may carry
    its ranking query group after the label ('<label> qid:<n> <index>:<value> ...', as XGBoost reads
    it): then every row must, and the ids are appended to `query_ids`."""
    labels, indices, values = array("f"), array("i"), array("f")
    groups: array | None = None
    starts, lines = array("q", [0]), array("q")  # each row's first entry, and its line in the file
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                tokens = line.split()
                if not tokens:
                    continue
                labels.append(_label(tokens[0], path, number))
                grouped = len(tokens) > 1 and tokens[1].startswith("qid:")
                if lines and grouped != (groups is not None):
                    raise DataError(f"{path.name}, line {number}: {'a qid' if grouped else 'no qid'} here but "
                                    f"{'none' if grouped else 'one'} on line {lines[0]}; give every row its "
                                    "query group (qid:<n> after the label) or none")
                if grouped:
                    groups = groups if groups is not None else array("q")
                    groups.append(_query_id(tokens[1], path, number))
                for token in tokens[2 if grouped else 1:]:
                    index, value = _entry(token, path, number)
                    indices.append(index)
                    values.append(value)
                starts.append(len(indices))
                lines.append(number)
    except GZIP_ERRORS as exc:
        raise damaged_gzip(path, exc) from None
    if not labels:
        raise DataError(f"{path.name} is empty; remove it from the channel or upload its data again")
    if not indices:
        raise DataError(f"{path.name} has labels but no index:value entries; {FORMAT_HINT}")
    indices_, starts_ = np.frombuffer(indices, dtype=np.int32), np.frombuffer(starts, dtype=np.int64)
    matrix = sp.csr_matrix((np.frombuffer(values, dtype=np.float32), indices_, starts_),
                           shape=(len(labels), int(indices_.max()) + 1))
    _check_distinct_indices(matrix, path, lines)
    if groups is not None:
        if query_ids is None:
            raise DataError(f"{path.name}: rows carry qid (ranking query groups) but this reader takes none")
        query_ids.extend(groups)
    return np.frombuffer(labels, dtype=np.float32).copy(), matrix


def count(path: Path) -> tuple[int, int]:
    """(rows, entries) of a file from its newlines and ':' bytes, without parsing it: what the
    memory estimate needs before anything is loaded. A damaged gzip file counts up to the damage."""
    rows = entries = 0
    last = b"\n"
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
            while chunk := handle.read(1 << 20):
                rows, entries, last = rows + chunk.count(b"\n"), entries + chunk.count(b":"), chunk[-1:]
    except GZIP_ERRORS:
        pass  # loading names the damaged file
    return rows + (last != b"\n"), entries


def memory_needed(path: Path) -> int:
    """Bytes that training on a file's rows and entries takes (its width is checked once it is read)."""
    rows, entries = count(path)
    return rows * ROW_BYTES + entries * ENTRY_BYTES


def width_memory(width: int, threads: int | None = None) -> int:
    """Bytes XGBoost's hist method takes for `width` features, whether or not any row has them."""
    return width * (FEATURE_BYTES + THREAD_FEATURE_BYTES * (threads or os.cpu_count() or 1))


def _label(token: str, path: Path, line: int) -> float:
    try:
        value = float(token)
    except ValueError:
        hint = "the label comes first" if ":" in token else "a label is a number"
        raise DataError(f"{path.name}, line {line}: label {token!r} is not a number ({hint}); {FORMAT_HINT}") from None
    return value


def _query_id(token: str, path: Path, line: int) -> int:
    text = token[len("qid:"):]
    if not (text.isascii() and text.isdigit()):
        raise DataError(f"{path.name}, line {line}: {token!r}: a query id is a whole number >= 0, e.g. qid:3")
    return int(text)


def _entry(token: str, path: Path, line: int) -> tuple[int, float]:
    index, sep, text = token.partition(":")
    if index == "qid":
        raise DataError(f"{path.name}, line {line}: {token!r}: qid comes right after the label, once a row")
    if not sep or not (index.isascii() and index.isdigit()):  # "¹".isdigit() is True, int() refuses it
        raise DataError(f"{path.name}, line {line}: {token!r} is not index:value; {FORMAT_HINT}")
    number = int(index)
    if number >= MAX_FEATURES:
        raise DataError(f"{path.name}, line {line}: feature index {number} is too large: training takes at most "
                        f"{MAX_FEATURES:,} features (indices 0..{MAX_FEATURES - 1}); renumber the features densely")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path.name}, line {line}: {token!r}: the value {text!r} is not a number; "
                        "write a number, or leave the entry out for a missing value") from None
    if math.isinf(value) or abs(value) > _FLOAT32_MAX:  # XGBoost refuses infinity; NaN is a missing value
        raise DataError(f"{path.name}, line {line}: {token!r}: the value is infinite (or beyond float32); "
                        "use a finite number, or leave the entry out for a missing value")
    return number, value


def _check_distinct_indices(matrix: sp.csr_matrix, path: Path, lines: array) -> None:
    """One value per index and row: a repeated index would be summed by some readers, kept once by others."""
    if _repeated(matrix).any():
        matrix.sort_indices()  # rows in any index order are fine; then a repeat sits beside its twin
        repeated = np.flatnonzero(_repeated(matrix))
        if repeated.size:
            entry = int(repeated[0]) + 1
            row = int(np.searchsorted(matrix.indptr, entry, side="right")) - 1
            raise DataError(f"{path.name}, line {lines[row]}: feature index {int(matrix.indices[entry])} appears "
                            "more than once in the row; keep one index:value for each index")
    matrix.has_sorted_indices = True


def _repeated(matrix: sp.csr_matrix) -> np.ndarray:
    """For each entry but the last: whether the next one, in the same row, has an index not above it."""
    falls = np.diff(matrix.indices) <= 0
    row_ends = matrix.indptr[1:-1] - 1
    falls[row_ends[(row_ends >= 0) & (row_ends < falls.size)]] = False
    return falls
