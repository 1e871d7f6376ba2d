"""Lifecycle and failures in real containers (`docker run IMAGE serve`), both images:

- SIGTERM (docker stop / docker kill -s TERM): no new connections are served, the request in flight
  is finished, the container exits 0 within seconds, every worker exits cleanly; also while the model
  is still loading;
- a worker SIGKILLed under load is replaced, and the failed requests are counted;
- a request past SAGEMAKER_MODEL_SERVER_TIMEOUT is answered with a JSON 504 and the next request is
  served while the overrun computation goes on (tests/container/test_serving_guards.py: the worker
  retires when it goes on too long, slow clients, thread limits).

The slow requests are real work: raw HDFS log lines for xgboost-hdfs, a large JSON body for
sklearn-cpu (rows converted one by one), with SAGEMAKER_MAX_PAYLOAD_IN_MB raised to let them in.
"""
from __future__ import annotations

import gzip
import json
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from serving_support import IMAGES, csv_body, rows, serve_processes, trained_model
from support import SHARED_DATA, Server, build

LOAD_REQUESTS = 2000
LOAD_CLIENTS = 4


@pytest.fixture(scope="module", params=IMAGES)
def model(request, tmp_path_factory):
    ref = build(request.param)
    return request.param, ref, trained_model(request.param, ref, tmp_path_factory.getbasetemp())


def slow_body(image: str, megabytes: int) -> tuple[bytes, str, int]:
    """(body, content type, predictions expected): seconds of real work for the image.

    xgboost-hdfs: one distinct block per line (a bare block id, which matches no template and is
    counted as unmatched), so every line is a prediction and a row of the answer; repeated real
    lines are counted at hundreds of MB/s and would not keep a worker busy (77 MiB: 0.95 s)."""
    if image == "xgboost-hdfs":
        blocks = (megabytes << 20) // 12  # "blk_<7 digits>\n"
        return b"".join(b"blk_%d\n" % (1_000_000 + i) for i in range(blocks)), "text/plain", blocks
    n = (megabytes << 20) // 12  # about 12 bytes of JSON per 3-feature row
    return json.dumps({"instances": rows(image, n, seed=5).tolist()}).encode(), "application/json", n


def _logs(name: str) -> str:
    out = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    return out.stdout + out.stderr


def _wait_exit(name: str, timeout: float = 30) -> int:
    return int(subprocess.run(["docker", "wait", name], capture_output=True, text=True, check=True,
                              timeout=timeout).stdout.strip())


def _count(response_json: dict) -> int:
    return len(response_json["predictions"])


# SIGTERM -----------------------------------------------------------------------------------------

def test_sigterm_finishes_the_request_in_flight_and_exits_0(model):
    image, ref, model_dir = model
    body, content_type, expected = slow_body(image, 12 if image == "xgboost-hdfs" else 10)
    # The answer may be as large as SAGEMAKER_MAX_PAYLOAD_IN_MB: 1M blocks answer about 70 MB of JSON.
    env = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "200", "SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    with Server(ref, model_dir, env=env) as server:
        master, workers, everything = serve_processes(server.name)
        assert len(workers) == 2 and set(everything) == {master, *workers}, everything  # nothing else runs

        result = {}

        def in_flight():
            try:
                result["response"] = server.post(body, content_type, "application/json")
            except requests.RequestException as exc:
                result["response"] = exc
            result["done"] = time.monotonic()

        thread = threading.Thread(target=in_flight)
        start = time.monotonic()
        thread.start()
        time.sleep(1.0)  # the body is uploaded and being worked on
        term = time.monotonic()
        subprocess.run(["docker", "kill", "-s", "TERM", server.name], check=True, capture_output=True)
        time.sleep(0.3)
        try:
            late = requests.post(f"{server.url}/invocations", data=csv_body(rows(image, 1)),
                                 headers={"Content-Type": "text/csv"}, timeout=30)
        except requests.RequestException as exc:
            late = exc
        exit_code = _wait_exit(server.name)
        exited = time.monotonic()
        thread.join(30)
        logs = _logs(server.name)

    response = result["response"]
    print(f"\n{image}: request in flight {result['done'] - start:.2f} s, SIGTERM at {term - start:.2f} s, "
          f"exit {exit_code} {exited - term:.2f} s after SIGTERM; request after SIGTERM: "
          f"{getattr(late, 'status_code', type(late).__name__)}")
    assert result["done"] > term, "the request was not in flight when SIGTERM came: make it slower"
    assert isinstance(response, requests.Response) and response.status_code == 200, response
    assert _count(response.json()) == expected
    assert not (isinstance(late, requests.Response) and late.status_code == 200), "served after SIGTERM"
    assert exit_code == 0
    assert exited - term < (result["done"] - term) + 5
    assert "Handling signal: term" in logs
    for pid in workers:
        assert f"Finished server process [{pid}]" in logs, logs  # uvicorn's worker finished, not killed
    for bad in ("SIGKILL", "WORKER TIMEOUT", "Traceback", "exited with code"):
        assert bad not in logs, logs


def test_docker_stop_when_idle_exits_0_at_once(model):
    image, ref, model_dir = model
    with Server(ref, model_dir) as server:
        start = time.monotonic()
        subprocess.run(["docker", "stop", server.name], check=True, capture_output=True)
        took = time.monotonic() - start
        exit_code = _wait_exit(server.name)
    print(f"\n{image}: docker stop took {took:.2f} s, exit code {exit_code}")
    assert exit_code == 0 and took < 5


def test_sigterm_while_the_model_loads_exits_0(model):
    """Before gunicorn runs, SIGTERM would be ignored by PID 1 (docker stop would wait 10 s and kill)."""
    image, ref, model_dir = model
    name = f"byoc-test-loading-{image}"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    subprocess.run(["docker", "run", "-d", "--name", name, "-v", f"{model_dir}:/opt/ml/model:ro", ref, "serve"],
                   check=True, capture_output=True)
    try:
        # As soon as PID 1 handles SIGTERM (bit 15 of SigCgt), while libraries and model still load.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = subprocess.run(["docker", "exec", name, "grep", "SigCgt", "/proc/1/status"],
                                    capture_output=True, text=True).stdout.split()
            if status and int(status[1], 16) & (1 << 14):
                break
        start = time.monotonic()
        subprocess.run(["docker", "kill", "-s", "TERM", name], check=True, capture_output=True)
        exit_code = _wait_exit(name)
        took = time.monotonic() - start
        logs = _logs(name)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    phase = "after gunicorn started" if "Starting gunicorn" in logs else "while loading"
    print(f"\n{image}: SIGTERM {phase}: exit {exit_code} after {took:.2f} s")
    assert exit_code == 0 and took < 5, logs


# SIGKILL under load ------------------------------------------------------------------------------

def test_worker_killed_under_load_is_replaced(model):
    image, ref, model_dir = model
    matrix = rows(image, 50, seed=11)
    with Server(ref, model_dir, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}) as server:
        expected = server.post(csv_body(matrix), "text/csv").text.split()
        _, workers, _ = serve_processes(server.name)
        victim = workers[0]
        done, killed_at = [0], {}
        lock = threading.Lock()

        def one(i):
            k = i % len(matrix)
            try:
                response = requests.post(f"{server.url}/invocations", data=csv_body(matrix[k:k + 1]),
                                         headers={"Content-Type": "text/csv"}, timeout=30)
                ok = response.status_code == 200 and response.text.split() == [expected[k]]
                outcome = None if ok else f"{response.status_code} {response.text[:100]}"
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            with lock:
                done[0] += 1
                if done[0] == LOAD_REQUESTS // 4:
                    killed_at["request"] = done[0]
                    subprocess.run(["docker", "exec", server.name, "sh", "-c", f"kill -9 {victim}"], check=True)
                    killed_at["time"] = time.monotonic()
            return outcome

        start = time.monotonic()
        with ThreadPoolExecutor(LOAD_CLIENTS) as pool:
            outcomes = list(pool.map(one, range(LOAD_REQUESTS)))
        took = time.monotonic() - start
        failures = [o for o in outcomes if o is not None]
        _, after, _ = serve_processes(server.name)
        assert server.post(csv_body(matrix[:3]), "text/csv").text.split() == expected[:3]
        logs = server.logs()

    print(f"\n{image}: {LOAD_REQUESTS} requests from {LOAD_CLIENTS} clients in {took:.1f} s "
          f"({LOAD_REQUESTS / took:.0f}/s); worker {victim} SIGKILLed after request {killed_at['request']}; "
          f"failed: {len(failures)} {failures[:5]}; workers before {workers}, after {after}")
    assert len(after) == 2 and victim not in after  # replaced
    assert f"Worker (pid:{victim}) was sent SIGKILL" in logs
    assert len(failures) <= LOAD_CLIENTS, failures


# SAGEMAKER_MODEL_SERVER_TIMEOUT ------------------------------------------------------------------

def test_request_past_the_timeout_gets_504_and_the_next_is_served(model):
    image, ref, model_dir = model
    body, content_type, _ = slow_body(image, 24 if image == "xgboost-hdfs" else 18)
    env = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "200",
           "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    matrix = rows(image, 3)
    with Server(ref, model_dir, env=env) as server:
        expected = server.post(csv_body(matrix), "text/csv").text
        start = time.monotonic()
        response = server.post(body, content_type)
        took = time.monotonic() - start
        again = server.post(csv_body(matrix), "text/csv")  # a fresh compute thread, the same worker
        logs = server.logs()
    print(f"\n{image}: {len(body) >> 20} MiB {content_type} with SAGEMAKER_MODEL_SERVER_TIMEOUT=1: "
          f"{response.status_code} after {took:.2f} s; next request {again.status_code}")
    assert response.status_code == 504, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT=1 s" in response.json()["error"]
    # XGBoost's C calls release the GIL, so the loop answers on time; json.loads of 18 MiB holds it
    # (one C call of seconds), and the 504 waits for that call to return.
    assert 1 <= took < (2 if image == "xgboost-hdfs" else 10)
    assert again.status_code == 200 and again.text == expected
    assert "WORKER TIMEOUT" not in logs and "SIGKILL" not in logs and "Traceback" not in logs
