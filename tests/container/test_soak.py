"""A bounded soak test: each image's server under wrk at saturation for a few minutes.

wrk (Debian package; .ci/run installs it) runs on the container's own loopback (nsenter into its
network namespace, as root) or else against its bridge address, with 8 connections for
SOAK_SECONDS in rounds of ROUND_SECONDS, each round bounded in count too. Every answer must be a
200 with a body, and the resident memory of the serve processes at the end may be at most 5 % above
what it was after a warm-up round. The numbers are printed (pytest -s or -v shows them).
"""
from __future__ import annotations

import os
import shutil

import pytest

from benchmarks.serving import load_path, wrk_load
from serving_support import IMAGES, csv_body, memory, rows, serve_processes, trained_model
from support import Server, build

SOAK_SECONDS = int(os.environ.get("BYOC_SOAK_SECONDS", "120"))
ROUND_SECONDS = 30
WARMUP_SECONDS = 15
CONNECTIONS = 8
MAX_REQUESTS_PER_ROUND = 1_000_000
MAX_GROWTH = 0.05


@pytest.mark.parametrize("image", IMAGES)
def test_soak_at_saturation_without_errors_or_memory_growth(image, tmp_path, tmp_path_factory):
    if not shutil.which("wrk"):
        pytest.fail("the soak test needs wrk: apt-get install wrk (.ci/run installs it)")
    ref = build(image)
    model_dir = trained_model(image, ref, tmp_path_factory.getbasetemp())
    payload = tmp_path / "rows.csv"
    payload.write_bytes(csv_body(rows(image, 10, seed=21)))
    path = load_path()
    with Server(ref, model_dir, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}) as server:
        _, workers, _ = serve_processes(server.name)

        def load(seconds: int) -> dict:
            return wrk_load(server.name, int(server.url.rsplit(":", 1)[1]), payload, CONNECTIONS, seconds,
                            MAX_REQUESTS_PER_ROUND, path)

        warmup = load(WARMUP_SECONDS)
        baseline = memory(server.name)
        rounds, samples = [], []
        for _ in range(max(1, SOAK_SECONDS // ROUND_SECONDS)):
            rounds.append(load(ROUND_SECONDS))
            samples.append(memory(server.name))
        _, after, _ = serve_processes(server.name)
        logs = server.logs()

    requests = sum(r["requests"] for r in rounds)
    errors = sum(r["errors"] for r in rounds) + warmup["errors"]
    growth = samples[-1]["rss"] / baseline["rss"] - 1
    print(f"\n{image}: soak {len(rounds)} x {ROUND_SECONDS} s at {CONNECTIONS} connections via {path}: "
          f"{requests} requests ({requests / sum(r['elapsed_s'] for r in rounds):.0f}/s), {errors} errors; "
          f"serve RSS after warm-up {baseline['rss'] >> 20} MiB, per round "
          f"{[s['rss'] >> 20 for s in samples]} MiB, growth {growth:+.2%}; "
          f"cgroup anon {baseline['anon'] >> 20} -> {samples[-1]['anon'] >> 20} MiB")
    assert errors == 0, (warmup, rounds)
    assert requests > 0
    assert growth < MAX_GROWTH
    assert after == workers, "a worker was replaced during the soak"
    assert "Traceback" not in logs and "WORKER TIMEOUT" not in logs, logs[-3000:]
