"""SAGEMAKER_MODEL_SERVER_TIMEOUT as a per-request deadline that the client hears about.

Gunicorn's own timeout is a heartbeat check in the master: a sync worker stuck in one request
for that long is killed, and its client sees a dropped connection; a gthread worker is never
killed for a slow request at all. So the request itself must stop: each /invocations runs under
`Deadlines.limit()`, and a watchdog thread in the worker (one per process, started on first use,
after the fork) raises `DeadlineExceeded` inside the request's thread once its time is up. The
app answers that with a JSON 504 and the worker carries on with the next request.

The exception is delivered asynchronously (PyThreadState_SetAsyncExc), which works the same in
the main thread (sync workers) and in a pool thread (gthread workers). Python checks for it
between bytecodes: parsing and encoding loops stop within milliseconds, while one long call into
C (a single XGBoost prediction, json.loads of a big body) finishes first. Gunicorn's timeout
stays behind as the last resort for work that never returns to Python (`hard_timeout`).

`DeadlineExceeded` derives from BaseException so that `except Exception` in a library or in a
user's script-mode handler cannot swallow it.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time

TICK_S = 0.05  # how often the watchdog looks at the running requests


class DeadlineExceeded(BaseException):
    """Raised inside a request's thread when it ran past SAGEMAKER_MODEL_SERVER_TIMEOUT."""


def hard_timeout(timeout: int) -> int:
    """Gunicorn's timeout: later than ours, so a request is answered (504) before its worker is killed.

    A sync worker's heartbeat is refreshed just before it accepts a connection, so gunicorn's
    clock for a request starts at most a moment before ours; the margin covers one long C call
    that must return before the deadline can fire, and the master's one-second check interval.
    """
    return timeout + max(5, timeout // 2)


def _raise_in(thread_id: int, exception: type[BaseException] | None) -> int:
    """Schedule `exception` in the thread (None clears a scheduled one); returns threads affected."""
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception is not None else ctypes.c_void_p(0))


class _Request:
    __slots__ = ("thread_id", "deadline", "fired")

    def __init__(self, thread_id: int, deadline: float):
        self.thread_id, self.deadline, self.fired = thread_id, deadline, False


class Deadlines:
    """The running requests of this process and the watchdog that enforces their deadlines.

    Use as `with deadlines.limit(seconds): ...`, itself inside `try: ... except DeadlineExceeded`:
    the exception can surface anywhere up to the end of the `with` statement, and never after it.
    The watchdog fires at most once per request and forgets the request as it fires; the request
    withdraws an exception that was fired but not yet delivered, under the same lock, as it leaves.
    """

    def __init__(self, tick: float = TICK_S):
        self.tick = tick
        self._lock = threading.Lock()
        self._running: dict[int, _Request] = {}
        self._pid = -1  # the process whose watchdog runs (threads do not survive a fork)

    def _ensure_watchdog(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._running = {}
                threading.Thread(target=self._watch, name="byoc-deadlines", daemon=True).start()
                self._pid = os.getpid()

    def _watch(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self._lock:
                late = [key for key, request in self._running.items() if now >= request.deadline]
                for key in late:
                    request = self._running.pop(key)
                    request.fired = True
                    _raise_in(request.thread_id, DeadlineExceeded)

    def limit(self, seconds: float) -> "_Limit":
        self._ensure_watchdog()
        return _Limit(self, seconds)

    def _enter(self, seconds: float) -> tuple[int, _Request]:
        request = _Request(threading.get_ident(), time.monotonic() + seconds)
        with self._lock:
            self._running[id(request)] = request
        return id(request), request

    def _leave(self, key: int, request: _Request) -> None:
        with self._lock:
            self._running.pop(key, None)
            if request.fired:  # fired, maybe not delivered yet: withdraw it
                _raise_in(request.thread_id, None)


class _Limit:
    __slots__ = ("_deadlines", "_seconds", "_key", "_request")

    def __init__(self, deadlines: Deadlines, seconds: float):
        self._deadlines, self._seconds = deadlines, seconds

    def __enter__(self) -> None:
        self._key, self._request = self._deadlines._enter(self._seconds)

    def __exit__(self, *exc) -> None:
        self._deadlines._leave(self._key, self._request)
