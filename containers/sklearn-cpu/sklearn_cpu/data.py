"""Training channels -> one DataFrame: CSV with a header, or parquet (tables or raw PRTG sensor files)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from byoc.datafiles import is_parquet, read_parquet
from byoc.errors import DataError
from byoc.training import GZIP_ERRORS, TrainingEnv, check_gzip, damaged_gzip, open_text

log = logging.getLogger(__name__)
CSV_TYPES = {"text/csv"}
PARQUET_TYPES = {"application/x-parquet", "application/parquet"}


def _is_parquet(path: Path, declared: str | None) -> bool:
    if declared:
        if declared not in CSV_TYPES | PARQUET_TYPES:
            raise DataError(f"ContentType {declared!r} is not supported; use text/csv or application/x-parquet")
        return declared in PARQUET_TYPES
    return is_parquet(path)


def _read(path: Path, parquet: bool) -> pd.DataFrame:
    if parquet:
        return read_parquet(path)
    try:
        with open_text(path) as handle:
            frame = pd.read_csv(handle)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name} is empty; a CSV channel needs a header row and data rows") from None
    except GZIP_ERRORS as exc:
        raise damaged_gzip(path, exc) from None
    except (pd.errors.ParserError, OSError) as exc:
        check_gzip(path)  # garbage from a damaged gzip stream is the real problem
        raise DataError(f"{path.name} is not readable CSV: {str(exc).strip()}; every row needs as many cells as the header") from None
    # DataFrame.to_csv writes the index as an unnamed first column: it is not a feature.
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ") or str(c).strip() == ""]
    return frame.drop(columns=unnamed)


Where = Callable[[int], str]  # a row of a file (0-based) -> "file.csv, line 7" for messages


def require_numbers(frame: pd.DataFrame, columns: list[str], where: Where) -> None:
    """Every cell of the columns a finite number; the first that is not is named with file and line."""
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise DataError(f"{where(int(bad[0]))}, column {column!r}: {_shown(frame[column].iloc[bad[0]])} is not a "
                            "finite number; fix or remove that row, or leave the column out (features hyperparameter)")


def _shown(value) -> str:
    if isinstance(value, str):
        return repr(value)
    return "an empty cell" if pd.isna(value) else str(value)


# Unix times as numbers, told apart by size: seconds since 1970 pass 1e8 in 1973 and stay below 1e11
# until the year 5138; milliseconds, microseconds and nanoseconds are 1,000, 10^6 and 10^9 times more.
EPOCH_UNITS = ("s", "ms", "us", "ns")
_EPOCH_LOWEST = np.array([1e8, 1e11, 1e14, 1e17])


def epoch_unit(values: np.ndarray) -> np.ndarray:
    """Each number's unit as an index into EPOCH_UNITS, -1 below 1e8 (no Unix time since 1973)."""
    return np.searchsorted(_EPOCH_LOWEST, values, side="right") - 1


def to_times(values: pd.Series, column: str, where: Where | None = None) -> pd.Series:
    """A column as timestamps: datetimes as they are, text parsed, numbers as Unix times in the unit
    their size says (seconds, ms, us or ns; pandas alone would take every number for nanoseconds).
    Cells that are no timestamp are an error naming the row (`where`) and the column."""
    where = where or (lambda row: f"row {row + 1}")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric:
        stamps = pd.to_datetime(values, errors="coerce")
        bad = np.flatnonzero(stamps.isna().to_numpy())
        if bad.size:
            raise DataError(f"{where(int(bad[0]))}, column {column!r}: {_shown(values.iloc[bad[0]])} is not a "
                            "timestamp; write times such as '2021-06-01 00:00:26', or fix or remove that row")
        return stamps
    numbers = values.to_numpy(dtype=float)
    units = np.where(np.isfinite(numbers), epoch_unit(numbers), -1)
    bad = np.flatnonzero(units < 0)
    if bad.size:
        raise DataError(f"{where(int(bad[0]))}, column {column!r}: {_shown(values.iloc[bad[0]])} is not a timestamp: "
                        "a number there is a Unix time (seconds, ms, us or ns since 1970; at least 1e8 s), "
                        "or write times such as '2021-06-01 00:00:26'")
    other = np.flatnonzero(units != units[0])
    if other.size:
        raise DataError(f"{where(int(other[0]))}, column {column!r}: {_shown(values.iloc[other[0]])} is a Unix time in "
                        f"{EPOCH_UNITS[units[other[0]]]} but {where(0)} holds {_shown(values.iloc[0])} in "
                        f"{EPOCH_UNITS[units[0]]}; write every time in one unit")
    unit = EPOCH_UNITS[units[0]]
    log.info("column %r: numbers read as Unix times in %s (%s is %s)", column, unit, _shown(values.iloc[0]),
             pd.to_datetime(values.iloc[0], unit=unit))
    # The column's own integers, not floats: nanoseconds beyond 2^53 would lose their last digits.
    return pd.Series(pd.to_datetime(values.to_numpy(), unit=unit), index=values.index, name=values.name)


def require_times(frame: pd.DataFrame, column: str, where: Where) -> None:
    to_times(frame[column], column, where)


def load_channel(env: TrainingEnv, channel: str, required: bool = True,
                 check: Callable[[pd.DataFrame, Where], None] | None = None) -> pd.DataFrame | None:
    """The channel's files as one DataFrame; `check` sees each file's rows, to name file and line."""
    files = env.channel_files(channel, required=required)
    if not files:
        return None
    declared = env.content_type(channel)
    frames = []
    for path in files:
        parquet = _is_parquet(path, declared)
        frame = _read(path, parquet)
        if frame.empty:
            raise DataError(f"{path.name} has no rows; remove it from the channel or upload its data again")
        if frames and list(frame.columns) != list(frames[0].columns):
            raise DataError(f"{path.name} has columns {list(frame.columns)} but {files[0].name} has "
                            f"{list(frames[0].columns)}; every file of a channel needs the same columns")
        if check:  # CSV: line 1 is the header; parquet has rows, no lines
            check(frame, lambda row, name=path.name, p=parquet: f"{name}, row {row + 1}" if p else f"{name}, line {row + 2}")
        frames.append(frame)
    log.info("channel '%s': %d file(s), %d rows", channel, len(files), sum(len(f) for f in frames))
    return pd.concat(frames, ignore_index=True)
