"""Memory this container may still use, and an early, clear refusal when the input will not fit.

An out-of-memory kill by the container's cgroup ends a job with no chance to write the failure file,
so training estimates what its input needs from the file sizes before loading any of it.
"""
from __future__ import annotations

import logging
import resource
from pathlib import Path

from .errors import DataError

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
DEFLATE_MAX_RATIO = 1032  # deflate never expands more than this: caps a damaged gzip trailer
MIB = 1 << 20


def _cgroup_free(limit_file: str, usage_file: str, stat_file: str, inactive_key: str) -> int | None:
    """Limit minus usage, not counting inactive page cache (the kernel reclaims it before OOM)."""
    try:
        limit = Path(limit_file).read_text().strip()
        usage = int(Path(usage_file).read_text())
        stat = dict(line.split() for line in Path(stat_file).read_text().splitlines() if line.count(" ") == 1)
    except (OSError, ValueError):
        return None
    if limit == "max" or int(limit) >= _machine_memory():
        return None  # no limit on this container
    return int(limit) - (usage - int(stat.get(inactive_key, 0)))


def _meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _machine_memory() -> int:
    return _meminfo("MemTotal")


def available_memory() -> int | None:
    """Bytes this container can still use: its cgroup's limit (v2 or v1) if any, else the machine's."""
    free = _cgroup_free("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current",
                        "/sys/fs/cgroup/memory.stat", "inactive_file")
    if free is None:
        free = _cgroup_free("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
                            "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file")
    if free is None:
        try:
            free = _meminfo("MemAvailable") or None
        except OSError:
            return None
    return free


def uncompressed_size(path: Path) -> int:
    """A file's size once read: a gzip file's trailer holds its length (mod 4 GiB, last member)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(2) != GZIP_MAGIC or size < 18:
            return size
        handle.seek(-4, 2)
        stated = int.from_bytes(handle.read(4), "little")
    return max(size, min(stated, size * DEFLATE_MAX_RATIO))


def loaded_size(path: Path) -> int:
    """Bytes a file takes once read: its text uncompressed, or 8 bytes per cell of a parquet table."""
    from .datafiles import is_parquet, parquet_cells

    return parquet_cells(path) * 8 if is_parquet(path) else uncompressed_size(path)


def require(needed: int, what: str) -> None:
    """Refuse before loading when `needed` bytes (an estimate) exceed what the container has left."""
    free = available_memory()
    log.info("memory: %s needs about %d MiB on top of the %d MiB in use; %s MiB free", what, needed // MIB,
             resident() // MIB, "unknown" if free is None else max(free, 0) // MIB)
    if free is not None and needed > free:
        raise DataError(
            f"{what} needs about {needed // MIB} MiB of memory but this container has {max(free, 0) // MIB} MiB free; "
            "use an instance type with more memory, or train on less data (fewer or smaller files)"
        )


def resident() -> int:
    """Bytes this process holds in memory now (0 where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak() -> int:
    """The most bytes this process has held in memory at once."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
