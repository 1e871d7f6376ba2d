"""SAGEMAKER_MODEL_SERVER_TIMEOUT under gunicorn on this host, with the server's own uvicorn worker:
a request past the timeout gets a JSON 504 before gunicorn would kill the worker, the worker serves
the next request, and with two workers the other worker answers meanwhile.
The images are tested the same way with real slow work in tests/container/test_lifecycle.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from support import REPO, free_port

# A runtime whose predict does pure-Python work proportional to the rows sent: real CPU work that
# only a deadline inside the worker can stop (test code, not part of the images).
RUNTIME = '''
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
'''


@pytest.fixture(params=[1, 2])
def server(request, tmp_path):
    (tmp_path / "slow_runtime.py").write_text(RUNTIME)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'core'}:{tmp_path}", SM_MODEL_DIR=str(tmp_path),
               SAGEMAKER_MODEL_SERVER_TIMEOUT="1", SAGEMAKER_MODEL_SERVER_WORKERS=str(request.param), SAGEMAKER_BIND_TO_PORT=str(port))
    overrides = {"bind": f"127.0.0.1:{port}"}
    code = ("from slow_runtime import SlowRuntime; from byoc.serving.server import serve; "
            f"serve(SlowRuntime, {overrides!r})")
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"server did not start:\n{log.read_text()}")
    yield url, process, log
    if process.poll() is None:
        process.kill()
        process.wait()


def _post(url, rows: int, timeout: float = 30):
    return requests.post(f"{url}/invocations", data="1,2\n" * rows, headers={"Content-Type": "text/csv"}, timeout=timeout)


def test_request_past_the_timeout_is_answered_504_and_the_worker_recovers(server):
    url, process, log = server
    fast = _post(url, 1)
    assert fast.status_code == 200, fast.text

    start = time.monotonic()
    slow = _post(url, 10000)  # about 1 ms of work per row: 10 s or more without the timeout
    elapsed = time.monotonic() - start
    assert slow.status_code == 504, slow.text
    assert slow.headers["Content-Type"].startswith("application/json")
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT=1 s" in slow.json()["error"]
    assert 1.0 <= elapsed < 2.5, elapsed

    again = _post(url, 1)  # the one worker serves the next request
    assert again.status_code == 200 and again.text == fast.text
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    text = log.read_text()
    assert "WORKER TIMEOUT" not in text and "Traceback" not in text, text


@pytest.mark.parametrize("server", [2], indirect=True)
def test_the_other_worker_answers_while_one_is_busy(server):
    url, process, log = server
    results = {}
    slow = threading.Thread(target=lambda: results.setdefault("slow", _post(url, 10000)))
    slow.start()
    time.sleep(0.2)
    fast = [_post(url, 1) for _ in range(5)]
    slow.join()
    assert [r.status_code for r in fast] == [200] * 5
    assert results["slow"].status_code == 504
