"""The per-request deadline (SAGEMAKER_MODEL_SERVER_TIMEOUT): fires inside slow Python work, in the
main thread and in pool threads, after a fork, and never outside the block it guards."""
from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

import support  # noqa: F401 - puts core/ on sys.path
from byoc.serving.deadline import DeadlineExceeded, Deadlines, hard_timeout


def _busy(seconds: float) -> int:
    """Pure-Python work (no sleep: a sleep is one C call and would only be interrupted after it)."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def _timed(deadlines: Deadlines, limit: float, work: float) -> tuple[bool, float]:
    start = time.monotonic()
    try:
        with deadlines.limit(limit):
            _busy(work)
    except DeadlineExceeded:
        return True, time.monotonic() - start
    return False, time.monotonic() - start


def test_slow_work_is_stopped_soon_after_the_deadline():
    stopped, elapsed = _timed(Deadlines(), 0.3, 5)
    assert stopped and 0.3 <= elapsed < 0.6


def test_fast_work_is_left_alone_and_nothing_fires_later():
    deadlines = Deadlines()
    stopped, _ = _timed(deadlines, 0.2, 0.01)
    assert not stopped
    _busy(0.5)  # past the deadline, outside the block: nothing may be raised here


def test_works_in_pool_threads_independently():
    deadlines = Deadlines()
    results = {}

    def run(name, limit, work):
        results[name] = _timed(deadlines, limit, work)

    threads = [threading.Thread(target=run, args=("slow", 0.2, 3)), threading.Thread(target=run, args=("fast", 2, 0.3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["slow"][0] and results["slow"][1] < 0.6
    assert results["fast"] == (False, pytest.approx(0.3, abs=0.25))


def test_never_fires_outside_the_block_when_work_ends_at_the_deadline():
    """Blocks that end right around their deadline, many times: an exception may end the block, but
    none may surface after the `with` statement."""
    deadlines = Deadlines(tick=0.001)
    stray = stopped = 0
    for i in range(300):
        try:
            with deadlines.limit(0.004):
                _busy(0.002 + (i % 5) * 0.001)
        except DeadlineExceeded:
            stopped += 1
        try:
            _busy(0.01)
        except DeadlineExceeded:
            stray += 1
    assert stray == 0
    assert 0 < stopped < 300  # both outcomes happened, so the race was exercised


def _child(deadlines, queue):
    queue.put(_timed(deadlines, 0.2, 3)[0])


def test_watchdog_starts_again_in_a_forked_worker():
    deadlines = Deadlines()
    assert _timed(deadlines, 0.1, 1)[0]  # the parent's watchdog runs (gunicorn preloads in the master)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(deadlines, queue))
    child.start()
    child.join(10)
    assert queue.get(timeout=1) is True


def test_gunicorn_kills_only_well_after_our_deadline():
    assert hard_timeout(1) == 6 and hard_timeout(60) == 90
