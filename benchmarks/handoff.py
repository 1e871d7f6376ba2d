"""The cost of running the model off the event loop, at one row: the serving app called in process
on uvloop (no sockets), sequential requests, the best of 5 rounds (the least disturbed by other load).

    python benchmarks/handoff.py [core folder]   # e.g. an older checkout's core/ to compare

Prints microseconds per request for the app as it is in that core folder, and for the hand-off
alone: a direct call, the compute thread (SimpleQueue + call_soon_threadsafe), run_in_executor.
"""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1] / "core"))

import numpy as np  # noqa: E402
import uvloop  # noqa: E402

from byoc.runtime import ModelRuntime  # noqa: E402
from byoc.serving.app import ServingApp  # noqa: E402
from byoc.serving.config import ServerConfig  # noqa: E402

N, ROUNDS = 5000, 5


class Zeros(ModelRuntime):
    feature_names = ("a", "b", "c")

    def load(self):
        pass

    def predict(self, features):
        return np.zeros(len(features))


async def app_requests(app) -> float:
    scope = {"type": "http", "method": "POST", "path": "/invocations",
             "headers": [(b"content-type", b"text/csv"), (b"content-length", b"6")]}
    message = {"type": "http.request", "body": b"1,2,3\n", "more_body": False}

    async def receive():
        return message

    async def send(_):
        pass

    start = time.perf_counter()
    for _ in range(N):
        await app(scope, receive, send)
    return (time.perf_counter() - start) / N * 1e6


async def handoffs() -> dict[str, float]:
    loop = asyncio.get_running_loop()
    work = lambda: None  # noqa: E731
    out = {}
    start = time.perf_counter()
    for _ in range(N):
        work()
    out["direct call"] = (time.perf_counter() - start) / N * 1e6
    try:
        from byoc.serving.deadline import ComputeThreads
        threads = ComputeThreads()
        start = time.perf_counter()
        for _ in range(N):
            await threads.run(work, 60)
        out["compute thread"] = (time.perf_counter() - start) / N * 1e6
    except ImportError:
        pass
    start = time.perf_counter()
    for _ in range(N):
        await asyncio.wait_for(loop.run_in_executor(None, work), 60)
    out["run_in_executor + wait_for"] = (time.perf_counter() - start) / N * 1e6
    return out


def main() -> None:
    config = ServerConfig(port=8080, workers=1, timeout=60, max_payload_mb=6, model_dir="/nowhere")
    app = ServingApp(Zeros("/nowhere"), config)
    results: dict[str, list[float]] = {"app, 1 row": []}
    for _ in range(ROUNDS):
        results["app, 1 row"].append(uvloop.run(app_requests(app)))
        for name, value in uvloop.run(handoffs()).items():
            results.setdefault(name, []).append(value)
    for name, values in results.items():
        print(f"{name:28s} {min(values):7.1f} us")


if __name__ == "__main__":
    main()
