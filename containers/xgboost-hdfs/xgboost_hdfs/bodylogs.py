"""Raw HDFS log lines in a request body -> its blocks and their event counts, in little memory.

A 6 MB body can name 580,000 distinct blocks (lines like "blk_123"). A Python object per block
(count_events' str id and numpy vector, then a dict record per answer) took 60x the body. Here the
body is read a piece at a time and whatever lives per block is a numpy array: ids as fixed-width
bytes, counts as sparse (block, event) cells; dense float32 rows are made a batch at a time for
the model. Lines are split on "\\n" only ("\\r\\n" counts as "\\n") and every line gets
count_events()' answer: through the shapes of logparse's fast path where they decide, else its
per-line logic (line_event).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .logparse import (DIGIT_MARK, LONGEST_ID, TemplateMatcher, _EMPTY, _MAX_IDS, _OTHER, _SHAPE, _ShapeCodes,
                       id_spans, line_event, shapes_decide)

SOURCE = "body"  # how errors name the request body
PIECE = 1 << 20  # bytes of body read at once: bounds the per-line objects alive together
SHAPES_KEPT = 20_000  # line shapes cached between requests (real logs have about 2,000)
BATCH = 32768  # blocks scored at once: a 4 MB dense matrix (XGBoost is slower on smaller calls)


class BodyBlocks:
    """The blocks of a body in order of first appearance, with their event counts."""

    def __init__(self, block_ids: np.ndarray, cells: np.ndarray, counts: np.ndarray, width: int):
        self.block_ids = block_ids  # fixed-width bytes (numpy "S"), ASCII or UTF-8
        self.cells, self.counts, self.width = cells, counts, width  # sorted row * width + column, and its count

    def __len__(self) -> int:
        return len(self.block_ids)

    def batches(self, size: int = BATCH) -> Iterator[np.ndarray]:
        """Dense float32 event-count rows, `size` blocks at a time, in block order."""
        for start in range(0, len(self), size):
            rows = min(size, len(self) - start)
            low, high = np.searchsorted(self.cells, [start * self.width, (start + rows) * self.width])
            matrix = np.zeros((rows, self.width), dtype=np.float32)
            matrix.reshape(-1)[self.cells[low:high] - start * self.width] = self.counts[low:high]
            yield matrix

    def matrix(self) -> np.ndarray:
        return np.concatenate(list(self.batches())) if len(self) else np.zeros((0, self.width), np.float32)


class BodyCounter:
    """Counts bodies for one matcher; keeps only the shape cache between requests."""

    def __init__(self, matcher: TemplateMatcher):
        self.matcher = matcher
        self.width = len(matcher.feature_names)
        self.shapes = _ShapeCodes(matcher) if shapes_decide(matcher) else None

    def __call__(self, body: bytes) -> BodyBlocks:
        if len(self.shapes or ()) > SHAPES_KEPT:  # odd bodies must not grow the worker for good
            self.shapes = _ShapeCodes(self.matcher)
        if b"\r" in body:
            body = body.replace(b"\r\n", b"\n")
        ids, columns = [], []
        number = 1  # of the piece's first line in the body
        for piece in _pieces(body):
            piece_ids, piece_columns = self._fast(piece, number) or self._reference(piece, number)
            ids.append(piece_ids)
            columns.append(piece_columns)
            number += piece.count(b"\n")
        ids, columns = np.concatenate(ids), np.concatenate(columns)  # the pieces' arrays are freed
        return self._blocks(ids, columns)

    def _fast(self, piece: bytes, first_number: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(id of every occurrence, its line's column) through the line shapes; None where they do not decide."""
        if self.shapes is None or not piece.isascii() or b"\r" in piece or DIGIT_MARK in piece:
            return None
        self.shapes.limit()
        shapes = piece.translate(_SHAPE).split(b"\n")
        if piece.endswith(b"\n"):
            shapes.pop()
        codes = np.fromiter(map(self.shapes.__getitem__, shapes), dtype=np.int64, count=len(shapes))
        del shapes
        if codes.min(initial=0) == _OTHER:
            return None
        present = codes != _EMPTY
        codes[~present] = 0
        ids_per_line = (codes >> 8) & _MAX_IDS
        orphans = np.flatnonzero(present & (ids_per_line == 0))
        if orphans.size:  # the reference path raises the error, naming the line
            return None
        data = np.frombuffer(piece + b"\0" * LONGEST_ID, dtype=np.uint8)  # room for the last id's slot
        at, size = id_spans(data[: len(piece)], codes, ids_per_line, self.shapes)
        width = int(size.max(initial=1))
        gathered = np.lib.stride_tricks.sliding_window_view(data, width)[at]
        gathered[np.arange(width) >= size[:, None]] = 0  # NUL padding: numpy's "S" ignores it
        ids = gathered.view(f"S{width}").ravel()
        columns = np.repeat((codes & 0xFF).astype(np.uint8), ids_per_line)
        several = np.flatnonzero(np.repeat(ids_per_line > 1, ids_per_line))
        if several.size:  # a block named twice on one line counts once
            line_of_id = np.repeat(np.arange(len(codes), dtype=np.int64), ids_per_line)[several]
            _, block = np.unique(ids[several], return_inverse=True)
            _, first = np.unique((line_of_id << 32) | block.ravel(), return_index=True)
            keep = np.ones(len(ids), dtype=bool)
            keep[several] = False
            keep[several[first]] = True
            ids, columns = ids[keep], columns[keep]
        return ids, columns

    def _reference(self, piece: bytes, first_number: int) -> tuple[np.ndarray, np.ndarray]:
        lines = piece.decode("utf-8", errors="replace").split("\n")
        if lines[-1] == "":
            lines.pop()
        ids, columns = [], []
        for number, line in enumerate(lines, start=first_number):
            event = line_event(SOURCE, number, line, self.matcher)
            if event is not None:
                ids += [b.encode() for b in event[1]]
                columns += [event[0]] * len(event[1])
        return np.array(ids, dtype=bytes) if ids else np.zeros(0, "S1"), np.array(columns, dtype=np.uint8)

    def _blocks(self, ids: np.ndarray, columns: np.ndarray) -> BodyBlocks:
        """Rows numbered by first appearance, counts as sorted sparse cells (int32 where they fit)."""
        if not len(ids):
            return BodyBlocks(ids, np.zeros(0, np.int64), np.zeros(0, np.float32), self.width)
        distinct, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        del ids
        order = np.argsort(first, kind="stable")
        del first
        index = np.int32 if len(order) * self.width < 2 ** 31 else np.int64
        row_of = np.empty(len(order), dtype=index)
        row_of[order] = np.arange(len(order), dtype=index)
        cells = row_of[inverse.ravel()]
        del inverse, row_of
        cells *= self.width
        cells += columns
        cells.sort()
        new = np.empty(len(cells), dtype=bool)
        new[0] = True
        np.not_equal(cells[1:], cells[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        counts = np.diff(starts, append=len(cells)).astype(np.float32)
        return BodyBlocks(distinct[order], cells[starts], counts, self.width)


def _pieces(body: bytes) -> Iterator[bytes]:
    """The body in pieces of about PIECE bytes, each ending at a line end (the last may not)."""
    start = 0
    while start < len(body):
        end = body.find(b"\n", start + PIECE)
        end = len(body) if end < 0 else end + 1
        yield body[start:end]
        start = end
