"""Raw HDFS log files -> BlockMatrix, streamed in big chunks, over several processes when it pays.

Plain files are cut into parts at line boundaries and counted in parallel worker processes; gzip
files are one part each (a gzip stream is read from its start), decompressed in a thread beside the
counting. Parts come back in order and are merged so that blocks keep their order of first
appearance and errors name the real line. Memory stays bounded by the chunk size and the blocks.
"""
from __future__ import annotations

import gzip
import logging
import multiprocessing
import os
import queue
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from byoc.training import GZIP_MAGIC

from .logparse import BlockMatrix, LogFormatError, TemplateMatcher

log = logging.getLogger(__name__)

CHUNK = 4 << 20  # bytes per chunk: big enough for C-level work to dominate, small enough for caches
PART = 192 << 20  # plain files are cut into parts of about this size for the workers
PARALLEL_FROM = 32 << 20  # below this many bytes in all, one process is faster than starting workers
PROGRESS_EVERY = 1_000_000  # lines between progress log lines


@dataclass(frozen=True)
class Part:
    path: Path
    start: int = 0  # byte offsets in a plain file; a gzip file is always whole
    stop: int | None = None

    @property
    def name(self) -> str:
        if self.start == 0 and self.stop is None:
            return self.path.name
        return f"{self.path.name} [bytes {self.start:,}-{self.stop:,}]"


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as probe:
        return probe.read(2) == GZIP_MAGIC


def parts_of(paths: list[Path], part_size: int = PART) -> list[Part]:
    """Each file, the plain ones cut after a newline about every part_size bytes."""
    parts = []
    for path in paths:
        size = path.stat().st_size
        if is_gzip(path) or size <= part_size:
            parts.append(Part(path))
            continue
        with open(path, "rb") as handle:
            start = 0
            while start < size:
                handle.seek(min(start + part_size, size))
                handle.readline()  # to the end of the line the cut falls in
                stop = min(handle.tell(), size)
                parts.append(Part(path, start, stop))
                start = stop
    return parts


def _blocks(part: Part) -> Iterator[bytes]:
    """The raw bytes of a part, decompressed, in pieces of about CHUNK bytes."""
    if is_gzip(part.path):
        yield from _in_thread(part.path)
        return
    with open(part.path, "rb") as handle:
        handle.seek(part.start)
        left = (part.stop if part.stop is not None else part.path.stat().st_size) - part.start
        while left > 0:
            block = handle.read(min(CHUNK, left))
            if not block:
                return
            left -= len(block)
            yield block


def _in_thread(path: Path) -> Iterator[bytes]:
    """gzip decompression in a thread (zlib lets go of the GIL), at most a few chunks ahead."""
    ahead: queue.Queue = queue.Queue(maxsize=3)
    stop = threading.Event()

    def read() -> None:
        try:
            with gzip.open(path, "rb") as handle:
                while not stop.is_set():
                    block = handle.read(CHUNK)
                    ahead.put(block)
                    if not block:
                        return
        except BaseException as exc:  # handed to the reading side
            ahead.put(exc)

    reader = threading.Thread(target=read, name=f"gunzip {path.name}", daemon=True)
    reader.start()
    try:
        while True:
            block = ahead.get()
            if isinstance(block, BaseException):
                raise block
            if not block:
                return
            yield block
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            try:
                ahead.get(timeout=0.1)
            except queue.Empty:
                pass


def line_chunks(part: Part) -> Iterator[bytes]:
    """Whole lines of a part in chunks of about CHUNK bytes (the last line may lack its newline)."""
    rest = b""
    for block in _blocks(part):
        cut = block.rfind(b"\n") + 1
        if not cut:
            rest += block
            continue
        yield rest + block[:cut] if rest else block[:cut]
        rest = block[cut:]
    if rest:
        yield rest


class Progress:
    """A log line every PROGRESS_EVERY lines: lines, lines/s and blocks so far."""

    def __init__(self, name: str, every: int | None = None):
        self.name, self.every = name, every or PROGRESS_EVERY
        self.started = time.perf_counter()
        self.next = self.every

    def update(self, lines: int, blocks: int) -> None:
        if lines >= self.next:
            rate = lines / max(time.perf_counter() - self.started, 1e-9)
            log.info("%s: %s lines, %s lines/s, %s blocks", self.name, f"{lines:,}", f"{rate:,.0f}", f"{blocks:,}")
            self.next = (lines // self.every + 1) * self.every


class TruncatedFile(EOFError):
    """A gzip file that ends before its end-of-stream marker; args[0] is the file's name."""


def count_part(part: Part, matcher: TemplateMatcher) -> tuple[BlockMatrix, int]:
    """(counts, number of lines) of one part; line numbers in errors count from the part's start."""
    counts = BlockMatrix(matcher)
    progress = Progress(part.name)
    number = 1
    try:
        for chunk in line_chunks(part):
            number += counts.add_chunk(part.path.name, number, chunk)
            progress.update(number - 1, counts.blocks)
    except EOFError:
        raise TruncatedFile(part.path.name) from None
    return counts, number - 1


def _count_or_error(part: Part, matcher: TemplateMatcher):
    """count_part(), with a line's error returned: its number must be moved past the earlier parts."""
    try:
        return count_part(part, matcher)
    except LogFormatError as exc:
        return exc, None


_worker_matcher: TemplateMatcher | None = None  # set before the workers are forked


def _count_in_worker(part: Part):
    return _count_or_error(part, _worker_matcher)


def workers_for(parts: list[Part]) -> int:
    size = sum(p.path.stat().st_size if p.stop is None else p.stop - p.start for p in parts)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if size < PARALLEL_FROM or len(parts) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return min(cpus, len(parts))


def count_files(paths: list[Path], matcher: TemplateMatcher, workers: int | None = None,
                part_size: int = PART) -> BlockMatrix:
    """Event counts per block over the files in order, as count_events() would give them."""
    parts = parts_of(paths, part_size)
    workers = workers or workers_for(parts)
    started = time.perf_counter()
    total = BlockMatrix(matcher)
    lines_in_file: dict[Path, int] = {}  # lines so far in each file, to number the lines of later parts
    if workers == 1:
        results = (_count_or_error(part, matcher) for part in parts)
    else:
        global _worker_matcher
        _worker_matcher = matcher  # inherited by the forked workers
        # concurrent.futures, not multiprocessing.Pool: Pool.terminate() with parts still queued
        # (a bad line found early) once hung in its task-handler thread. Here an error cancels the
        # parts not started and waits for the running ones; a dead worker raises, never hangs.
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        futures = [pool.submit(_count_in_worker, part) for part in parts]
        results = (future.result() for future in futures)
    try:
        for part, (counts, lines) in zip(parts, results):
            before = lines_in_file.get(part.path, 0)
            if isinstance(counts, LogFormatError):
                raise counts.moved(before)
            if total.blocks or total.lines or before:
                total.merge(counts, before)
            else:  # the first part: nothing to merge into yet
                total = counts
            lines_in_file[part.path] = before + lines
            if len(parts) > 1:
                log.info("%s counted: %s lines in all so far, %s blocks", part.name, f"{total.lines:,}",
                         f"{total.blocks:,}")
    finally:
        if workers > 1:
            pool.shutdown(wait=True, cancel_futures=True)
    elapsed = time.perf_counter() - started
    log.info("raw logs: %s lines, %s blocks in %.1f s (%s lines/s, %d process%s)", f"{total.lines:,}",
             f"{total.blocks:,}", elapsed, f"{total.lines / max(elapsed, 1e-9):,.0f}", workers,
             "es" if workers > 1 else "")
    return total
