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
        raise DataError(f"{path.name} is not a readable parquet file ({type(exc).__name__}: {exc}); write it again "
                        "with DataFrame.to_parquet, or declare the channel's real ContentType") from None


def parquet_cells(path: Path) -> int:
    """Rows x columns of a parquet file from its footer alone: its size in memory is about 8 bytes a cell."""
    import fastparquet

    try:
        parquet = fastparquet.ParquetFile(str(path))
        return parquet.count() * len(parquet.columns)
    except Exception:  # a damaged file: reading it fails later with a message naming it
        return 0
