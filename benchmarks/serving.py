"""Serving benchmark: this project's server against an AWS-style reference, in one run.

    .venv/bin/python -m benchmarks.serving                 # the full run (about 4 minutes)
    .venv/bin/python -m benchmarks.serving --quick         # one cell, 1 s: proves the harness works
    .venv/bin/python -m benchmarks.serving --help

Everything runs in the same image (default xgboost-hdfs:latest) on this machine:

- ours: `docker run IMAGE serve` (the ASGI app under gunicorn's uvicorn worker, settings from
  core/byoc/serving/server.py);
- variants of ours with other gunicorn settings (--variant), started through the same serve();
- reference: benchmarks/reference/app.py (flask, gunicorn sync workers, numpy.loadtxt,
  inplace_predict) started with the image's own /opt/venv/bin/gunicorn, the same worker count.
  The images carry no flask: its pins (benchmarks/reference/requirements.txt) are installed on
  the host into WORKDIR/reference-site, which is mounted into the reference's container;
- in-process: parse + predict + format with no HTTP (benchmarks/inprocess.py), run with
  `docker exec` in our server's container, for ours and for the reference's code.

Load comes from wrk (Debian package `wrk`) with benchmarks/post.lua, bounded in time and count.
When run as root, wrk runs in the server container's network namespace (nsenter) and talks to
127.0.0.1:8080 on that loopback: no docker-proxy between client and server, whose per-connection
cost would otherwise dominate sync workers. Without root it uses the container's bridge address.
Payloads are real HDFS feature rows (examples/opt_ml.py hdfs-csv); the model is trained on them
with the image's own `train`. Real payloads repeat rows (1,000 blocks: 21 distinct rows), which our
server exploits (codecs.Distinct), so a third payload, 1000-distinct, makes every row distinct (the
last count of each real row raised by the row's number) to show the worst case; it has no target. The result is printed as a table and written as JSON.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
DEFAULT_JSON = BENCH / "results" / "serving.json"
SCHEMA = 1
PORT = 8080
CONTENT_TYPE = "text/csv"

# Alternatives to our default gunicorn settings, measured side by side with --variant NAME
# (or --variant NAME='{"gunicorn": "settings"}'). They go through serve()'s overrides.
PRESETS = {
    # uvicorn's pure-Python parser (h11) on the standard asyncio loop: what uvloop and httptools buy
    "h11": {"worker_class": "uvicorn_worker.UvicornH11Worker"},
}
REFERENCE_REQUIREMENTS = BENCH / "reference" / "requirements.txt"
REFERENCE_SITE = "/opt/reference-site"  # where the reference's flask is mounted
LAUNCH_VARIANT = ("import json, sys; from byoc.cli import algorithm; from byoc.serving.server import serve; "
                  "serve(algorithm().Runtime, json.loads(sys.argv[1]))")

TARGETS = {
    "single_row_throughput_ratio": 2.0,    # ours / reference requests/s, 1-row payload, every concurrency
    "thousand_row_throughput_ratio": 3.0,  # the same for 1,000 rows
    "cold_start_to_prediction_s": 1.5,     # ours, median
    "image_size_mb": 450.0,                # each image
}
PAYLOADS = {"1": 1, "1000": 1000, "1000-distinct": 1000}  # name -> rows


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Machine, images ------------------------------------------------------------------------------

def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line)
    docker = run(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip()
    wrk = run(["wrk", "--version"]).stdout.splitlines()
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_mb": int(meminfo.get("MemTotal", "0 kB").split()[0]) // 1024,
        "kernel": platform.release(),
        "docker": docker,
        "load_generator": wrk[0].split(" [")[0] if wrk else "wrk",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def image_sizes(images: list[str]) -> dict:
    sizes = {}
    for image in images:
        found = run(["docker", "image", "inspect", "-f", "{{.Size}}", image])
        if found.returncode != 0:
            continue
        size = int(found.stdout.strip())
        shown = run(["docker", "image", "ls", "--format", "{{.Size}}", image]).stdout.strip()
        sizes[image] = {"bytes": size, "mb": round(size / 1e6, 1), "docker_image_ls": shown}
    return sizes


# Model and payloads ---------------------------------------------------------------------------

def prepare(workdir: Path, image: str, model_dir: Path | None) -> tuple[Path, dict[int, Path]]:
    """The model (trained once, then reused from workdir) and the payload files."""
    ml = workdir / "opt_ml"
    features = ml / "input" / "data" / "validation" / "features.csv"
    if not features.exists():
        log(f"making the HDFS feature tree in {ml} (examples/opt_ml.py hdfs-csv)")
        made = run([sys.executable, str(REPO / "examples" / "opt_ml.py"), "hdfs-csv", str(ml)])
        if made.returncode != 0:
            sys.exit(f"examples/opt_ml.py hdfs-csv failed:\n{made.stdout}{made.stderr}")
    if model_dir is None:
        model_dir = ml / "model"
        if not (model_dir / "xgboost-model").exists():
            log(f"training the model with `docker run {image} train`")
            trained = run(["docker", "run", "--rm", "-v", f"{ml}:/opt/ml", image, "train"])
            if trained.returncode != 0:
                sys.exit(f"training failed:\n{trained.stdout[-2000:]}{trained.stderr[-2000:]}")
    reference_site(workdir / "reference-site")
    rows = [line.split(",", 1)[1] for line in features.read_text().splitlines() if line.strip()]
    if len(rows) < 1000:
        sys.exit(f"{features} has {len(rows)} rows; 1000 are needed")
    distinct = []
    for index, row in enumerate(rows[:1000]):
        cells = row.split(",")
        cells[-1] = str(int(float(cells[-1])) + index)
        distinct.append(",".join(cells))
    texts = {"1": rows[:1], "1000": rows[:1000], "1000-distinct": distinct}
    payloads = {}
    (workdir / "payloads").mkdir(parents=True, exist_ok=True)
    for name, lines in texts.items():
        payloads[name] = workdir / "payloads" / f"rows-{name}.csv"
        payloads[name].write_text("".join(f"{line}\n" for line in lines))
    return model_dir.resolve(), payloads


def reference_site(site: Path) -> None:
    """The reference's flask, installed on the host once per version of its pins (pure Python but
    markupsafe's optional speedups, built for CPython 3.11 as in the images)."""
    stamp, wanted = site / ".requirements", REFERENCE_REQUIREMENTS.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    log(f"installing the reference's flask into {site} ({REFERENCE_REQUIREMENTS.relative_to(REPO)})")
    shutil.rmtree(site, ignore_errors=True)
    made = run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                "--platform", "manylinux2014_x86_64", "--target", str(site), "-r", str(REFERENCE_REQUIREMENTS)])
    if made.returncode != 0:
        sys.exit(f"could not install the reference's flask:\n{made.stdout}{made.stderr}")
    stamp.write_text(wanted)


# Servers --------------------------------------------------------------------------------------

@dataclass
class ServerSpec:
    name: str
    command: list[str]
    env: dict = field(default_factory=dict)
    description: str = ""


def server_specs(workers: int, variants: dict[str, dict]) -> list[ServerSpec]:
    ours_env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
    specs = [ServerSpec("ours", ["serve"], ours_env, "this project's server, default settings (server.py)")]
    for name, overrides in variants.items():
        specs.append(ServerSpec(name, ["python", "-c", LAUNCH_VARIANT, json.dumps(overrides)], ours_env,
                                f"this project's server with gunicorn settings {json.dumps(overrides)}"))
    specs.append(ServerSpec(
        "reference",
        ["/opt/venv/bin/gunicorn", "--worker-class", "sync", "--workers", str(workers), "--timeout", "60",
         "--bind", f"0.0.0.0:{PORT}", "--chdir", "/opt/benchmarks/reference", "app:app"],
        {"OMP_NUM_THREADS": "1", "PYTHONPATH": REFERENCE_SITE},
        "benchmarks/reference/app.py: flask, gunicorn sync workers, numpy.loadtxt, inplace_predict"))
    return specs


class Container:
    """One server container: `docker run -d -p 127.0.0.1:PORT:8080 ...`, removed on stop()."""

    def __init__(self, spec: ServerSpec, image: str, model_dir: Path, payload_dir: Path):
        self.spec, self.port = spec, free_port()
        site = payload_dir.parent / "reference-site"
        self.name = f"byoc-bench-{spec.name}-{uuid.uuid4().hex[:6]}"
        command = ["docker", "run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:{PORT}",
                   "-v", f"{model_dir}:/opt/ml/model:ro", "-v", f"{BENCH}:/opt/benchmarks:ro",
                   "-v", f"{payload_dir}:/opt/payloads:ro", "-v", f"{site}:{REFERENCE_SITE}:ro"]
        for key, value in spec.env.items():
            command += ["-e", f"{key}={value}"]
        self.command = command + [image, *spec.command]
        self.started = False

    def start(self) -> float:
        """Starts the container; returns the time `docker run -d` took."""
        began = time.monotonic()
        result = run(self.command)
        if result.returncode != 0:
            raise RuntimeError(f"docker run failed for {self.spec.name}: {result.stderr.strip()}")
        self.started = True
        return time.monotonic() - began

    def inspect(self, template: str) -> str:
        return run(["docker", "inspect", "-f", template, self.name]).stdout.strip()

    def logs(self) -> str:
        out = run(["docker", "logs", "--tail", "40", self.name])
        return out.stdout + out.stderr

    def stop(self) -> None:
        if self.started:
            run(["docker", "rm", "-f", self.name])
            self.started = False

    # HTTP through the published loopback port (what a user's curl sees) -----------------------
    def request(self, method: str, path: str, body: bytes | None = None, timeout: float = 5.0):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": CONTENT_TYPE} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.005) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            try:
                if self.request("GET", "/ping", timeout=1.0)[0] == 200:
                    return time.monotonic() - began
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(interval)
        raise RuntimeError(f"{self.spec.name} did not answer /ping within {timeout} s:\n{self.logs()}")

    # Memory of all the container's processes -------------------------------------------------
    def memory(self) -> dict:
        """PSS and RSS summed over the container's processes (host /proc, needs root), and the
        cgroup's total (page cache included); `docker stats` when /proc cannot be read."""
        pid = self.inspect("{{.State.Pid}}")
        try:
            cgroup_dir = _memory_cgroup_dir(int(pid))
            pids = [int(p) for p in (cgroup_dir / "cgroup.procs").read_text().split()]
            pss = rss = 0
            for p in pids:
                try:
                    rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
                except FileNotFoundError:
                    continue
                fields = dict(line.split(":", 1) for line in rollup.splitlines()[1:] if ":" in line)
                pss += int(fields["Pss"].split()[0])
                rss += int(fields["Rss"].split()[0])
            usage_file = cgroup_dir / ("memory.current" if (cgroup_dir / "memory.current").exists()
                                       else "memory.usage_in_bytes")
            cgroup = int(usage_file.read_text())
            return {"pss_mb": round(pss / 1024, 1), "rss_sum_mb": round(rss / 1024, 1),
                    "cgroup_mb": round(cgroup / 2**20, 1), "processes": len(pids), "source": "proc"}
        except (OSError, ValueError, KeyError):
            usage = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", self.name]).stdout
            return {"docker_stats_mb": _mib(usage.split("/")[0]), "source": "docker stats"}


def _memory_cgroup_dir(pid: int) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    raise OSError(f"no memory cgroup for pid {pid}")


def _mib(text: str) -> float:
    text = text.strip()
    units = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "kB": 1 / 1024, "MB": 1, "GB": 1024, "B": 1 / 2**20}
    for unit, factor in units.items():
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * factor, 1)
    return float("nan")


# Load generation ------------------------------------------------------------------------------

def load_path() -> str:
    return "netns" if os.geteuid() == 0 and shutil.which("nsenter") else "bridge"


def wrk(container: Container, payload: Path, concurrency: int, seconds: float, max_requests: int,
        path: str) -> dict:
    return wrk_load(container.name, container.port, payload, concurrency, seconds, max_requests, path)


def wrk_load(name: str, published_port: int, payload: Path, concurrency: int, seconds: float, max_requests: int,
             path: str, content_type: str = CONTENT_TYPE) -> dict:
    """wrk against the container `name` (also used by tests/container/test_soak.py), bounded in time and count."""
    def inspect(template: str) -> str:
        return run(["docker", "inspect", "-f", template, name]).stdout.strip()

    if path == "netns":
        prefix, url = ["nsenter", "-t", inspect("{{.State.Pid}}"), "-n"], f"http://127.0.0.1:{PORT}"
    elif path == "bridge":
        ip = inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
        prefix, url = [], f"http://{ip}:{PORT}"
    else:
        prefix, url = [], f"http://127.0.0.1:{published_port}"
    command = prefix + ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, math.ceil(seconds))}s", "--timeout", "10s",
                        "-s", str(BENCH / "post.lua"), f"{url}/invocations"]
    env = dict(os.environ, BODY=str(payload), CONTENT_TYPE=content_type,
               MAX_REQUESTS=str(max(1, max_requests)))
    result = run(command, env=env, timeout=seconds + 60)
    line = next((l for l in result.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({' '.join(command)}):\n{result.stdout}\n{result.stderr}")
    raw = json.loads(line[len("BENCH_JSON "):])
    answered = raw["ok"] + raw["bad"]
    errors = raw["bad"] + raw["errors"]["connect"] + raw["errors"]["read"] + raw["errors"]["write"] + raw["errors"]["timeout"]
    return {
        "requests": answered,
        "rps": round(answered / raw["elapsed_s"], 1) if raw["elapsed_s"] > 0 else 0.0,
        "p50_ms": raw["latency_us"]["p50"] / 1e3,
        "p99_ms": raw["latency_us"]["p99"] / 1e3,
        "errors": errors,
        "first_bad_status": raw["first_bad_status"],
        "elapsed_s": raw["elapsed_s"],
    }


class MemorySampler:
    """Samples a container's memory every 0.5 s while a load cell runs; keeps the peak PSS."""

    def __init__(self, container: Container):
        self.container, self.peak, self._stop = container, None, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _key(self, sample: dict) -> float:
        return sample.get("pss_mb", sample.get("docker_stats_mb", 0.0))

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            sample = self.container.memory()
            if self.peak is None or self._key(sample) > self._key(self.peak):
                self.peak = sample

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# In-process limit -----------------------------------------------------------------------------

def in_process(container: Container, which: str, payload: str, procs: int, seconds: float,
               max_calls: int) -> dict:
    result = run(["docker", "exec", "-e", "OMP_NUM_THREADS=1", "-e", f"PYTHONPATH={REFERENCE_SITE}:/opt/program",
                  container.name, "python",
                  "/opt/benchmarks/inprocess.py", "--which", which, "--payload",
                  f"/opt/payloads/rows-{payload}.csv", "--seconds", str(seconds), "--procs", str(procs),
                  "--max-calls", str(max_calls)], timeout=seconds + 120)
    if result.returncode != 0:
        raise RuntimeError(f"in-process run failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def expected_output(container: Container, payload: str) -> bytes:
    result = run(["docker", "exec", container.name, "python", "/opt/benchmarks/inprocess.py", "--which", "ours",
                  "--payload", f"/opt/payloads/rows-{payload}.csv", "--print-output"], timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"could not compute the expected output:\n{result.stderr}")
    return result.stdout.encode()


def same_scores(answer: bytes, expected: bytes) -> bool:
    try:
        got = [float(line) for line in answer.decode().split()]
        want = [float(line) for line in expected.decode().split()]
    except ValueError:
        return False
    return len(got) == len(want) and all(math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-7) for g, w in zip(got, want))


# Cold start -----------------------------------------------------------------------------------

def cold_start(spec: ServerSpec, image: str, model_dir: Path, payload_dir: Path, body: bytes,
               expected: bytes) -> dict:
    """Seconds from `docker run` to the first 200 on /ping and to the first correct prediction."""
    container = Container(spec, image, model_dir, payload_dir)
    try:
        began = time.monotonic()
        docker_run = container.start()
        container.wait_ready()
        ping = time.monotonic() - began
        while True:
            try:
                status, answer = container.request("POST", "/invocations", body)
                if status == 200 and same_scores(answer, expected):
                    break
                if status == 200:
                    raise RuntimeError(f"{spec.name} answered a wrong prediction: {answer[:200]!r}")
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() - began > 60:
                raise RuntimeError(f"{spec.name}: no correct prediction within 60 s:\n{container.logs()}")
            time.sleep(0.005)
        prediction = time.monotonic() - began
        return {"docker_run_s": round(docker_run, 3), "ping_s": round(ping, 3), "prediction_s": round(prediction, 3)}
    finally:
        container.stop()


# The run --------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving",
                                     description="Serving benchmark: ours vs an AWS-style reference vs in-process.")
    parser.add_argument("--image", default="xgboost-hdfs:latest", help="image to benchmark (default: %(default)s)")
    parser.add_argument("--size-images", default="xgboost-hdfs:latest,sklearn-cpu:latest",
                        help="images whose size is reported (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=REPO / ".build" / "benchmark",
                        help="data, model and payloads (made once, then reused; default: %(default)s)")
    parser.add_argument("--model-dir", type=Path, help="serve this model directory instead of training one")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes, the same for every server (default: CPU count, %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per load cell (default: %(default)s)")
    parser.add_argument("--max-requests", type=int, default=50_000, help="requests per load cell at most (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times each cell runs, servers interleaved; medians are reported (default: %(default)s)")
    parser.add_argument("--payloads", default=",".join(PAYLOADS), help=f"payloads, of {list(PAYLOADS)} (default: %(default)s)")
    parser.add_argument("--concurrency", default="1,8", help="open connections (default: %(default)s)")
    parser.add_argument("--cold-starts", type=int, default=3, help="cold starts per server (default: %(default)s)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME[=JSON]",
                        help=f"also run ours with other gunicorn settings: a preset ({', '.join(PRESETS)}) "
                             "or NAME='{\"worker_class\": ...}'; repeatable")
    parser.add_argument("--load-path", choices=("auto", "netns", "bridge", "published"), default="auto",
                        help="how wrk reaches the servers (default: netns as root, else bridge)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="result file (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: 1 row, concurrency 1, 1 s, one round, one cold start")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.cold_starts = 1.0, 1, 1
        args.payloads, args.concurrency, args.max_requests = "1", "1", 5_000
    args.payload_names = args.payloads.split(",")
    args.concurrencies = [int(x) for x in args.concurrency.split(",")]
    if any(x not in PAYLOADS for x in args.payload_names):
        parser.error(f"--payloads: of {', '.join(PAYLOADS)}")
    variants = {}
    for item in args.variant:
        name, sep, value = item.partition("=")
        if sep:
            variants[name] = json.loads(value)
        elif name in PRESETS:
            variants[name] = PRESETS[name]
        else:
            parser.error(f"--variant {name}: not a preset ({', '.join(PRESETS)}); give NAME=JSON")
    if {"ours", "reference"} & set(variants):
        parser.error("--variant: 'ours' and 'reference' are taken")
    args.variants = variants
    return args


def preflight() -> None:
    missing = [tool for tool in ("docker", "wrk") if not shutil.which(tool)]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (Debian: apt-get install -y {' '.join(missing)}; .ci/run installs wrk)")
    if run(["docker", "info"]).returncode != 0:
        sys.exit("no Docker engine reachable")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    preflight()
    if run(["docker", "image", "inspect", args.image]).returncode != 0:
        sys.exit(f"image {args.image} not found: build it with ./build.sh {args.image.split(':')[0]}")
    path = load_path() if args.load_path == "auto" else args.load_path
    result: dict = {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "machine": machine(),
        "settings": {
            "image": args.image, "workers": args.workers, "seconds_per_cell": args.seconds,
            "max_requests_per_cell": args.max_requests, "rounds": args.rounds, "load_path": path,
            "payloads": args.payload_names, "concurrency": args.concurrencies, "quick": args.quick,
            "content_type": CONTENT_TYPE,
        },
        "images": image_sizes([i for i in args.size_images.split(",") if i]),
    }
    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir, payloads = prepare(args.workdir.resolve(), args.image, args.model_dir)
    payload_dir = payloads["1"].parent
    specs = server_specs(args.workers, args.variants)
    result["servers"] = {s.name: {"description": s.description, "command": s.command, "env": s.env} for s in specs}

    containers: list[Container] = []
    try:
        # Expected answers, from our runtime in process (a throwaway container of the image).
        probe = Container(specs[0], args.image, model_dir, payload_dir)
        containers.append(probe)
        probe.start()
        probe.wait_ready()
        expected = {name: expected_output(probe, name) for name in PAYLOADS}
        probe.stop()

        # Cold starts first, while no other server of ours runs.
        result["cold_start"] = {}
        for spec in (s for s in specs if s.name in ("ours", "reference")):
            runs = []
            for attempt in range(args.cold_starts):
                runs.append(cold_start(spec, args.image, model_dir, payload_dir, payloads["1"].read_bytes(), expected["1"]))
                log(f"cold start {spec.name} #{attempt + 1}: /ping {runs[-1]['ping_s']} s, "
                    f"prediction {runs[-1]['prediction_s']} s")
            result["cold_start"][spec.name] = {
                "runs": runs,
                "median_ping_s": round(statistics.median(r["ping_s"] for r in runs), 3),
                "median_prediction_s": round(statistics.median(r["prediction_s"] for r in runs), 3),
                "median_docker_run_s": round(statistics.median(r["docker_run_s"] for r in runs), 3),
            }

        # Every server up at once (idle ones cost nothing); cells interleave them.
        servers = {s.name: Container(s, args.image, model_dir, payload_dir) for s in specs}
        containers.extend(servers.values())
        for container in servers.values():
            container.start()
        for name, container in servers.items():
            container.wait_ready()
            for payload in args.payload_names:
                status, answer = container.request("POST", "/invocations", payloads[payload].read_bytes(), timeout=30)
                if status != 200 or not same_scores(answer, expected[payload]):
                    raise RuntimeError(f"{name} answers payload {payload} wrongly: {status} {answer[:200]!r}")
        time.sleep(1.0)
        result["memory"] = {name: {"idle": c.memory()} for name, c in servers.items()}

        log("in-process limit (docker exec in our server's container)")
        result["in_process"] = []
        for payload in args.payload_names:
            for concurrency in args.concurrencies:
                procs = min(concurrency, args.workers)
                for which in ("ours", "reference"):
                    measured = in_process(servers["ours"], which, payload, procs, args.seconds, args.max_requests)
                    result["in_process"].append({"payload": payload, "concurrency": concurrency, **measured})
                    log(f"in-process {which:9} {payload:>13} x{procs}: {measured['rps']:>8.1f}/s "
                        f"p50 {measured['p50_ms']:.3f} ms")

        log(f"load: wrk via {path}, {args.seconds} s per cell, {args.rounds} round(s)")
        samples: dict[tuple, list[dict]] = {}
        names = list(servers)
        for round_number in range(args.rounds):
            order = names[round_number % len(names):] + names[:round_number % len(names)]
            for payload in args.payload_names:
                for concurrency in args.concurrencies:
                    for name in order:
                        with MemorySampler(servers[name]) as sampler:
                            cell = wrk(servers[name], payloads[payload], concurrency, args.seconds, args.max_requests, path)
                        samples.setdefault((name, payload, concurrency), []).append(cell)
                        peak = result["memory"][name].get("load")
                        if sampler.peak and (peak is None or sampler._key(sampler.peak) > sampler._key(peak)):
                            result["memory"][name]["load"] = sampler.peak
                        log(f"round {round_number + 1} {name:10} {payload:>13} c{concurrency}: "
                            f"{cell['rps']:>8.1f}/s p50 {cell['p50_ms']:.2f} ms p99 {cell['p99_ms']:.2f} ms"
                            f"{'  ERRORS ' + str(cell['errors']) if cell['errors'] else ''}")
        for name, container in servers.items():
            if "load" not in result["memory"][name]:
                result["memory"][name]["load"] = container.memory()
    finally:
        for container in containers:
            container.stop()

    result["cells"] = []
    for (name, payload, concurrency), cells in samples.items():
        result["cells"].append({
            "server": name, "payload": payload, "concurrency": concurrency,
            "rps": round(statistics.median(c["rps"] for c in cells), 1),
            "p50_ms": round(statistics.median(c["p50_ms"] for c in cells), 3),
            "p99_ms": round(statistics.median(c["p99_ms"] for c in cells), 3),
            "requests": sum(c["requests"] for c in cells),
            "errors": sum(c["errors"] for c in cells),
            "rounds": cells,
        })
    result["ratios"] = ratios(result)
    result["targets"] = targets(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    log(f"wrote {args.json}")
    return result


def _cell(result: dict, server: str, payload: str, concurrency: int) -> dict | None:
    return next((c for c in result["cells"] if c["server"] == server and c["payload"] == payload
                 and c["concurrency"] == concurrency), None)


def ratios(result: dict) -> list[dict]:
    """Every server's throughput and latency over the reference's, per cell (ours/reference).

    The throughput ratio is the median over rounds of each round's ratio: within a round the
    servers run the cell one right after the other, so load from other work on the machine
    affects both sides of a ratio much more alike than it affects two medians.
    """
    out = []
    for cell in result["cells"]:
        if cell["server"] == "reference":
            continue
        reference = _cell(result, "reference", cell["payload"], cell["concurrency"])
        limit = next((x for x in result["in_process"] if x["which"] == "ours"
                      and x["payload"] == cell["payload"] and x["concurrency"] == cell["concurrency"]), None)
        per_round = [mine["rps"] / theirs["rps"] for mine, theirs in zip(cell["rounds"], reference["rounds"] if reference else [])
                     if theirs["rps"]]
        out.append({
            "server": cell["server"], "payload": cell["payload"], "concurrency": cell["concurrency"],
            "throughput_ratio": round(statistics.median(per_round), 2) if per_round else None,
            "throughput_ratio_per_round": [round(x, 2) for x in per_round],
            "p50_ratio": round(cell["p50_ms"] / reference["p50_ms"], 2) if reference and reference["p50_ms"] else None,
            "p99_ratio": round(cell["p99_ms"] / reference["p99_ms"], 2) if reference and reference["p99_ms"] else None,
            "share_of_in_process_limit": round(cell["rps"] / limit["rps"], 2) if limit and limit["rps"] else None,
        })
    return out


def targets(result: dict) -> dict:
    def worst(payload: str) -> float | None:
        values = [r["throughput_ratio"] for r in result["ratios"]
                  if r["server"] == "ours" and r["payload"] == payload and r["throughput_ratio"] is not None]
        return min(values) if values else None

    out = {}
    for key, payload in (("single_row_throughput_ratio", "1"), ("thousand_row_throughput_ratio", "1000")):
        measured = worst(payload)
        out[key] = {"target": f">= {TARGETS[key]}", "measured": measured,
                    "met": None if measured is None else measured >= TARGETS[key]}
    cold = result["cold_start"].get("ours", {}).get("median_prediction_s")
    out["cold_start_to_prediction_s"] = {"target": f"< {TARGETS['cold_start_to_prediction_s']}", "measured": cold,
                                         "met": None if cold is None else cold < TARGETS["cold_start_to_prediction_s"]}
    for image, size in result["images"].items():
        out[f"image_size_mb:{image}"] = {"target": f"< {TARGETS['image_size_mb']}", "measured": size["mb"],
                                         "met": size["mb"] < TARGETS["image_size_mb"]}
    return out


def table(result: dict) -> str:
    m = result["machine"]
    lines = [f"Serving benchmark, {result['created']}: {result['settings']['image']}, "
             f"{result['settings']['workers']} workers each, wrk via {result['settings']['load_path']}, "
             f"{result['settings']['seconds_per_cell']} s x {result['settings']['rounds']} round(s) per cell (medians)",
             f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_mb']} MB, load average at start "
             f"{m['load_average_at_start'][0]}", ""]
    servers = [s for s in result["servers"] if s != "reference"]
    header = "| payload | conc | server | req/s | p50 ms | p99 ms | reference req/s | p50 ms | p99 ms | ratio (req/s) | in-process req/s |"
    lines += [header, "|---" * (header.count("|") - 1) + "|"]
    for payload in result["settings"]["payloads"]:
        for concurrency in result["settings"]["concurrency"]:
            reference = _cell(result, "reference", payload, concurrency)
            limit = next((x for x in result["in_process"] if x["which"] == "ours"
                          and x["payload"] == payload and x["concurrency"] == concurrency), None)
            for server in servers:
                cell = _cell(result, server, payload, concurrency)
                ratio = next(r for r in result["ratios"] if r["server"] == server and r["payload"] == payload
                             and r["concurrency"] == concurrency)
                lines.append(
                    f"| {payload} | {concurrency} | {server} | {cell['rps']:.0f} | {cell['p50_ms']:.2f} | {cell['p99_ms']:.2f} "
                    f"| {reference['rps']:.0f} | {reference['p50_ms']:.2f} | {reference['p99_ms']:.2f} "
                    f"| **{ratio['throughput_ratio']:.2f}x** | {limit['rps']:.0f} |")
    lines += ["", "In-process limit (no HTTP; forked processes = min(concurrency, workers)):", "",
              "| payload | procs | ours req/s | ours p50 ms | reference code req/s | reference p50 ms |", "|---|---|---|---|---|---|"]
    for payload in result["settings"]["payloads"]:
        for concurrency in result["settings"]["concurrency"]:
            pair = {x["which"]: x for x in result["in_process"] if x["payload"] == payload and x["concurrency"] == concurrency}
            lines.append(f"| {payload} | {pair['ours']['procs']} | {pair['ours']['rps']:.0f} | {pair['ours']['p50_ms']:.3f} "
                         f"| {pair['reference']['rps']:.0f} | {pair['reference']['p50_ms']:.3f} |")
    lines += ["", "| cold start (median of runs) | docker run returns | first 200 on /ping | first correct prediction |",
              "|---|---|---|---|"]
    for name, cold in result["cold_start"].items():
        lines.append(f"| {name} | {cold['median_docker_run_s']:.2f} s | {cold['median_ping_s']:.2f} s "
                     f"| {cold['median_prediction_s']:.2f} s |")
    lines += ["", "| memory, all processes (PSS) | idle | under load (peak) |", "|---|---|---|"]
    for name, memory in result["memory"].items():
        def show(sample: dict) -> str:
            if "pss_mb" in sample:
                return f"{sample['pss_mb']:.0f} MB ({sample['processes']} processes; cgroup {sample['cgroup_mb']:.0f} MB)"
            return f"{sample['docker_stats_mb']:.0f} MB (docker stats)"
        lines.append(f"| {name} | {show(memory['idle'])} | {show(memory['load'])} |")
    lines += ["", "| image | size |", "|---|---|"]
    for image, size in result["images"].items():
        lines.append(f"| {image} | {size['mb']:.0f} MB ({size['docker_image_ls']}) |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for key, target in result["targets"].items():
        lines.append(f"| {key} {target['target']} | {target['measured']} | {'not measured' if target['met'] is None else 'yes' if target['met'] else 'no'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
