"""The streaming extractor (line shapes, big chunks, parts in worker processes) gives exactly what the
per-line regex path gives: same blocks in the same order, same counts, same errors and examples."""
from __future__ import annotations

import gzip
import logging
import random
import re

import numpy as np
import pytest

from byoc.errors import DataError
from xgboost_hdfs import rawlogs
from xgboost_hdfs.data import Share, _load_raw_logs
from xgboost_hdfs.logparse import BlockMatrix, LogFormatError, TemplateMatcher, count_events, numbered
from xgboost_hdfs.rawlogs import TruncatedFile, count_files


@pytest.fixture(scope="module")
def matcher():
    return TemplateMatcher()


@pytest.fixture(scope="module")
def real_text(shared_data):
    return gzip.decompress((shared_data / "hdfs" / "HDFS.log.gz").read_bytes())


def reference(text: bytes, matcher, source="HDFS.log"):
    lines = text.decode("utf-8", errors="replace").splitlines(keepends=True)
    return count_events(numbered(source, lines), matcher)


def assert_same(fast: BlockMatrix, slow) -> None:
    assert fast.block_ids() == list(slow.counts)
    assert np.array_equal(fast.matrix(), slow.matrix())
    assert (fast.lines, fast.unmatched_lines, fast.unmatched_examples) == \
        (slow.lines, slow.unmatched_lines, slow.unmatched_examples)


def test_all_real_lines_give_the_regex_paths_matrix(real_text, matcher, tmp_path, monkeypatch, caplog):
    (tmp_path / "HDFS.log").write_bytes(real_text)
    monkeypatch.setattr(rawlogs, "PROGRESS_EVERY", 50_000)
    with caplog.at_level(logging.INFO, logger=rawlogs.__name__):
        fast = count_files([tmp_path / "HDFS.log"], matcher, workers=1)
    progress = re.findall(r"HDFS.log: ([\d,]+) lines, [\d,]+ lines/s, [\d,]+ blocks", caplog.text)
    assert len(progress) == 3  # one per 50,000 lines, at the end of the chunk that passes the mark
    slow = reference(real_text, matcher)
    assert fast.lines == 165_563 and fast.blocks == 8_050
    assert_same(fast, slow)


def test_parts_in_worker_processes_and_gzip_files_merge_to_the_same_matrix(real_text, matcher, tmp_path,
                                                                           monkeypatch, caplog):
    lines = real_text.splitlines(keepends=True)
    third = len(lines) // 3
    (tmp_path / "a.log").write_bytes(b"".join(lines[:third]))
    (tmp_path / "b.log.gz").write_bytes(gzip.compress(b"".join(lines[third:2 * third])))
    (tmp_path / "c.log").write_bytes(b"".join(lines[2 * third:]))
    monkeypatch.setattr(rawlogs, "CHUNK", 1 << 20)
    monkeypatch.setattr(rawlogs, "PROGRESS_EVERY", 20_000)
    with caplog.at_level(logging.INFO, logger=rawlogs.__name__):
        fast = count_files([tmp_path / n for n in ("a.log", "b.log.gz", "c.log")], matcher, workers=2,
                           part_size=3 << 20)
    assert_same(fast, reference(real_text, matcher))
    assert "a.log [bytes 0-3,145,750] counted: 22,501 lines in all so far" in caplog.text
    assert "165,563 lines, 8,050 blocks" in caplog.text and "2 processes" in caplog.text


def _odd_lines(rng: random.Random, matcher) -> list[str]:
    words = [w for _, t in matcher.templates for w in t.replace("<*>", " ").split()]
    words += ["blk_1", "blk_-22", "blk_333", "blk_1", "blk_", "10.250.1.2:50010", "081109", "é", "\x00"]
    lines = []
    for _ in range(3000):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        header = rng.choice(["081109 203530 147 INFO dfs.DataNode$DataXceiver: ", "08110 203530 1 WARN x: ", ""])
        lines.append(header + body + " blk_" + str(rng.randint(-50, 50)))
    return lines


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_odd_lines_give_the_same_answers(matcher, tmp_path, newline):
    """Random template words, headers that do not quite match, several or repeated block ids on a
    line, non-ASCII and NUL bytes, empty lines, CRLF: chunk by chunk on both sides of the fast path."""
    rng = random.Random(7)
    lines = _odd_lines(rng, matcher)
    lines[100:100] = ["", "", ""]
    lines[2000] += " blk_" + "9" * 70  # longer than the fast path's slots: its chunk takes the line-by-line path
    text = newline.join(lines).encode()  # no newline after the last line
    (tmp_path / "odd.log").write_bytes(text)
    fast = count_files([tmp_path / "odd.log"], matcher, workers=1)
    assert_same(fast, reference(text, matcher, "odd.log"))
    assert fast.unmatched_lines > 1000 and fast.blocks > 100


def test_shapes_alone_decide_on_ascii_chunks(matcher):
    lines = [line for line in _odd_lines(random.Random(3), matcher) if line.isascii() and "\x00" not in line]
    text = "\n".join(lines).encode() + b"\n"
    fast = BlockMatrix(matcher)
    assert fast.add_chunk("x", 1, text) == len(lines)
    assert_same(fast, reference(text, matcher, "x"))
    long_id = text + b"081109 203530 147 INFO x: Served block blk_" + b"9" * 70 + b" to /10.0.0.1\n"
    fast = BlockMatrix(matcher)
    assert fast.add_chunk("x", 1, long_id) == len(lines) + 1  # through the line-by-line path
    assert_same(fast, reference(long_id, matcher, "x"))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_line_without_block_id_names_its_file_and_real_line(real_text, matcher, tmp_path, workers):
    lines = real_text.splitlines(keepends=True)[:60_000]
    lines[45_678] = b"081109 203530 147 INFO dfs.DataNode: hello\n"
    (tmp_path / "HDFS.log").write_bytes(b"".join(lines))
    with pytest.raises(LogFormatError) as caught:
        count_files([tmp_path / "HDFS.log"], matcher, workers=workers, part_size=1 << 20)
    with pytest.raises(LogFormatError) as expected:
        reference(b"".join(lines), matcher)
    assert str(caught.value) == str(expected.value)
    assert str(caught.value).startswith("HDFS.log, line 45679: no block id")


def test_unmatched_examples_keep_their_line_numbers_across_parts(real_text, matcher, tmp_path):
    lines = real_text.splitlines(keepends=True)[:60_000]
    for number in (50_001, 50_002):
        lines[number - 1] = f"081109 203530 147 INFO dfs.DataNode: nobody templated blk_{number}\n".encode()
    (tmp_path / "HDFS.log").write_bytes(b"".join(lines))
    fast = count_files([tmp_path / "HDFS.log"], matcher, workers=2, part_size=1 << 20)
    assert fast.unmatched_examples[0].startswith("HDFS.log:50001: ")
    assert_same(fast, reference(b"".join(lines), matcher))


def test_a_truncated_gzip_file_is_named(real_text, matcher, tmp_path):
    packed = gzip.compress(real_text[:3_000_000])
    (tmp_path / "cut.log.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(TruncatedFile, match="cut.log.gz"):
        count_files([tmp_path / "cut.log.gz"], matcher)
    (tmp_path / "anomaly_label.csv").write_text("BlockId,Label\nblk_1,Normal\n")
    with pytest.raises(DataError, match=r"^cut.log.gz is a truncated gzip file; check it with .gzip -t cut.log.gz., then compress and upload it again$"):
        _load_raw_logs("train", [tmp_path / "anomaly_label.csv", tmp_path / "cut.log.gz"], [], matcher, Share())
