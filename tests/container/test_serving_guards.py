"""The serving guards in the sklearn-cpu image, with a script-mode handler (arbitrary user code)
that sleeps for the seconds it is sent, under a lock and with a queue.Queue:

- a computation blocked past SAGEMAKER_MODEL_SERVER_TIMEOUT gets its JSON 504 within timeout + 1 s,
  also for staggered requests across gunicorn's heartbeat period, /ping stays 200 and no connection
  is dropped; the worker retires after BYOC_RETIRE_GRACE and a fresh one serves;
- the handler's lock and queue keep working after many timeouts;
- 1,500 half-open connections under `--ulimit nofile=1024:8192`: /ping stays 200, /invocations
  answers, and the server closes them after BYOC_HEADER_TIMEOUT;
- the native thread pools are sized cpus // workers before the libraries load.
"""
from __future__ import annotations

import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from serving_support import serve_processes
from support import Server, build

HANDLER = '''
import queue, threading, time

JOBS, LOCK = queue.Queue(), threading.Lock()

def model_fn(model_dir):
    return "no model needed"

def transform_fn(model, body, content_type, accept):
    seconds = float(body.decode().split(",")[0])
    with LOCK:
        JOBS.put(seconds)
        time.sleep(seconds)
        JOBS.get_nowait()
    return f"slept {seconds} pending {JOBS.qsize()}", "text/plain"
'''


@pytest.fixture(scope="module")
def image():
    return build("sklearn-cpu")


@pytest.fixture
def handler(tmp_path):
    code, model = tmp_path / "code", tmp_path / "model"
    code.mkdir()
    model.mkdir()
    (code / "inference.py").write_text(HANDLER)
    return code, model


def _server(image, handler, docker_args=(), **env) -> Server:
    code, model = handler
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code",
           "SAGEMAKER_MODEL_SERVER_WORKERS": "1", **env}
    return Server(image, model, env=env, volumes={code: "/opt/ml/code"}, docker_args=docker_args)


def _sleep(server: Server, seconds: float, timeout: float = 30):
    return requests.post(f"{server.url}/invocations", data=f"{seconds}\n", headers={"Content-Type": "text/csv"},
                         timeout=timeout)


def _wait_for_new_worker(server: Server, old: list[int], limit: float = 20) -> list[int]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        _, workers, _ = serve_processes(server.name)
        if workers and workers != old:
            return workers
        time.sleep(0.2)
    return old


def test_sleeping_handler_gets_504_then_the_worker_retires_and_a_new_one_serves(image, handler):
    with _server(image, handler, SAGEMAKER_MODEL_SERVER_TIMEOUT="2", BYOC_RETIRE_GRACE="2") as server:
        _, before, _ = serve_processes(server.name)
        start = time.monotonic()
        stuck = _sleep(server, 30)
        took = time.monotonic() - start
        after = _wait_for_new_worker(server, before)
        retired_after = time.monotonic() - start
        fresh = _sleep(server, 0, timeout=5)
        logs = server.logs()
    print(f"\n504 after {took:.2f} s; worker {before} -> {after} {retired_after:.1f} s after the request")
    assert stuck.status_code == 504 and "SAGEMAKER_MODEL_SERVER_TIMEOUT=2 s" in stuck.json()["error"]
    assert 2.0 <= took < 3.0, took
    assert after != before and fresh.status_code == 200 and fresh.text == "slept 0.0 pending 0"
    assert "BYOC_RETIRE_GRACE" in logs and f"Finished server process [{before[0]}]" in logs
    for bad in ("WORKER TIMEOUT", "SIGKILL", "Traceback"):
        assert bad not in logs, logs[-3000:]


def test_staggered_requests_blocked_in_c_all_get_their_504_on_time(image, handler):
    """The review's case (six slow requests at staggered times, one worker): gunicorn's heartbeat was
    due while the loop was blocked and the worker was killed with 3 requests in flight. timeout 4 s:
    gunicorn's timeout is 9 s and uvicorn's own heartbeat would come only every 4.5 s."""
    with _server(image, handler, SAGEMAKER_MODEL_SERVER_TIMEOUT="4", BYOC_RETIRE_GRACE="3") as server:
        pings, waits, stop = [], [], threading.Event()

        def ping_loop():
            # While the worker retires, a /ping waits in the listen backlog for its replacement.
            while not stop.is_set() and len(pings) < 600:
                start = time.monotonic()
                try:
                    pings.append(requests.get(f"{server.url}/ping", timeout=10).status_code)
                except requests.RequestException as exc:
                    pings.append(type(exc).__name__)
                waits.append(time.monotonic() - start)
                time.sleep(0.05)

        def slow(delay: float):
            time.sleep(delay)
            start = time.monotonic()
            try:
                return _sleep(server, 12).status_code, time.monotonic() - start
            except requests.RequestException as exc:
                return type(exc).__name__, time.monotonic() - start

        pinger = threading.Thread(target=ping_loop)
        pinger.start()
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(slow, [0, 0.9, 1.8, 2.7, 3.6, 4.4]))
        stop.set()
        pinger.join()
        logs = server.logs()
    print(f"\n504 latencies {[round(t, 2) for _, t in results]} s; {len(pings)} pings: {sorted(set(map(str, pings)))}, "
          f"longest {max(waits):.2f} s")
    assert [status for status, _ in results] == [504] * 6, results
    assert all(4.0 <= took < 5.0 for _, took in results), results
    assert set(pings) == {200}, pings
    assert "WORKER TIMEOUT" not in logs and "SIGKILL" not in logs and "Traceback" not in logs


def test_the_handlers_lock_and_queue_survive_many_timeouts(image, handler):
    with _server(image, handler, SAGEMAKER_MODEL_SERVER_TIMEOUT="1") as server:
        _, before, _ = serve_processes(server.name)
        statuses = [_sleep(server, 1.15).status_code for _ in range(10)]
        time.sleep(1.5)  # the last computation ends: nothing holds the lock now
        start = time.monotonic()
        after_all = _sleep(server, 0, timeout=5)
        took = time.monotonic() - start
        _, after, _ = serve_processes(server.name)
    assert statuses == [504] * 10
    assert after_all.status_code == 200 and after_all.text == "slept 0.0 pending 0" and took < 0.5
    assert after == before  # each overrun ended within BYOC_RETIRE_GRACE: no retirement needed


def _half_open(address: tuple[str, int], count: int) -> list[socket.socket]:
    held = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=10)
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n")  # never finished
        held.append(sock)
    return held


def test_1500_half_open_connections_under_ulimit_1024(image, handler):
    limits = ("--ulimit", "nofile=1024:8192")
    with _server(image, handler, limits, BYOC_HEADER_TIMEOUT="25") as server:
        soft = server_soft_limit(server)
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        held: list[socket.socket] = []
        try:
            start = time.monotonic()
            held = _half_open((host, int(port)), 1500)
            opened = time.monotonic() - start
            pings, latencies = [], []
            for _ in range(40):  # about 8 s while all 1,500 are held
                t = time.monotonic()
                pings.append(requests.get(f"{server.url}/ping", timeout=5).status_code)
                latencies.append(time.monotonic() - t)
                time.sleep(0.2)
            invocation = _sleep(server, 0, timeout=5)
            # The header deadline runs from each connection's start: all are closed 25 s after it.
            time.sleep(max(0, 25 + 1 - (time.monotonic() - start)))
            closed = answered = 0
            for sock in held:
                sock.settimeout(5)
                data = b""
                try:
                    while chunk := sock.recv(4096):
                        data += chunk
                    closed += 1
                except OSError:
                    pass
                answered += data.startswith(b"HTTP/1.1 408 ")
        finally:
            for sock in held:
                sock.close()
        logs = server.logs()
    print(f"\nsoft nofile {soft}; 1,500 opened in {opened:.1f} s; /ping {sorted(set(pings))}, "
          f"max {max(latencies) * 1000:.0f} ms; closed by the server {closed}, with a 408 {answered}")
    assert soft == 8192
    assert pings == [200] * 40 and invocation.status_code == 200
    assert closed == 1500 and answered == 1500
    assert "Traceback" not in logs


def server_soft_limit(server: Server) -> int:
    import subprocess

    limits = subprocess.run(["docker", "exec", server.name, "cat", "/proc/1/limits"], capture_output=True,
                            text=True, check=True).stdout
    return int(re.search(r"Max open files\s+(\d+)", limits).group(1))


CPUS = len(os.sched_getaffinity(0))  # the containers here get the host's CPUs unless --cpus says less


@pytest.mark.parametrize("workers, docker_args, threads", [(str(CPUS), (), 1), ("1", ("--cpus", "1"), 1), ("1", (), CPUS)])
def test_thread_pools_follow_cpus_per_worker(image, handler, workers, docker_args, threads):
    with _server(image, handler, docker_args, SAGEMAKER_MODEL_SERVER_WORKERS=workers) as server:
        time.sleep(0.5)
        lines = re.findall(r"worker \d+: thread pools (.*)", server.logs())
    print(f"\nworkers={workers} {' '.join(docker_args)}: {lines}")
    assert len(lines) == int(workers)
    for line in lines:
        counts = [int(n) for n in re.findall(r"=(\d+)", line)]
        assert counts and set(counts) == {threads}, line
