"""Reading training files into DataFrames, with errors that name the file."""
from __future__ import annotations

from pathlib import Path

from .errors import DataError

PARQUET_MAGIC = b"PAR1"


def is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == PARQUET_MAGIC


def read_parquet(path: Path):
    """A parquet file as a pandas DataFrame (fastparquet: a few MB, where pyarrow is 150)."""
    import fastparquet

    try:
        return fastparquet.ParquetFile(str(path)).to_pandas()
    except Exception as exc:  # fastparquet raises many types for a damaged or foreign file
        raise DataError(f"{path.name} is not a readable parquet file ({type(exc).__name__}: {exc})") from None
