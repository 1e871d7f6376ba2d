"""Raw HDFS log lines of any length are classified in linear time (the fuzz test's finding: a crafted
18 KB line made the template regex backtrack for 47 s inside one C call, out of reach of
SAGEMAKER_MODEL_SERVER_TIMEOUT), with the same answers as the plain templates."""
from __future__ import annotations

import gzip
import random
import re
import time

import pytest

from support import SHARED_DATA
from xgboost_hdfs.logparse import _HEADER, LONG_MESSAGE, TemplateMatcher


@pytest.fixture(scope="module")
def matcher():
    return TemplateMatcher()


def _plain_and_linear(matcher, message):
    plain = matcher._regex.match(message)
    linear = matcher._linear_regex.match(message)
    return plain and plain.lastgroup, linear and linear.lastgroup


def test_linear_patterns_agree_with_the_templates_on_real_lines(matcher, shared_data):
    with gzip.open(SHARED_DATA / "hdfs" / "HDFS.log.gz", "rt") as logs:
        lines = [next(logs).rstrip("\n") for _ in range(30000)]
    for line in lines:
        header = _HEADER.match(line)
        message = line[header.end():] if header else line
        plain, linear = _plain_and_linear(matcher, message)
        assert plain == linear and plain is not None, line


def test_linear_patterns_agree_on_random_messages(matcher):
    rng = random.Random(5)
    words = [w for _, t in matcher.templates for w in t.replace("<*>", " ").split()] + ["blk_1", ":", "to", "x"]
    for _ in range(20000):
        message = " ".join(rng.choice(words) for _ in range(rng.randint(0, 16)))
        plain, linear = _plain_and_linear(matcher, message)
        assert plain == linear, message


@pytest.mark.parametrize("unit", ["Changing block file offset of block from to ",
                                  "BLOCK* NameSystem addStoredBlock: Redundant addStoredBlock request received for on "])
def test_crafted_long_lines_take_milliseconds(matcher, unit):
    message = "blk_1 " + unit * 2000  # 90-170 KB; the plain patterns would take days
    start = time.perf_counter()
    assert matcher.column(message) == len(matcher.event_ids)  # unmatched
    assert time.perf_counter() - start < 0.5


def test_long_real_line_keeps_its_template(matcher):
    blocks = " ".join(f"blk_{i}" for i in range(200))
    message = f"BLOCK* ask 10.250.11.85:50010 to delete  {blocks}"
    assert len(message) > LONG_MESSAGE
    assert matcher.event_ids[matcher.column(message)] == "E30"
    assert re.fullmatch(r"E\d+", matcher.event_ids[matcher.column(message[:200])])
