"""Raw HDFS_v1 log lines -> one event-count vector per block (Loghub templates E1..E30).

Streaming: files are read line by line and only the per-block counters are kept, so memory
grows with the number of blocks, not with the size of the logs.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Iterable, Iterator

import numpy as np

TEMPLATE_FILE = "HDFS_templates.csv"
UNMATCHED = "unmatched"
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


@dataclass
class BlockCounts:
    """Event counts per block, in order of each block's first appearance (chronological)."""

    feature_names: list[str]
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    lines: int = 0
    unmatched_lines: int = 0
    unmatched_examples: list[str] = field(default_factory=list)

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
        line = line.rstrip("\r\n")
        if not line:
            continue
        block_ids = _BLOCK_ID.findall(line)
        if not block_ids:
            raise LogFormatError(
                f"{source}, line {number}: no block id (blk_<number>) in {line[:120]!r}; "
                "every HDFS_v1 log line names the block it is about"
            )
        header = _HEADER.match(line)
        column = matcher.column(line[header.end():] if header else line)
        if column == width - 1:
            result.unmatched_lines += 1
            if len(result.unmatched_examples) < 5:
                result.unmatched_examples.append(f"{source}:{number}: {line[:160]}")
        for block_id in dict.fromkeys(block_ids):
            vector = counts.get(block_id)
            if vector is None:
                vector = counts[block_id] = np.zeros(width, dtype=np.int32)
            vector[column] += 1
        result.lines += 1
    return result


def numbered(source: str, text_lines: Iterable[str]) -> Iterator[tuple[str, int, str]]:
    for number, line in enumerate(text_lines, start=1):
        yield source, number, line
