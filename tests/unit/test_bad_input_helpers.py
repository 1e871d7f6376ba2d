"""Core helpers behind the bad-input messages: one-line failures, damaged gzip, memory estimates."""
import gzip

import pytest

from byoc import memory
from byoc.errors import DataError
from byoc.training import TrainingEnv, check_gzip, write_failure

from support import SHARED_DATA


def test_failure_file_is_one_line_whatever_the_message(tmp_path):
    env = TrainingEnv(root=tmp_path)
    write_failure(env, "Error tokenizing data. C error: Expected 5 fields in line 7, saw 7\n ; fix it\n")
    assert env.failure_file.read_text() == "Error tokenizing data. C error: Expected 5 fields in line 7, saw 7 ; fix it\n"


def test_gzip_trailer_gives_the_size_once_read(tmp_path):
    logs = SHARED_DATA / "hdfs" / "HDFS.log.gz"
    with gzip.open(logs, "rb") as stream:
        expected = len(stream.read())
    assert memory.uncompressed_size(logs) == expected
    plain = tmp_path / "a.csv"
    plain.write_text("1,2\n")
    assert memory.uncompressed_size(plain) == 4


def test_damaged_gzip_is_named_and_a_sound_one_passes(tmp_path):
    logs = SHARED_DATA / "hdfs" / "HDFS.log.gz"
    check_gzip(logs)
    data = bytearray(logs.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    damaged = tmp_path / "HDFS.log.gz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"HDFS.log.gz is a damaged .*gzip -t HDFS.log.gz"):
        check_gzip(damaged)
    damaged.write_bytes(logs.read_bytes()[:100000])
    with pytest.raises(DataError, match="truncated gzip"):
        check_gzip(damaged)


def test_require_refuses_more_than_the_machine_has():
    memory.require(1 << 20, "a small load")
    with pytest.raises(DataError, match=r"a huge load needs about \d+ MiB of memory .* more memory"):
        memory.require(1 << 60, "a huge load")


def test_resident_and_peak_memory_are_this_process_s(caplog):
    import logging

    assert 0 < memory.resident() <= memory.peak()
    with caplog.at_level(logging.INFO, logger="byoc.memory"):
        memory.require(3 << 20, "a small load")
    assert "a small load needs about 3 MiB on top of the " in caplog.text and "MiB free" in caplog.text
