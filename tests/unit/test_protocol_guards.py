"""Slow and greedy clients against the real server on this host (gunicorn, uvicorn's worker, our
protocol): half-sent headers are answered 408 and closed after BYOC_HEADER_TIMEOUT, a stalled
body gets a JSON 408 after BYOC_BODY_TIMEOUT, /invocations past BYOC_MAX_CONCURRENT_INVOCATIONS
get a JSON 503 while /ping stays 200, and past BYOC_MAX_CONNECTIONS the oldest idle connection
makes room, so a new /ping still gets in. The images: tests/container/test_lifecycle.py."""
from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import ExitStack

import requests

from test_serving_timeout import HostServer


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_half_sent_headers_are_answered_408_and_closed(tmp_path):
    with HostServer(tmp_path, "SlowRuntime", 1, BYOC_HEADER_TIMEOUT="1") as server, ExitStack() as stack:
        silent, partial = stack.enter_context(_connect(server)), stack.enter_context(_connect(server))
        partial.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Ty")
        start = time.monotonic()
        answers = [_read_all(sock) for sock in (silent, partial)]
        took = time.monotonic() - start
        assert requests.get(f"{server.url}/ping", timeout=5).status_code == 200
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"BYOC_HEADER_TIMEOUT=1 s" in answer
    assert took < 4.0, took  # the 1 s header deadline, not keep-alive's 5 s


def test_a_kept_alive_connection_gets_the_header_deadline_for_each_request(tmp_path):
    with HostServer(tmp_path, "SlowRuntime", 1, BYOC_HEADER_TIMEOUT="1") as server, _connect(server) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"\r\n\r\n{}"):  # the head and the body may come in two reads
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200 "), first
        sock.sendall(b"GET /pi")  # the next request starts and stalls: keep-alive's timer is gone
        start = time.monotonic()
        assert _read_all(sock).startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - start < 4.0  # the 1 s header deadline, not keep-alive's 5 s


def test_a_stalled_body_is_a_json_408(tmp_path):
    with HostServer(tmp_path, "SlowRuntime", 1, timeout=30, BYOC_BODY_TIMEOUT="1") as server, _connect(server) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                     b"Content-Length: 100\r\n\r\n1,2\n")
        start = time.monotonic()
        answer = sock.recv(65536)
        took = time.monotonic() - start
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert "BYOC_BODY_TIMEOUT=1 s" in json.loads(body)["error"]
    assert 0.95 <= took < 5.0, took  # the 1 s stall, not the request's 30 s


def test_invocations_past_the_limit_get_503_and_ping_stays_200(tmp_path):
    with HostServer(tmp_path, "SleepRuntime", 1, timeout=10, BYOC_MAX_CONCURRENT_INVOCATIONS="2") as server:
        held = [threading.Thread(target=server.post, args=("1.5,0\n",)) for _ in range(2)]
        for thread in held:
            thread.start()
        time.sleep(0.3)
        refused = server.post("0,0\n")
        ping = requests.get(f"{server.url}/ping", timeout=5)
        for thread in held:
            thread.join()
        after = server.post("0,0\n")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "BYOC_MAX_CONCURRENT_INVOCATIONS" in refused.json()["error"]
    assert ping.status_code == 200 and after.status_code == 200


def test_past_the_connection_cap_the_oldest_idle_connection_makes_room(tmp_path):
    with HostServer(tmp_path, "SlowRuntime", 1, BYOC_MAX_CONNECTIONS="20", BYOC_HEADER_TIMEOUT="60") as server, \
            ExitStack() as stack:
        idle = [stack.enter_context(_connect(server)) for _ in range(40)]
        time.sleep(0.5)
        pings = [requests.get(f"{server.url}/ping", timeout=5).status_code for _ in range(5)]
        closed = 0
        for sock in idle:
            sock.settimeout(0.05)
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, socket.timeout):
                pass
    assert pings == [200] * 5
    assert closed >= 20  # the oldest ones, closed by the server to stay under the cap


def test_a_trickled_body_is_a_408_at_the_request_timeout(tmp_path):
    with HostServer(tmp_path, "SlowRuntime", 1, timeout=2, BYOC_BODY_TIMEOUT="10") as server, _connect(server) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n")
        start, answer = time.monotonic(), b""
        sock.settimeout(0.5)
        while not answer and time.monotonic() - start < 5:  # one byte every 0.5 s: never a 10 s stall
            try:
                sock.sendall(b"1")
                answer = sock.recv(65536)
            except (TimeoutError, socket.timeout):
                pass
        took = time.monotonic() - start
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert "SAGEMAKER_MODEL_SERVER_TIMEOUT=2 s" in json.loads(body)["error"]
    assert 1.95 <= took < 6.0, took  # the request's 2 s, not the 10 s stall
