"""Training channels -> one DataFrame: CSV with a header, or parquet (tables or raw PRTG sensor files)."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from byoc.datafiles import is_parquet, read_parquet
from byoc.errors import DataError
from byoc.training import TrainingEnv, open_text

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
    except (pd.errors.ParserError, EOFError, OSError) as exc:
        raise DataError(f"{path.name} is not readable CSV: {exc}") from None
    # DataFrame.to_csv writes the index as an unnamed first column: it is not a feature.
    unnamed = [c for c in frame.columns if str(c).startswith("Unnamed: ") or str(c).strip() == ""]
    return frame.drop(columns=unnamed)


def load_channel(env: TrainingEnv, channel: str, required: bool = True) -> pd.DataFrame | None:
    files = env.channel_files(channel, required=required)
    if not files:
        return None
    declared = env.content_type(channel)
    frames = []
    for path in files:
        frame = _read(path, _is_parquet(path, declared))
        if frame.empty:
            raise DataError(f"{path.name} has no rows")
        if frames and list(frame.columns) != list(frames[0].columns):
            raise DataError(f"{path.name} has columns {list(frame.columns)} but {files[0].name} has "
                            f"{list(frames[0].columns)}; every file of a channel needs the same columns")
        frames.append(frame)
    log.info("channel '%s': %d file(s), %d rows", channel, len(files), sum(len(f) for f in frames))
    return pd.concat(frames, ignore_index=True)
