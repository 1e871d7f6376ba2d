"""SAGEMAKER_MODEL_SERVER_TIMEOUT under gunicorn on this host, with the server's own uvicorn worker:
a request past the timeout gets its JSON 504 on time, whether the model is busy in Python or
blocked in C, while /ping and the other connections of that worker are served; a computation that
goes on past its 504 makes the worker retire and a fresh one serve. Every server runs in a process
group of its own and is stopped whole (support.stop_process).
The images are tested the same way with real slow work in tests/container/test_lifecycle.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from support import REPO, free_port, start_process, stop_process

# Test runtimes (not part of the images). SlowRuntime: pure-Python work proportional to the rows.
# SleepRuntime: each request sleeps (one C call) for the seconds in its first cell.
RUNTIMES = '''
import time
import numpy as np
from byoc.runtime import ModelRuntime

class SlowRuntime(ModelRuntime):
    feature_names = ("a", "b")

    def load(self):
        pass

    def predict(self, features):
        total = 0.0
        for row in features.tolist():
            for _ in range(20000):
                total += row[0] * row[1]
        return np.full(len(features), total / 1e9)

class SleepRuntime(SlowRuntime):
    def predict(self, features):
        time.sleep(float(features[0][0]))
        return np.zeros(len(features))
'''


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


class HostServer:
    def __init__(self, tmp_path: Path, runtime: str, workers: int, timeout: int = 1, **env):
        (tmp_path / "test_runtimes.py").write_text(RUNTIMES)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "server.log"
        self.env = dict(os.environ, PYTHONPATH=f"{REPO / 'core'}:{tmp_path}", SM_MODEL_DIR=str(tmp_path),
                        SAGEMAKER_MODEL_SERVER_TIMEOUT=str(timeout), SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
                        SAGEMAKER_BIND_TO_PORT=str(self.port), **env)
        overrides = {"bind": f"127.0.0.1:{self.port}"}
        self.code = (f"from test_runtimes import {runtime}; from byoc.serving.server import serve; "
                     f"serve({runtime}, {overrides!r})")

    def __enter__(self) -> "HostServer":
        with open(self.log, "wb") as out:
            self.process = start_process([sys.executable, "-c", self.code], env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.1)
        stop_process(self.process, signal.SIGKILL)
        pytest.fail(f"server did not start:\n{self.log.read_text()}")

    def workers(self) -> set[int]:
        return _children(self.process.pid)

    def post(self, body: str, timeout: float = 30):
        return requests.post(f"{self.url}/invocations", data=body, headers={"Content-Type": "text/csv"}, timeout=timeout)

    def __exit__(self, *exc) -> None:
        stop_process(self.process, signal.SIGKILL)


@pytest.fixture(params=[1, 2])
def server(request, tmp_path):
    with HostServer(tmp_path, "SlowRuntime", request.param) as running:
        yield running


def test_request_past_the_timeout_is_answered_504_and_the_next_is_served(server):
    fast = server.post("1,2\n")
    assert fast.status_code == 200, fast.text

    start = time.monotonic()
    slow = server.post("1,2\n" * 10000)  # about 1 ms of work per row: 10 s or more without the timeout
    elapsed = time.monotonic() - start
    assert slow.status_code == 504, slow.text
    assert slow.headers["Content-Type"].startswith("application/json")
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT=1 s" in slow.json()["error"]
    assert 1.0 <= elapsed < 2.0, elapsed

    again = server.post("1,2\n")  # a fresh compute thread serves it while the overrun goes on
    assert again.status_code == 200 and again.text == fast.text
    workers = server.workers()
    assert stop_process(server.process) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # no orphaned worker
    text = server.log.read_text()
    assert "WORKER TIMEOUT" not in text and "Traceback" not in text, text


@pytest.mark.parametrize("server", [2], indirect=True)
def test_the_other_worker_answers_while_one_is_busy(server):
    results = {}
    slow = threading.Thread(target=lambda: results.setdefault("slow", server.post("1,2\n" * 10000)))
    slow.start()
    time.sleep(0.2)
    fast = [server.post("1,2\n") for _ in range(5)]
    slow.join()
    assert [r.status_code for r in fast] == [200] * 5
    assert results["slow"].status_code == 504


def test_blocked_in_c_staggered_requests_all_get_their_504_and_the_worker_is_replaced(tmp_path):
    """The review's case, shortened: one worker, timeout 2 s, six requests that each block 6 s in
    C (time.sleep), started at staggered times across the heartbeat period, /ping polled all along.
    Every slow request gets its 504 within timeout + 1 s, no connection is dropped, /ping stays
    200, and the worker retires (BYOC_RETIRE_GRACE=1) and is replaced without WORKER TIMEOUT."""
    with HostServer(tmp_path, "SleepRuntime", 1, timeout=2, BYOC_RETIRE_GRACE="1") as server:
        before = server.workers()
        pings, stop = [], threading.Event()

        def ping_loop():
            # While the worker retires, a /ping waits in the listen backlog for its replacement.
            while not stop.is_set() and len(pings) < 400:
                try:
                    pings.append(requests.get(f"{server.url}/ping", timeout=10).status_code)
                except requests.RequestException as exc:
                    pings.append(type(exc).__name__)
                time.sleep(0.05)

        def slow(delay: float):
            time.sleep(delay)
            start = time.monotonic()
            try:
                response = server.post("6,0\n", timeout=20)
                return response.status_code, time.monotonic() - start
            except requests.RequestException as exc:
                return type(exc).__name__, time.monotonic() - start

        pinger = threading.Thread(target=ping_loop)
        pinger.start()
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(slow, [0, 0.45, 0.9, 1.35, 1.8, 2.25]))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (not server.workers() or server.workers() == before):
            time.sleep(0.2)
        after = server.workers()
        fast = server.post("0,0\n")
        stop.set()
        pinger.join()
        text = server.log.read_text()
    print(f"\n504 latencies: {[f'{t:.2f}' for _, t in results]} s; pings {len(pings)}; workers {before} -> {after}")
    assert [status for status, _ in results] == [504] * 6, results
    assert all(2.0 <= took < 3.0 for _, took in results), results
    assert set(pings) == {200}, pings
    assert after and after != before  # retired and replaced
    assert fast.status_code == 200
    assert "WORKER TIMEOUT" not in text and "Traceback" not in text, text
    assert "BYOC_RETIRE_GRACE" in text
