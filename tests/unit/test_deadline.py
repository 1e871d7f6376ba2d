"""The per-request deadline (SAGEMAKER_MODEL_SERVER_TIMEOUT): the computation runs in a compute
thread, the event loop stops waiting on time however the computation is blocked, the queue behind
an overrun still moves, and nothing is ever injected into the computation (no corrupted state)."""
from __future__ import annotations

import asyncio
import multiprocessing
import queue
import threading
import time

import pytest

import support  # noqa: F401 - puts core/ on sys.path
from byoc.serving.deadline import ComputeThreads, DeadlineExceeded, hard_timeout


def _busy(seconds: float) -> int:
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
    return n


def _run(threads: ComputeThreads, call, seconds: float):
    """(result or the exception, seconds waited)."""
    async def main():
        start = time.monotonic()
        try:
            return await threads.run(call, seconds), time.monotonic() - start
        except Exception as exc:
            return exc, time.monotonic() - start
    return asyncio.run(main())


def test_result_and_exceptions_come_back():
    threads = ComputeThreads()
    assert _run(threads, lambda: 42, 1)[0] == 42
    error = _run(threads, lambda: 1 / 0, 1)[0]
    assert isinstance(error, ZeroDivisionError)
    # A user's handler that calls sys.exit must not stop the event loop.
    assert isinstance(_run(threads, lambda: exit(3), 1)[0], RuntimeError)


@pytest.mark.parametrize("blocked", ["sleep", "python", "lock"])
def test_the_wait_ends_on_time_however_the_computation_is_blocked(blocked):
    lock = threading.Lock()
    lock.acquire()
    work = {"sleep": lambda: time.sleep(3),  # one C call
            "python": lambda: _busy(2),  # bytecode: the GIL passes to the loop every 5 ms
            "lock": lambda: lock.acquire(timeout=3)}[blocked]
    result, waited = _run(ComputeThreads(), work, 0.3)
    assert isinstance(result, DeadlineExceeded) and result.running
    assert 0.29 <= waited < 1.5, waited  # the 0.3 s deadline, not the 2-3 s computation


def test_the_queue_behind_an_overrun_is_still_computed():
    threads = ComputeThreads()

    async def main():
        stuck = asyncio.ensure_future(threads.run(lambda: time.sleep(2), 0.2))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        quick = await threads.run(lambda: "done", 1)  # queued behind the stuck one
        return await asyncio.gather(stuck, return_exceptions=True), quick, time.monotonic() - start

    (stuck,), quick, waited = asyncio.run(main())
    assert isinstance(stuck, DeadlineExceeded) and quick == "done"
    assert waited < 1.5, waited  # not the stuck one's 2 s: a fresh thread took the queue when the first one overran


def test_a_call_whose_deadline_passed_in_the_queue_is_never_run():
    threads, ran = ComputeThreads(), []

    async def main():
        first = asyncio.ensure_future(threads.run(lambda: time.sleep(0.5), 5))
        await asyncio.sleep(0.05)
        with pytest.raises(DeadlineExceeded) as late:
            await threads.run(lambda: ran.append(1), 0.1)
        assert not late.value.running
        await first
        await asyncio.sleep(0.2)

    asyncio.run(main())
    assert ran == []


def test_running_tells_when_an_overrun_computation_ends():
    result, _ = _run(ComputeThreads(), lambda: time.sleep(0.5), 0.1)
    assert result.running
    time.sleep(0.6)
    assert not result.running


def test_a_handler_with_a_queue_and_a_lock_keeps_working_after_many_timeouts():
    """The review's case: the old deadline raised an exception into the computation, and 73 of 300
    firings left a queue.Queue's mutex locked, so the next request hung. Now the deadline only
    stops the waiting: the handler's queue and lock stay consistent."""
    threads, jobs, lock = ComputeThreads(), queue.Queue(), threading.Lock()

    def handler(seconds: float) -> int:
        with lock:
            jobs.put(seconds)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            return jobs.get_nowait() and jobs.qsize()

    async def main():
        fired = 0
        for i in range(300):
            try:
                # every tenth with time to spare, so both outcomes happen however loaded the machine is
                await threads.run(lambda: handler(0.002 + (i % 5) * 0.001), 1.0 if i % 10 == 0 else 0.004)
            except DeadlineExceeded:
                fired += 1
        await asyncio.sleep(0.1)
        return fired, await threads.run(lambda: handler(0.001), 1)

    fired, last = asyncio.run(main())
    assert 0 < fired < 300  # both outcomes happened
    assert last == 0 and jobs.empty() and not lock.locked()


def _child(out):
    out.put(_run(THREADS, lambda: "child", 1)[0])


THREADS = ComputeThreads()


def test_a_forked_worker_starts_its_own_thread():
    assert _run(THREADS, lambda: "parent", 1)[0] == "parent"  # gunicorn preloads in the master
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_child, args=(out,))
    child.start()
    child.join(10)
    assert out.get(timeout=1) == "child"


def test_gunicorn_kills_only_well_after_our_deadline():
    assert hard_timeout(1) == 31 and hard_timeout(60) == 90
