"""Raw HDFS_v1 log lines -> one event-count vector per block (Loghub templates E1..E30).

count_events() is the reference: one regex match per line (serving uses it on request bodies).
BlockMatrix gives exactly its answers ten times faster, chunk by chunk (training; see below and
rawlogs.py). Both keep only per-block counters: memory grows with the blocks, not with the logs.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Iterable, Iterator

import numpy as np

TEMPLATE_FILE = "HDFS_templates.csv"
UNMATCHED = "unmatched"
EXAMPLES = 5  # unmatched lines quoted in the training report
_BLOCK_ID = re.compile(r"blk_-?\d+")
# "081109 203530 147 INFO dfs.DataNode$DataXceiver: Receiving block ..." -> the message after "component: "
_HEADER = re.compile(r"\d{6} \d{6} \d+ [A-Z]+ [^ ]+: ")


def load_templates() -> list[tuple[str, str]]:
    """The (event id, template) pairs shipped with the image, in file order."""
    text = resources.files(__package__).joinpath(TEMPLATE_FILE).read_text()
    return [(row["EventId"], row["EventTemplate"]) for row in csv.DictReader(text.splitlines())]


# Real HDFS_v1 lines are under 250 characters. On long lines the plain patterns' ".*" runs backtrack
# polynomially (a crafted 18 KB line took 47 s, inside one C call that no timeout can interrupt), so
# messages longer than this use linear-time patterns that give the same answer (slower on short lines).
LONG_MESSAGE = 1024


def _template_regex(template: str, linear: bool = False) -> str:
    parts = [re.escape(part) for part in template.split("<*>")]
    if not linear or len(parts) < 3:
        return ".*".join(parts)
    # Each inner literal at its first occurrence after the previous one, never revisited (atomic
    # group): a match exists exactly when one exists with the plain pattern, found in linear time.
    head, *inner, tail = parts
    return head + "".join(f"(?>.*?{part})" for part in inner) + ".*" + tail


class TemplateMatcher:
    """Finds the event id of a log message with one combined, anchored regular expression."""

    def __init__(self, templates: list[tuple[str, str]] | None = None):
        self.templates = templates or load_templates()
        self.event_ids = [event_id for event_id, _ in self.templates]
        self.feature_names = self.event_ids + [UNMATCHED]
        # Templates are tried in order; HDFS_v1 templates are mutually exclusive on real data.
        pattern = "|".join(f"(?P<{eid}>{_template_regex(t)})" for eid, t in self.templates)
        self._regex = re.compile(f"(?:{pattern})\\Z", re.DOTALL)
        linear = "|".join(f"(?P<{eid}>{_template_regex(t, linear=True)})" for eid, t in self.templates)
        self._linear_regex = re.compile(f"(?:{linear})\\Z", re.DOTALL)
        self._column = {eid: i for i, eid in enumerate(self.event_ids)}

    def column(self, message: str) -> int:
        """Feature column for a message: its template's index, or the 'unmatched' column."""
        match = (self._regex if len(message) <= LONG_MESSAGE else self._linear_regex).match(message)
        return self._column[match.lastgroup] if match else len(self.event_ids)


class LogFormatError(ValueError):
    """A log line that cannot be attributed to a block; names where it is."""

    def __init__(self, source: str, number: int, line: str):
        super().__init__(
            f"{source}, line {number}: no block id (blk_<number>) in {line[:120]!r}; "
            "every HDFS_v1 log line names the block it is about"
        )
        self.source, self.number, self.line = source, number, line

    def __reduce__(self):  # picklable, for worker processes
        return type(self), (self.source, self.number, self.line)

    def moved(self, lines_before: int) -> "LogFormatError":
        """The same error for a part of a file that starts after `lines_before` lines."""
        return type(self)(self.source, self.number + lines_before, self.line)


@dataclass
class BlockCounts:
    """Event counts per block, in order of each block's first appearance (chronological)."""

    feature_names: list[str]
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    lines: int = 0
    unmatched_lines: int = 0
    examples: list[tuple[str, int, str]] = field(default_factory=list)  # first unmatched lines: (source, number, text)

    @property
    def unmatched_examples(self) -> list[str]:
        return [f"{source}:{number}: {text[:160]}" for source, number, text in self.examples]

    def matrix(self, block_ids: Iterable[str] | None = None) -> np.ndarray:
        ids = list(self.counts) if block_ids is None else list(block_ids)
        if not ids:
            return np.zeros((0, len(self.feature_names)), dtype=np.float32)
        return np.stack([self.counts[b] for b in ids]).astype(np.float32)


def count_events(
    lines: Iterable[tuple[str, int, str]],
    matcher: TemplateMatcher,
    into: BlockCounts | None = None,
) -> BlockCounts:
    """Count events per block from (source name, line number, text) triples.

    A line that names several blocks counts once for each of them. Lines that match no template
    go to the 'unmatched' column and are reported; a line with no block id is an error because
    it cannot be attributed to any block.
    """
    result = into or BlockCounts(feature_names=matcher.feature_names)
    width = len(result.feature_names)
    counts = result.counts
    for source, number, line in lines:
        event = line_event(source, number, line, matcher)
        if event is None:
            continue
        column, block_ids = event
        if column == width - 1:
            result.unmatched_lines += 1
            if len(result.examples) < EXAMPLES:
                result.examples.append((source, number, line.rstrip("\r\n")))
        for block_id in block_ids:
            vector = counts.get(block_id)
            if vector is None:
                vector = counts[block_id] = np.zeros(width, dtype=np.int32)
            vector[column] += 1
        result.lines += 1
    return result


def line_event(source: str, number: int, line: str, matcher: TemplateMatcher) -> tuple[int, list[str]] | None:
    """(feature column, distinct block ids) of one log line; None for an empty line. A line that
    names no block is an error: it cannot be attributed to any."""
    line = line.rstrip("\r\n")
    if not line:
        return None
    block_ids = _BLOCK_ID.findall(line)
    if not block_ids:
        raise LogFormatError(source, number, line)
    header = _HEADER.match(line)
    return matcher.column(line[header.end():] if header else line), list(dict.fromkeys(block_ids))


def numbered(source: str, text_lines: Iterable[str]) -> Iterator[tuple[str, int, str]]:
    for number, line in enumerate(text_lines, start=1):
        yield source, number, line


# Streaming extraction for training ------------------------------------------------------------
#
# count_events() above costs a regex match per line (~120k lines/s). The full HDFS_v1 set has 11M
# lines but only a few thousand distinct line *shapes* (the line with every digit replaced by NUL).
# The shape decides the answer: no template literal holds a digit, and the header pattern only asks
# whether a character is a digit, so two lines of one shape have the same column and the same number
# of block ids at the same places. Each new shape goes once through the reference logic; the rest
# is C-level work over big chunks: bytes.translate, split, dict lookups through map(), one findall
# for the block ids and np.add.at for the counters. Chunks that are not plain ASCII (or hold NUL or
# '\r') take the reference path line by line, so every line gets exactly count_events()'s answer.

DIGIT_MARK = b"\x00"
_SHAPE = bytes.maketrans(b"0123456789", DIGIT_MARK * 10)
_EMPTY = -1  # shape code of an empty line
_OTHER = -2  # shape code of a line the fast path leaves to the reference path (huge ids or lines)
SHAPE_CACHE_LIMIT = 200_000  # distinct shapes kept (real data: ~2k); past it the cache starts over
LONGEST_ID = 64  # bytes; block ids are gathered into fixed-width slots
# A shape's code packs: column (bits 0-7), number of block ids (8-31), and for a line with one id its
# length (32-39) and start (40-62); for a line with several, the index of its spans in _ShapeCodes.
_MAX_IDS, _MAX_START = (1 << 24) - 1, (1 << 23) - 1


class _ShapeCodes(dict):
    """shape -> code (see above), computed on first sight with the reference logic."""

    def __init__(self, matcher: TemplateMatcher):
        super().__init__()
        self.matcher = matcher
        # (start, length) of every id of the shapes with several ids, one after the other; a shape's
        # code holds where its own start in these lists.
        self.span_starts: list[int] = []
        self.span_lengths: list[int] = []
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def __missing__(self, shape: bytes) -> int:
        line = shape.replace(DIGIT_MARK, b"0").decode("ascii")  # a line of this very shape
        if not line:
            code = _EMPTY
        else:
            header = _HEADER.match(line)
            code = self.matcher.column(line[header.end():] if header else line)
            spans = [(m.start(), m.end() - m.start()) for m in _BLOCK_ID.finditer(line)]
            if len(spans) > _MAX_IDS or any(n > LONGEST_ID or at > _MAX_START for at, n in spans):
                code = _OTHER
            elif len(spans) == 1:
                code |= 1 << 8 | spans[0][1] << 32 | spans[0][0] << 40
            elif spans:
                code |= len(spans) << 8 | len(self.span_starts) << 40
                self.span_starts += [at for at, _ in spans]
                self.span_lengths += [n for _, n in spans]
                self._arrays = None
        self[shape] = code
        return code

    def spans(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is None:
            self._arrays = np.array(self.span_starts, dtype=np.int64), np.array(self.span_lengths, dtype=np.int64)
        return self._arrays

    def limit(self) -> None:
        """Start over when too many shapes were seen (called between chunks, never inside one)."""
        if len(self) >= SHAPE_CACHE_LIMIT or len(self.span_starts) >= 4 * SHAPE_CACHE_LIMIT:
            self.clear()
            self.span_starts, self.span_lengths, self._arrays = [], [], None


def id_spans(data: np.ndarray, codes: np.ndarray, ids_per_line: np.ndarray,
             shape_codes: _ShapeCodes) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) in `data` (a chunk's bytes) of every block id of its lines, in order, from
    the lines' shape codes."""
    line_start = np.zeros(len(codes), dtype=np.int64)
    line_start[1:] = np.flatnonzero(data == 10)[: len(codes) - 1] + 1
    total = int(ids_per_line.sum())
    lengths = (codes >> 32) & 0xFF
    single = lengths > 0
    at, size = np.empty(total, dtype=np.int64), np.empty(total, dtype=np.int64)
    slots = np.cumsum(ids_per_line)[single] - 1
    at[slots] = line_start[single] + (codes[single] >> 40)
    size[slots] = lengths[single]
    several = ~single & (ids_per_line > 0)
    if several.any():
        span_starts, span_lengths = shape_codes.spans()
        count = ids_per_line[several]
        first = np.cumsum(count) - count  # of each line's ids among these
        spans = np.repeat(codes[several] >> 40, count) + np.arange(int(count.sum())) - np.repeat(first, count)
        slots = np.flatnonzero(np.repeat(several, ids_per_line))
        at[slots] = np.repeat(line_start[several], count) + span_starts[spans]
        size[slots] = span_lengths[spans]
    return at, size


class _RowIndex(dict):
    """block id -> row, numbered in order of first appearance."""

    def __missing__(self, block_id: bytes) -> int:
        row = self[block_id] = len(self)
        return row


def shapes_decide(matcher: TemplateMatcher) -> bool:
    """True when a line's shape decides its template (no template literal holds a digit or the mark)."""
    literals = "".join(t.replace("<*>", "") for _, t in matcher.templates)
    return not any(c.isdigit() or c == DIGIT_MARK.decode() for c in literals)


class BlockMatrix:
    """Event counts per block (rows in order of first appearance), filled chunk by chunk.

    Memory: one int32 row per block and the block ids; the log text itself is never kept.
    """

    def __init__(self, matcher: TemplateMatcher):
        self.matcher = matcher
        self.feature_names = list(matcher.feature_names)
        self.width = len(self.feature_names)
        self.lines = 0
        self.unmatched_lines = 0
        self.examples: list[tuple[str, int, str]] = []  # as in BlockCounts
        self._rows = _RowIndex()
        self._counts = np.zeros((1024, self.width), dtype=np.int32)
        self._codes = _ShapeCodes(matcher) if shapes_decide(matcher) else None

    def __getstate__(self):  # what a worker process sends back: no matcher, no shape cache
        state = dict(self.__dict__, matcher=None, _codes=None)
        state["_counts"] = self._counts[: len(self._rows)]
        return state

    @property
    def blocks(self) -> int:
        return len(self._rows)

    unmatched_examples = BlockCounts.unmatched_examples

    def block_ids(self) -> list[str]:
        return [b.decode() for b in self._rows]

    def matrix(self, block_ids: Iterable[str] | None = None) -> np.ndarray:
        counts = self._counts[: len(self._rows)]
        if block_ids is None:
            return counts.astype(np.float32)
        rows = np.fromiter(map(self._rows.__getitem__, (b.encode() for b in block_ids)), dtype=np.int64)
        return counts[rows].astype(np.float32)

    def merge(self, part: "BlockMatrix", lines_before: int = 0) -> None:
        """Add the counts of a later part of the logs; its line numbers start after `lines_before`."""
        rows = np.fromiter(map(self._rows.__getitem__, part._rows), dtype=np.int64, count=len(part._rows))
        self._grow()
        self._counts[rows] += part._counts[: len(rows)]
        self.lines += part.lines
        self.unmatched_lines += part.unmatched_lines
        room = EXAMPLES - len(self.examples)
        self.examples += [(src, number + lines_before, text) for src, number, text in part.examples[:room]]

    def add_chunk(self, source: str, first_number: int, chunk: bytes) -> int:
        """Count the lines of `chunk` (whole lines; the last may lack its newline); the first is
        line `first_number` of `source`. Returns the number of lines in the chunk."""
        if self._codes is None or not chunk.isascii() or b"\r" in chunk or DIGIT_MARK in chunk:
            return self._add_lines(source, first_number, chunk)
        self._codes.limit()
        shapes = chunk.translate(_SHAPE).split(b"\n")
        if chunk.endswith(b"\n"):
            shapes.pop()
        codes = np.fromiter(map(self._codes.__getitem__, shapes), dtype=np.int64, count=len(shapes))
        if codes.min(initial=0) == _OTHER:
            return self._add_lines(source, first_number, chunk)
        present = codes != _EMPTY
        codes[~present] = 0
        columns = codes & 0xFF
        ids_per_line = (codes >> 8) & _MAX_IDS
        if not ids_per_line.all():
            orphans = np.flatnonzero(present & (ids_per_line == 0))
            if orphans.size:
                raise LogFormatError(source, first_number + int(orphans[0]),
                                     chunk.split(b"\n")[orphans[0]].decode())
        unmatched = np.flatnonzero(present & (columns == self.width - 1))
        if unmatched.size:
            self.unmatched_lines += int(unmatched.size)
            room = EXAMPLES - len(self.examples)
            if room > 0:
                lines = chunk.split(b"\n")
                self.examples += [(source, first_number + i, lines[i].decode()) for i in unmatched[:room].tolist()]
        block_ids = self._block_ids(chunk, codes, ids_per_line)  # in line order
        rows = np.fromiter(map(self._rows.__getitem__, block_ids), dtype=np.int64, count=len(block_ids))
        cells = rows * self.width + np.repeat(columns, ids_per_line)
        if ids_per_line.max(initial=0) > 1:  # a block named twice on one line counts once
            several = np.flatnonzero(np.repeat(ids_per_line > 1, ids_per_line))
            line_of_id = np.repeat(np.arange(len(codes), dtype=np.int64), ids_per_line)[several]
            _, first = np.unique((line_of_id << 32) | rows[several], return_index=True)
            if first.size < several.size:
                keep = np.ones(len(cells), dtype=bool)
                keep[several] = False
                keep[several[first]] = True
                cells = cells[keep]
        self._grow()
        cells, times = np.unique(cells, return_counts=True)  # sorted, so faster than np.add.at
        self._counts.reshape(-1)[cells] += times.astype(np.int32)
        self.lines += int(present.sum())
        return len(codes)

    def _block_ids(self, chunk: bytes, codes: np.ndarray, ids_per_line: np.ndarray) -> list[bytes]:
        """Every block id of the chunk, in order, cut out where the shapes say they are: one gather
        into fixed-width slots instead of a regex scan over every byte."""
        data = np.frombuffer(chunk, dtype=np.uint8)
        if not ids_per_line.any():
            return []
        at, size = id_spans(data, codes, ids_per_line, self._codes)
        width = int(size.max())
        safe = np.minimum(at, len(data) - width)
        gathered = np.lib.stride_tricks.sliding_window_view(data, width)[safe]
        gathered[np.arange(width) >= size[:, None]] = 0  # NUL padding, dropped by tolist()
        ids = gathered.view(f"S{width}").ravel().tolist()
        for i in np.flatnonzero(safe != at).tolist():  # the last few ids, nearer the end than width
            ids[i] = chunk[at[i]: at[i] + size[i]]
        return ids

    def _grow(self) -> None:
        if len(self._rows) > len(self._counts):
            bigger = np.zeros((max(len(self._rows), 2 * len(self._counts)), self.width), dtype=np.int32)
            bigger[: len(self._counts)] = self._counts
            self._counts = bigger

    def _add_lines(self, source: str, first_number: int, chunk: bytes) -> int:
        """The reference path, line by line, for chunks the fast path does not take."""
        text = io.StringIO(chunk.decode("utf-8", errors="replace"), newline="")
        numbered_lines = [(source, first_number + k, line) for k, line in enumerate(text)]
        part = count_events(numbered_lines, self.matcher)
        rows = np.fromiter((self._rows[b.encode()] for b in part.counts), dtype=np.int64, count=len(part.counts))
        self._grow()
        if part.counts:
            self._counts[rows] += np.stack(list(part.counts.values()))
        self.lines += part.lines
        self.unmatched_lines += part.unmatched_lines
        self.examples += part.examples[: EXAMPLES - len(self.examples)]
        return len(numbered_lines)
