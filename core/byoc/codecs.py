"""Content types, in one place: request bodies -> feature matrices, predictions -> response bodies.

Every decoder is strict: a ragged row, a non-numeric cell or a wrong column count is a
RequestError that names the row (1-based) and column (1-based), never a silent fix-up.
Line-based bodies are split on "\n" (and "\r\n") only, never on the other characters
str.splitlines() takes as line ends (\x1c-\x1e, \x85, \u2028, ...). Decoders give the dtype the
runtime asks for: float32 for XGBoost (it converts to float32 anyway), float64 for scikit-learn.
"""
from __future__ import annotations

import io
import json
import math
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from .errors import NotAcceptable, RequestError, UnsupportedMediaType

CSV = "text/csv"
JSON = "application/json"
JSONLINES = "application/jsonlines"
LIBSVM = "text/libsvm"
NPY = "application/x-npy"
RECORDIO = "application/x-recordio-protobuf"  # the SDK's RecordSerializer (see recordio.py)
TEXT = "text/plain"

ALIASES = {
    "csv": CSV,  # the short names SageMaker's built-in XGBoost takes (TrainingInput(content_type="libsvm"))
    "libsvm": LIBSVM,
    "application/jsonl": JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/json-lines": JSONLINES,
    "text/x-libsvm": LIBSVM,
    "application/x-libsvm": LIBSVM,
    "application/x-csv": CSV,
    "text/x-csv": CSV,
}
MISSING_CELLS = {"", "nan", "NaN", "NA", "null"}  # read as NaN, which XGBoost treats as missing


def media_type(header: str | None) -> str:
    """'Text/CSV; charset=utf-8' -> 'text/csv' (aliases folded)."""
    value = (header or "").split(";")[0].strip().lower()
    return ALIASES.get(value, value)


def parameters(header: str | None) -> dict[str, str]:
    """'text/csv; label_size=1; charset=utf-8' -> {'label_size': '1', 'charset': 'utf-8'} (names lower-case,
    quotes removed)."""
    found = {}
    for part in (header or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip():
            found[name.strip().lower()] = value.strip().strip('"')
    return found


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"body is not UTF-8 text (byte {exc.start})") from None


def body_lines(body: bytes) -> list[str]:
    """The lines of an HTTP body: split on "\n", a "\r" before it dropped, no last empty line."""
    text = _text(body)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _require_body(body: bytes) -> None:
    if not body or not body.strip():
        raise RequestError("empty request body: send at least one row")


def _cell(value: Any, row: int, col: int) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RequestError(f"row {row}, column {col}: {value!r} is not a number")
    if isinstance(value, str):
        value = value.strip()
        if value in MISSING_CELLS:
            return math.nan
    try:
        return float(value)
    except ValueError:
        raise RequestError(f"row {row}, column {col}: {value!r} is not a number") from None
    except OverflowError:  # a JSON integer beyond float range
        raise RequestError(f"row {row}, column {col}: {value} is too large for a number") from None


def _check_width(widths: Sequence[int], expected: int | None) -> int:
    """Every row as wide as the first (and as the model expects); the first offender is named."""
    width = expected if expected is not None else widths[0]
    for row, found in enumerate(widths, start=1):
        if found != width:
            whom = "the model expects" if expected is not None else "row 1 has"
            raise RequestError(f"row {row} has {found} columns but {whom} {width}")
    return width


# Decoders: bytes -> float matrix ----------------------------------------------------------------

class Distinct(NamedTuple):
    """Values for a payload's distinct rows (first-seen order), and each row's index among them.

    Real payloads repeat rows a lot: 1,000 HDFS blocks have 21 distinct event-count rows. A CSV
    line is parsed once however often it comes, and a model that scores rows independently may
    score each distinct row once (xgboost-hdfs does); encode() expands the answers in row order.
    `inverse` is None when no row repeats.
    """
    values: Any
    inverse: np.ndarray | None


def decode_csv_distinct(body: bytes, feature_names: Sequence[str] | None = None, dtype=np.float32) -> Distinct:
    """The distinct rows of a CSV body as a checked matrix of `dtype` (finite values only)."""
    lines, distinct = _body_lines(body)
    expected = len(feature_names) if feature_names else None
    matrix = _parse_csv_fast(list(distinct), expected, dtype)
    if matrix is None:  # something to name: the strict parser finds it, numbering every row
        return Distinct(_usable(_parse_csv_strict(lines, expected, dtype)), None)
    if len(distinct) == len(lines):
        return Distinct(_usable(matrix), None)
    for index, line in enumerate(distinct):
        distinct[line] = index
    inverse = np.fromiter(map(distinct.__getitem__, lines), dtype=np.intp, count=len(lines))
    if np.isinf(matrix).any():
        _usable(matrix[inverse])  # raises, naming the first such row of the body
    return Distinct(matrix, inverse)


def decode_csv(body: bytes, feature_names: Sequence[str] | None = None, dtype=np.float32) -> np.ndarray:
    """Every row of a CSV body, in order (infinite values are left to the caller)."""
    lines, _ = _body_lines(body)
    expected = len(feature_names) if feature_names else None
    matrix = _parse_csv_fast(lines, expected, dtype)
    return matrix if matrix is not None else _parse_csv_strict(lines, expected, dtype)


def _body_lines(body: bytes) -> tuple[list[str], dict[str, None]]:
    """The body's non-blank lines (row numbers count these) and its distinct ones, in first-seen order."""
    _require_body(body)
    lines = body_lines(body)
    distinct = dict.fromkeys(lines)
    if any(not line.strip() for line in distinct):  # a blank line is checked once, however often it comes
        lines = [line for line in lines if line.strip()]
        distinct = dict.fromkeys(lines)
    if not lines:
        raise RequestError("empty request body: send at least one row")
    return lines, distinct


def _parse_csv_fast(lines: list[str], expected: int | None, dtype) -> np.ndarray | None:
    """numpy's C parser for the whole body, or None when it refuses it or rows are ragged or the wrong width.

    It reads a subset of what _cell reads, with the same values; anything else goes to
    _parse_csv_strict, which names the row and column. (pandas' C reader was measured too: in the
    images it is slower than loadtxt on short numbers, faster only on 17-digit ones.)
    """
    widths = set(map(str.count, lines, repeat(",", len(lines))))
    if len(widths) != 1 or (expected is not None and widths.pop() + 1 != expected):
        return None
    try:
        return np.loadtxt(lines, delimiter=",", dtype=dtype, comments=None, ndmin=2)
    except ValueError:
        return None


def _parse_csv_strict(lines: list[str], expected: int | None, dtype) -> np.ndarray:
    width = _check_width([line.count(",") + 1 for line in lines], expected)
    matrix = np.empty((len(lines), width), dtype=dtype)
    for r, line in enumerate(lines):
        for c, cell in enumerate(line.split(",")):
            matrix[r, c] = _cell(cell, r + 1, c + 1)
    return matrix


def rows_to_matrix(rows: Any, feature_names: Sequence[str] | None = None, dtype=np.float32) -> np.ndarray:
    """Lists of numbers, or records keyed by feature name, into a checked matrix of `dtype`."""
    if isinstance(rows, list) and rows and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rows):
        rows = [rows]  # a single flat row
    if not isinstance(rows, list) or not rows:
        raise RequestError("expected a non-empty list of rows, e.g. {\"instances\": [[1.0, 2.0]]}")
    rows = [_record_row(row, r, feature_names) if isinstance(row, dict) else row for r, row in enumerate(rows, start=1)]
    for r, row in enumerate(rows, start=1):
        if not isinstance(row, list):
            raise RequestError(f"row {r} is {type(row).__name__}, expected a list of numbers or an object of named features")
    width = _check_width([len(row) for row in rows], len(feature_names) if feature_names else None)
    matrix = np.empty((len(rows), width), dtype=dtype)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            matrix[r, c] = _cell(value, r + 1, c + 1)
    return matrix


def _record_row(record: dict, r: int, feature_names: Sequence[str] | None) -> list:
    """{"hour": 16, ...} -> values in model feature order; unknown or missing names are errors."""
    if not feature_names:
        raise RequestError("this model has no feature names; send rows as lists in training column order")
    unknown = [k for k in record if k not in feature_names]
    if unknown:
        raise RequestError(f"row {r}: unknown feature(s) {unknown}; the model's features are {list(feature_names)}")
    missing = [name for name in feature_names if name not in record]
    if missing:
        raise RequestError(f"row {r}: missing feature(s) {missing}")
    return [record[name] for name in feature_names]


def _json_rows(document: Any) -> Any:
    if isinstance(document, dict):
        for key in ("instances", "data", "inputs", "features"):
            if key in document:
                return document[key]
        raise RequestError('JSON object must hold the rows under "instances" or "data"')
    return document


def decode_json(body: bytes, feature_names: Sequence[str] | None = None, dtype=np.float32) -> np.ndarray:
    _require_body(body)
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise RequestError(f"unreadable JSON: {exc}") from None
    except RecursionError:
        raise RequestError("unreadable JSON: nested too deeply; rows are lists of numbers") from None
    return rows_to_matrix(_json_rows(document), feature_names, dtype)


def decode_jsonlines(body: bytes, feature_names: Sequence[str] | None = None, dtype=np.float32) -> np.ndarray:
    _require_body(body)
    rows = []
    for number, line in enumerate(body_lines(body), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise RequestError(f"line {number}: unreadable JSON ({exc})") from None
        except RecursionError:
            raise RequestError(f"line {number}: unreadable JSON (nested too deeply; a row is a list of numbers)") from None
        rows.append(_json_rows(row) if isinstance(row, dict) and not _is_record(row, feature_names) else row)
    return rows_to_matrix(rows, feature_names, dtype)


def _is_record(row: dict, feature_names: Sequence[str] | None) -> bool:
    return bool(feature_names) and any(k in feature_names for k in row)


MAX_LIBSVM_WIDTH = 1 << 16  # a model without feature names: the widest row a request may make


def decode_libsvm(body: bytes, feature_names: Sequence[str] | None = None, dtype=np.float32,
                  index_base: int | None = 0) -> np.ndarray:
    """'[label] index:value ...' lines. A leading token without ':' is a label and is ignored.
    Absent entries are missing (NaN).

    index_base: 0 (XGBoost's convention, our models trained on 0-based files), 1 (a model trained
    on 1-based files: index 0 is refused), or None: 1-based when no row has index 0, as XGBoost and
    SageMaker's built-in container guess (a model that says nothing, e.g. a built-in artifact).
    """
    _require_body(body)
    lines = [line for line in body_lines(body) if line.strip()]
    parsed: list[dict[int, float]] = []
    for r, line in enumerate(lines, start=1):
        entries = {}
        tokens = line.split()
        if tokens and ":" not in tokens[0]:
            tokens = tokens[1:]
        for token in tokens:
            index, sep, value = token.partition(":")
            if not sep or not (index.isascii() and index.isdigit()):  # "¹".isdigit() is True, int() refuses it
                raise RequestError(f"row {r}: {token!r} is not index:value")
            entries[int(index)] = _cell(value, r, int(index) + 1)
        parsed.append(entries)
    base = index_base if index_base is not None else int(not any(0 in e for e in parsed))
    if base:
        for r, entries in enumerate(parsed, start=1):
            if 0 in entries:
                raise RequestError(f"row {r}: feature index 0 in a 1-based request: this model was trained on "
                                   "1-based libsvm, whose first feature is index 1")
        parsed = [{index - 1: value for index, value in e.items()} for e in parsed]
    width = len(feature_names) if feature_names else 1 + max((max(e) for e in parsed if e), default=-1)
    if width > MAX_LIBSVM_WIDTH:
        raise RequestError(f"feature index {width - 1 + base} is too large: rows would be {width} wide "
                           f"(at most {MAX_LIBSVM_WIDTH} without feature names in the model)")
    matrix = np.full((len(parsed), width), np.nan, dtype=dtype)
    for r, entries in enumerate(parsed):
        for index, value in entries.items():
            if index >= width:
                raise RequestError(f"row {r + 1}: feature index {index + base} is out of range; the model has {width} "
                                   f"features ({base}..{width - 1 + base}{', read 1-based' if base else ''})")
            matrix[r, index] = value
    return matrix


def decode_recordio(body: bytes, feature_names: Sequence[str] | None = None, dtype=np.float32) -> np.ndarray:
    """RecordIO-protobuf records (dense or sparse) as rows; a sparse record's absent keys are missing (NaN)."""
    from . import recordio

    _require_body(body)
    try:
        rows = recordio.read(body, dtype=dtype, width=len(feature_names) if feature_names else None).features
    except recordio.RecordIOError as exc:
        raise RequestError(f"{RECORDIO}: {exc}") from None
    if not isinstance(rows, np.ndarray):  # sparse: absent entries are missing values
        if rows.shape[1] > MAX_LIBSVM_WIDTH and not feature_names:
            raise RequestError(f"sparse records {rows.shape[1]} wide: at most {MAX_LIBSVM_WIDTH} without "
                               "feature names in the model")
        dense = np.full(rows.shape, np.nan, dtype=dtype)
        dense[np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)), rows.indices] = rows.data
        rows = dense
    return rows


def decode_npy(body: bytes, feature_names: Sequence[str] | None = None, dtype=np.float32) -> np.ndarray:
    _require_body(body)
    _check_npy_header(body)
    try:
        array = np.load(io.BytesIO(body), allow_pickle=False)
    except ValueError as exc:
        raise RequestError(f"unreadable .npy body: {exc}") from None
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise RequestError(f"expected a 2-D array, got shape {array.shape}")
    if feature_names and array.shape[1] != len(feature_names):
        raise RequestError(f"array has {array.shape[1]} columns but the model expects {len(feature_names)}")
    try:
        return array.astype(dtype)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"array is not numeric: {exc}") from None


def _check_npy_header(body: bytes) -> None:
    """Numeric dtype, and as many data bytes as the header's shape needs, before numpy allocates it."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise RequestError(f".npy format version {version[0]}.{version[1]} is not supported; use 1.0 or 2.0")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
    except RequestError:
        raise
    except Exception as exc:  # numpy parses the header as a Python literal: any failure is the body's
        # (ValueError, EOFError, SyntaxError, tokenize.TokenError, RecursionError, ...)
        raise RequestError(f"unreadable .npy body: {exc}") from None
    if dtype.kind not in "biuf":
        raise RequestError(f"unreadable .npy body: dtype {dtype} is not numeric; send int, float or bool values")
    needed, available = math.prod(shape) * dtype.itemsize, len(body) - stream.tell()
    if needed > available:
        raise RequestError(f"unreadable .npy body: the header's shape {shape} needs {needed} bytes of data, "
                           f"the body holds {available}")


DECODERS: dict[str, Callable[..., np.ndarray]] = {
    CSV: decode_csv,
    JSON: decode_json,
    JSONLINES: decode_jsonlines,
    LIBSVM: decode_libsvm,
    NPY: decode_npy,
    RECORDIO: decode_recordio,
}


def decode(body: bytes, content_type: str | None, feature_names: Sequence[str] | None = None,
           dtype=np.float32, libsvm_index_base: int | None = 0) -> np.ndarray:
    """A checked matrix of `dtype`; ModelRuntime.decode refuses one with no rows.
    libsvm_index_base: how a libsvm body's indices count (see decode_libsvm)."""
    kind = media_type(content_type)
    decoder = DECODERS.get(kind)
    if decoder is None:
        raise UnsupportedMediaType(f"Content-Type {content_type!r} is not supported; use one of {sorted(DECODERS)}")
    if kind == CSV:  # each distinct line parsed and checked once, then every row in order
        rows = decode_csv_distinct(body, feature_names, dtype)
        return rows.values if rows.inverse is None else rows.values[rows.inverse]
    if kind == LIBSVM:
        return _usable(decode_libsvm(body, feature_names, dtype, libsvm_index_base))
    return _usable(decoder(body, feature_names, dtype))


def _usable(matrix: np.ndarray) -> np.ndarray:
    """No infinite values (models refuse them; NaN is a missing value)."""
    infinite = np.isinf(matrix)
    if infinite.any():
        row, column = (int(i) + 1 for i in np.argwhere(infinite)[0])
        raise RequestError(f"row {row}, column {column}: infinite, or beyond the {matrix.dtype} range "
                           f"(about {np.finfo(matrix.dtype).max:.2g})")
    return matrix


def row_count(data: Any) -> int | None:
    """Rows of decoded input: a matrix, a Distinct, or anything with a length (None: unknown)."""
    if isinstance(data, Distinct):
        return row_count(data.values) if data.inverse is None else len(data.inverse)
    shape = getattr(data, "shape", None)
    if shape is not None:
        return shape[0] if len(shape) else None
    return len(data) if hasattr(data, "__len__") else None


def require_rows(data: Any) -> Any:
    """Every request must hold a row: a model is never called with none (XGBoost fails in C)."""
    if row_count(data) == 0:
        raise RequestError("no rows in the body: send at least one row")
    return data


# Encoders: predictions -> bytes ---------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


_PLAIN = frozenset((float, int, str, bool, type(None)))


def _records(predictions: Any) -> list:
    if isinstance(predictions, np.ndarray):
        return predictions.tolist()
    records = list(predictions)
    # The common case, records of plain Python values, is checked at C speed and used as it is.
    if set(map(type, records)) == {dict} and _PLAIN.issuperset(map(type, chain.from_iterable(map(dict.values, records)))):
        return records
    return [{k: _plain(v) for k, v in p.items()} if isinstance(p, dict) else _plain(p) for p in records]


def _expand(items: list, inverse: np.ndarray | None) -> list:
    """Per-row items from per-distinct-row items (see Distinct)."""
    return items if inverse is None else [items[i] for i in inverse.tolist()]


def encode_json(predictions: Any, csv_fields: Sequence[str] = (), inverse: np.ndarray | None = None) -> bytes:
    records = _records(predictions)
    if inverse is None:
        return json.dumps({"predictions": records}).encode()
    # The bytes json.dumps gives for the whole list, with each distinct record written once.
    return ('{"predictions": [' + ", ".join(_expand(list(map(json.dumps, records)), inverse)) + "]}").encode()


def encode_jsonlines(predictions: Any, csv_fields: Sequence[str] = (), inverse: np.ndarray | None = None) -> bytes:
    return "".join(_expand([json.dumps(p) + "\n" for p in _records(predictions)], inverse)).encode()


def encode_csv(predictions: Any, csv_fields: Sequence[str] = ("score",), inverse: np.ndarray | None = None) -> bytes:
    """One line per prediction: the record's csv_fields, or the row of values as is."""
    return ("\n".join(_expand(_csv_lines(_records(predictions), csv_fields), inverse)) + "\n").encode()


_SCALARS = frozenset((float, int, str, bool))


def _csv_cell(value: Any) -> str:
    """A record's value in a CSV line: a list as one quoted cell '"[0.25, 0.75]"' (as SageMaker's
    built-in XGBoost writes its selectable outputs), None (not applicable) as nan."""
    if isinstance(value, list):
        return f'"{value}"'
    return "nan" if value is None else str(value)


def _csv_lines(records: list, csv_fields: Sequence[str]) -> list[str]:
    if len(csv_fields) == 1 and records and set(map(type, records)) == {dict}:
        try:  # one scalar field, in every record (the common case): at C speed
            values = list(map(itemgetter(csv_fields[0]), records))
            if _SCALARS.issuperset(map(type, values)):
                return list(map(str, values))
        except KeyError:
            pass
    lines = []
    for p in records:
        if isinstance(p, dict):
            lines.append(",".join([_csv_cell(p[f]) for f in csv_fields if f in p]))
        elif isinstance(p, list):
            lines.append(",".join(map(str, p)))
        else:
            lines.append(str(p))
    return lines


def encode_npy(predictions: Any, csv_fields: Sequence[str] = ("score",), inverse: np.ndarray | None = None) -> bytes:
    """The numeric predictions as an array: of records, the first numeric one of csv_fields (the score)."""
    records = _records(predictions)
    if records and isinstance(records[0], dict):
        numeric = [f for f in csv_fields or records[0] if isinstance(records[0].get(f), (int, float, list))]
        if not numeric:
            raise NotAcceptable(f"no numeric prediction to answer as {NPY}; ask for {JSON} or {CSV}")
        records = [p[numeric[0]] for p in records]
    values = np.asarray(records)
    return _npy_bytes(values if inverse is None else values[inverse])


def _npy_bytes(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    return buffer.getvalue()


# Many rows, little memory: predictions as columns -----------------------------------------------

class Columns(NamedTuple):
    """Predictions as named, equally long numpy columns, written without a Python object per row.

    For answers with very many rows (a raw-log body names up to ~500,000 blocks): text is made a
    batch of rows at a time. Byte-string columns (block ids, ASCII) are written as JSON strings,
    float32 columns in their shortest exact form (0.0016398139 rather than 0.0016398139996454120),
    integer columns as integers. An npy answer holds the `npy` column (the scores).
    """
    names: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]
    npy: str = "score"

    def __len__(self) -> int:  # rows, as row_count() reads it
        return len(self.arrays[0])

    def column(self, name: str) -> np.ndarray:
        return self.arrays[self.names.index(name)]


COLUMN_BATCH = 65536  # rows formatted at once: bounds the per-row strings alive together
_LEAST_TEXT = {"f": 3, "i": 1, "u": 1, "b": 1}  # shortest text of a value ("0.0", "0")


def _column_text(array: np.ndarray) -> list[bytes]:
    if array.dtype.kind == "S":
        return array.tolist()
    if array.dtype.kind == "f":  # numpy writes the shortest text that reads back as the same float
        return array.astype("S32").tolist()
    return list(map(b"%d".__mod__, array.tolist()))


def _templates(columns: Columns, accept: str, csv_fields: Sequence[str]) -> tuple[list[str], bytes, bytes]:
    """(column names, row template with one %s per name, separator between rows) for a text answer."""
    if accept == CSV:
        names = [name for name in csv_fields if name in columns.names] or list(columns.names)
        return names, b",".join([b"%s"] * len(names)) + b"\n", b""
    fields = [(b'"%s": "%%s"' if columns.column(name).dtype.kind == "S" else b'"%s": %%s') % name.encode()
              for name in columns.names]
    row = b"{" + b", ".join(fields) + b"}"
    if accept == JSONLINES:
        return list(columns.names), row + b"\n", b""
    return list(columns.names), row, b", "


def encode_columns(columns: Columns, accept: str, csv_fields: Sequence[str]) -> bytes:
    """What the record encoders write for the same rows (JSON: a record per row), floats shortest."""
    if accept == NPY:
        return _npy_bytes(columns.column(columns.npy))
    names, template, separator = _templates(columns, accept, csv_fields)
    arrays = [columns.column(name) for name in names]
    parts = [b'{"predictions": [' if accept == JSON else b""]
    for start in range(0, len(columns), COLUMN_BATCH):
        texts = [_column_text(a[start:start + COLUMN_BATCH]) for a in arrays]
        parts += [separator] if start else []
        parts.append(separator.join(map(template.__mod__, zip(*texts))))
    parts.append(b"]}" if accept == JSON else b"")
    return b"".join(parts)


def least_encoded_size(columns: Columns, accept: str, csv_fields: Sequence[str]) -> int:
    """A lower bound of len(encode_columns(...)), without making the text: for a 413 before the work."""
    if accept == NPY:
        return len(columns) * columns.column(columns.npy).dtype.itemsize
    names, template, separator = _templates(columns, accept, csv_fields)
    total = (len(template) - 2 * len(names) + len(separator)) * len(columns)
    for array in map(columns.column, names):
        total += int(np.char.str_len(array).sum()) if array.dtype.kind == "S" else _LEAST_TEXT.get(array.dtype.kind, 0) * len(columns)
    return total


ENCODERS: dict[str, Callable[..., bytes]] = {
    JSON: encode_json,
    JSONLINES: encode_jsonlines,
    CSV: encode_csv,
    NPY: encode_npy,
}


def negotiate(accept: str | None, content_type: str | None, supported: Sequence[str] = tuple(ENCODERS),
              default: str | None = None) -> str:
    """The response type: the first supported entry of Accept (by q), else a default.

    Missing or */* Accept answers `default` (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT) when given, else
    CSV to CSV input and JSON otherwise (JSON Lines to JSON Lines).
    """
    wanted = []
    for position, part in enumerate((accept or "").split(",")):
        fields = part.split(";")
        kind = media_type(fields[0])
        if not kind:
            continue
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        wanted.append((-q, position, kind))
    for _, _, kind in sorted(wanted):
        if kind in supported:
            return kind
        if kind in ("*/*", "application/*", "text/*") or not kind:
            return _default_accept(content_type, supported, kind, default)
    if not wanted:
        return _default_accept(content_type, supported, "*/*", default)
    raise NotAcceptable(f"Accept {accept!r} is not supported; use one of {list(supported)}")


def _default_accept(content_type: str | None, supported: Sequence[str], wildcard: str, default: str | None) -> str:
    kind = media_type(content_type)
    preferred = default or (kind if kind in (CSV, JSONLINES) else JSON)
    if wildcard != "*/*" and not preferred.startswith(wildcard[:-1]):
        preferred = next((s for s in supported if s.startswith(wildcard[:-1])), preferred)
    return preferred if preferred in supported else supported[0]


def encode(predictions: Any, accept: str, csv_fields: Sequence[str] = ("score",)) -> bytes:
    """predictions: one per row, a Distinct of them, or Columns."""
    if isinstance(predictions, Columns):
        return encode_columns(predictions, accept, csv_fields)
    if isinstance(predictions, Distinct):
        return ENCODERS[accept](predictions.values, csv_fields, predictions.inverse)
    return ENCODERS[accept](predictions, csv_fields)
