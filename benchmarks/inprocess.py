"""The in-process limit: parse + predict + format in a loop, no HTTP. Runs inside the image.

    python /opt/benchmarks/inprocess.py --which ours|reference --payload FILE --seconds 3 --procs 2

`ours` times this project's ModelRuntime.invoke (the whole /invocations work between the HTTP
layers: content negotiation, strict CSV decoding, prediction, encoding); `reference` times
benchmarks/reference/app.py's predict_csv (loadtxt, inplace_predict, one score per line).
--procs forked processes loop at once (the model is loaded before the fork, as both servers
do), so the rate is comparable with a server of that many workers. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def load(which: str):
    if which == "ours":
        from byoc.cli import algorithm

        runtime = algorithm().Runtime(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
        return lambda body: runtime.invoke(body, "text/csv", None)[0]
    sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
    import app  # noqa: E402  (the reference server's module; loads the model)

    return app.predict_csv


def loop(call, body: bytes, seconds: float, max_calls: int) -> dict:
    latencies = []
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline and len(latencies) < max_calls:
        call(body)
        after = time.perf_counter()
        latencies.append(after - now)
        now = after
    return {"calls": len(latencies), "elapsed_s": now - start, "latencies_s": latencies}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", choices=("ours", "reference"), required=True)
    parser.add_argument("--payload", required=True, help="CSV rows, no header, no label")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--max-calls", type=int, default=200_000, help="per process")
    parser.add_argument("--print-output", action="store_true", help="print the response body instead")
    args = parser.parse_args()
    body = Path(args.payload).read_bytes()
    call = load(args.which)
    if args.print_output:
        sys.stdout.write(call(body).decode())
        return
    for _ in range(20):  # warm up: first calls pay for lazy imports and allocations
        call(body)

    pipes = []
    for _ in range(args.procs):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            result = loop(call, body, args.seconds, args.max_calls)
            with os.fdopen(write_fd, "w") as out:
                json.dump(result, out)
            os._exit(0)
        os.close(write_fd)
        pipes.append((pid, read_fd))
    results = []
    for pid, read_fd in pipes:
        with os.fdopen(read_fd) as source:
            results.append(json.load(source))
        os.waitpid(pid, 0)

    latencies = [x for r in results for x in r["latencies_s"]]
    calls = sum(r["calls"] for r in results)
    elapsed = max(r["elapsed_s"] for r in results)
    json.dump({
        "which": args.which,
        "procs": args.procs,
        "calls": calls,
        "elapsed_s": round(elapsed, 4),
        "rps": round(calls / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1e3, 4),
        "p99_ms": round(percentile(latencies, 99) * 1e3, 4),
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
