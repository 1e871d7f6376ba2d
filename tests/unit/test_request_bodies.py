"""Request bodies the review found mishandled, in-process with the images' real runtimes and real data:
line ends other than "\\n" (500 from a body of "\\x1c"), zero rows reaching the model, npy answers for
raw logs, the memory and size of raw-log answers, and float32 for scikit-learn."""
from __future__ import annotations

import gzip
import io
import json
import re

import numpy as np
import pytest

import opt_ml
from byoc import codecs
from byoc.errors import RequestError
from byoc.runtime import ModelRuntime
from byoc.training import run
from xgboost_hdfs import Runtime, train
from xgboost_hdfs.bodylogs import BodyCounter
from xgboost_hdfs.logparse import LogFormatError, TemplateMatcher, count_events, numbered

# What str.splitlines() takes as line ends and bytes.strip() keeps (the review's 500s), and U+2029.
ODD_BREAKS = ["\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x0b", "\x0c"]


@pytest.fixture(scope="module")
def log_lines(shared_data) -> list[str]:
    with gzip.open(shared_data / "hdfs" / "HDFS.log.gz", "rt") as logs:
        return [next(logs) for _ in range(20000)]


@pytest.fixture(scope="module")
def raw_runtime(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("raw-model")
    opt_ml.hdfs_raw(root)
    assert run(train, root) == 0
    return Runtime(root / "model")


class _Counting(ModelRuntime):
    """A runtime whose model records the rows it is called with."""
    def load(self):
        self.calls = []

    def predict(self, data):
        self.calls.append(len(data))
        return [{"score": 0.0}] * len(data)


# Line ends ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("char", ODD_BREAKS)
def test_bodies_split_on_newline_only(char):
    assert codecs.body_lines(f"1,2{char}3\r\n4,5\n".encode()) == [f"1,2{char}3", "4,5"]
    with pytest.raises(RequestError, match="row 1, column 2"):  # one row, its cell named
        codecs.decode(f"1,2{char}3\n".encode(), "text/csv")
    with pytest.raises(RequestError, match="line 1: unreadable JSON"):
        codecs.decode(f"[1, 2]{char}[3, 4]\n".encode(), "application/jsonlines")


@pytest.mark.parametrize("content_type", ["text/csv", "application/jsonlines", "text/libsvm", "application/json"])
@pytest.mark.parametrize("char", ODD_BREAKS)
def test_a_body_of_odd_line_breaks_is_a_400_and_never_reaches_the_model(content_type, char):
    runtime = _Counting("/nowhere")
    with pytest.raises(RequestError) as error:
        runtime.invoke(char.encode(), content_type, None)
    assert error.value.status == 400 and runtime.calls == []


@pytest.mark.parametrize("char", ODD_BREAKS + ["\r", "\r\n", "\n"])
def test_raw_logs_of_odd_line_breaks_are_a_400(raw_runtime, char):
    with pytest.raises(RequestError) as error:
        raw_runtime.invoke((char * 3).encode(), "text/plain", None)
    assert error.value.status == 400, error.value


def test_zero_rows_are_refused_once_for_every_runtime():
    runtime = _Counting("/nowhere")
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((0, 2)), allow_pickle=False)
    for body, kind in ((buffer.getvalue(), "application/x-npy"), (b"[]", "application/json"),
                       (b"\n \n", "text/libsvm")):
        with pytest.raises(RequestError):
            runtime.invoke(body, kind, None)
    assert runtime.calls == []
    assert codecs.row_count(codecs.Distinct(np.zeros((1, 2)), np.zeros(3, np.intp))) == 3


# Raw logs: the same counts as the reference, in little memory --------------------------------------

def _reference(lines: list[str]):
    counts = count_events(numbered("body", lines), TemplateMatcher())
    return list(counts.counts), counts.matrix()


def _same(body: bytes, lines: list[str]) -> None:
    blocks = BodyCounter(TemplateMatcher())(body)
    ids, matrix = _reference(lines)
    assert [b.decode() for b in blocks.block_ids.tolist()] == ids
    np.testing.assert_array_equal(blocks.matrix(), matrix)


def test_body_counts_equal_count_events_on_real_lines(log_lines):
    _same("".join(log_lines).encode(), log_lines)  # the fast path: plain ASCII
    crlf = [line.replace("\n", "\r\n") for line in log_lines[:3000]]
    _same("".join(crlf).encode(), log_lines[:3000])
    mutated = [line.replace("Receiving", "Réceiving\u2028") if i % 7 == 0 else line for i, line in enumerate(log_lines[:3000])]
    _same("".join(mutated).encode(), mutated)  # the per-line path, split on "\n" only


def test_body_counts_keep_multi_block_lines_and_name_the_line_without_a_block(log_lines):
    lines = ["081109 214043 19 INFO dfs.FSNamesystem: BLOCK* ask 10.251.126.5:50010 to delete  blk_1 blk_-2 blk_1\n",
             "081109 214043 19 INFO dfs.DataNode: something nobody templated for blk_1\n", *log_lines[:50]]
    _same("".join(lines).encode(), lines)
    for body in (b"blk_1\nhello\n", "blk_1\nh\u00e9llo\n".encode()):
        with pytest.raises(LogFormatError, match="body, line 2: no block id"):
            BodyCounter(TemplateMatcher())(body)


def _distinct_blocks(lines: list[str], limit: int) -> bytes:
    """Real lines, every block id replaced by a new one of the same length: a new block per line."""
    counter = iter(range(1, 10 ** 9))
    out, size = [], 0
    for line in lines * 20:
        line = re.sub(r"blk_(-?)(\d+)", lambda m: f"blk_{m[1]}{next(counter):0{len(m[2])}d}", line)
        if size + len(line) > limit:
            break
        out.append(line)
        size += len(line)
    return "".join(out).encode()


def _peak_growth(call) -> tuple[int, object]:
    """(growth of this process's peak RSS in bytes, result) around one call."""
    def status(key):
        return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024
    with open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")  # the peak starts again from the current RSS
    before = status("VmRSS")
    try:
        result = call()
    except RequestError as exc:
        result = exc
    return status("VmHWM") - before, result


def test_raw_logs_answer_scores_as_npy(raw_runtime, log_lines):
    body = "".join(log_lines[:2000]).encode()
    answer, kind = raw_runtime.invoke(body, "text/plain", "application/x-npy")
    scores = np.load(io.BytesIO(answer), allow_pickle=False)
    records = json.loads(raw_runtime.invoke(body, "text/plain", "application/json")[0])["predictions"]
    assert kind == "application/x-npy" and scores.dtype == np.float32
    assert scores.tolist() == pytest.approx([r["score"] for r in records], rel=1e-7)
    csv_lines = raw_runtime.invoke(body, "text/plain", "text/csv")[0].decode().splitlines()
    assert [line.split(",")[0] for line in csv_lines] == [r["block_id"] for r in records]
    assert [np.float32(line.split(",")[1]) for line in csv_lines] == scores.tolist()  # the same float32


def test_raw_log_memory_and_answer_are_bounded(raw_runtime, log_lines, monkeypatch):
    body = _distinct_blocks(log_lines, 6 << 20)
    growth, (answer, _) = _peak_growth(lambda: raw_runtime.invoke(body, "text/plain", "application/json"))
    blocks = len(json.loads(answer)["predictions"])
    print(f"\n{len(body):,} bytes, {blocks:,} blocks: peak +{growth >> 20} MiB, JSON answer {len(answer):,} bytes")
    assert blocks > 40000 and growth < 10 * len(body) and len(answer) < 6 << 20

    # The densest body: a distinct block per 11-byte line. The answer cannot fit: 413 with the reason.
    dense = b"".join(b"blk_%d\n" % i for i in range(10 ** 6, 10 ** 6 + 550_000))
    growth, refused = _peak_growth(lambda: raw_runtime.invoke(dense, "text/plain", "text/csv"))
    print(f"{len(dense):,} bytes of bare block ids: peak +{growth >> 20} MiB, {refused}")
    assert isinstance(refused, RequestError) and refused.status == 413 and "response limit" in str(refused)
    assert growth < 10 * len(dense)
