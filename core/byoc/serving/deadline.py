"""SAGEMAKER_MODEL_SERVER_TIMEOUT as a per-request deadline that the client always hears about.

The model's work (runtime.invoke) runs in a compute thread of the worker process, never in the
event loop: the loop awaits the result with the time the request has left, and when that is up it
answers the JSON 504 itself. So the loop never stops: other connections are served, /ping answers
and the worker's heartbeat to gunicorn goes on, however long the computation blocks (in C, in a
sleep, in a lock of the user's script). Nothing is injected into the computation, so no lock,
queue or half-built object of the model or of a user's handler can be left broken by the timeout.

A computation that overran keeps its thread: a fresh thread takes over the queue at once, so the
requests behind it are still computed. If it is still running `grace` seconds after its 504, the
worker retires (app.py): it stops accepting, finishes or 504s what it holds, and exits; gunicorn
starts a new one from the preloaded master. Threads are daemons, so a stuck one never holds up
the exit. Gunicorn's own timeout stays the last resort, for a loop that cannot run at all (a C
call that holds the GIL).

Hand-off: a SimpleQueue to the thread and call_soon_threadsafe back, tens of microseconds; no
ThreadPoolExecutor, whose threads are joined at exit (a stuck one would block the retirement).
"""
from __future__ import annotations

import asyncio
import os
import threading
from queue import SimpleQueue
from typing import Callable


class DeadlineExceeded(Exception):
    """The request ran past its deadline; `running` tells, at any later time, whether its
    computation still goes on."""

    def __init__(self, job: "_Job"):
        super().__init__("deadline exceeded")
        self._job = job

    @property
    def running(self) -> bool:
        return self._job.thread is not None and not self._job.done


def hard_timeout(timeout: int) -> int:
    """Gunicorn's timeout. The worker's heartbeat comes from its own loop every second (server.py),
    so only a loop that cannot run this long is killed: one C call holding the GIL (json.loads of
    a huge body takes seconds) delays a 504 until it returns, and must not cost the worker."""
    return timeout + max(30, timeout // 2)


class _Job:
    __slots__ = ("call", "future", "loop", "thread", "done", "abandoned")

    def __init__(self, call: Callable, future: asyncio.Future, loop: asyncio.AbstractEventLoop):
        self.call, self.future, self.loop = call, future, loop
        self.thread: _ComputeThread | None = None  # the thread that took it, once it started
        self.done = self.abandoned = False


class _ComputeThread(threading.Thread):
    def __init__(self, pool: "ComputeThreads"):
        super().__init__(name="byoc-compute", daemon=True)
        self.pool = pool
        self.overran = False  # set by the loop: a job ran past its deadline, a fresh thread took over

    def run(self) -> None:
        pool = self.pool
        while True:
            job = pool._queue.get()
            with pool._lock:
                if job.abandoned:  # its deadline passed while it waited: nobody wants the answer
                    continue
                job.thread = self
            try:
                outcome = (True, job.call())
            except Exception as exc:
                outcome = (False, exc)
            except BaseException as exc:  # SystemExit from a user's handler must not stop the loop
                outcome = (False, RuntimeError(f"the model raised {type(exc).__name__}: {exc}"))
            with pool._lock:
                job.done = True
                wanted, overran = not job.abandoned, self.overran
            if wanted:
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, outcome)
                except RuntimeError:  # that event loop is closed: nobody is waiting any more
                    pass
            if overran:
                return


def _settle(future: asyncio.Future, outcome: tuple) -> None:
    if not future.done():
        ok, value = outcome
        future.set_result(value) if ok else future.set_exception(value)


class _Expired(Exception):
    """Set on a job's future when its time is up (never raised by a model)."""


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(_Expired())


class ComputeThreads:
    """The process's compute thread (one, plus one per overrun still running), fed in order.

    `await threads.run(call, seconds)` returns call()'s result or raises its exception, or raises
    DeadlineExceeded once `seconds` have passed; the call is then dropped if it had not started.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._queue: SimpleQueue[_Job] = SimpleQueue()
        self._pid = -1  # threads do not survive a fork: gunicorn preloads in the master

    def _start_thread(self) -> None:
        _ComputeThread(self).start()

    async def run(self, call: Callable, seconds: float):
        if self._pid != os.getpid():  # first use in this process; only its event loop calls run()
            self._lock, self._queue = threading.Lock(), SimpleQueue()
            self._start_thread()
            self._pid = os.getpid()
        loop = asyncio.get_running_loop()
        job = _Job(call, loop.create_future(), loop)
        timer = loop.call_later(max(seconds, 0), _expire, job.future)  # cheaper than asyncio.timeout
        self._queue.put(job)
        try:
            return await job.future
        except _Expired:
            with self._lock:
                job.abandoned = True
                if job.thread is not None and not job.done and not job.thread.overran:
                    job.thread.overran = True
                    self._start_thread()
            raise DeadlineExceeded(job) from None
        except asyncio.CancelledError:  # the server gave up on the request (shutdown timeout)
            job.abandoned = True
            raise
        finally:
            timer.cancel()
