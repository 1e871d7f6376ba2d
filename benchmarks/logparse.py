"""Raw-log feature extraction benchmark: ours against Drain3 on the same input, in one run, and a whole
training job at full HDFS_v1 scale.

    .venv/bin/python -m benchmarks.logparse --gzip          # everything (about 4 minutes)
    .venv/bin/python -m benchmarks.logparse --no-job        # extraction only
    .venv/bin/python -m benchmarks.logparse --quick         # 20k-line prefix, 1M-line set: the harness works

Input: the full-scale set of benchmarks/make_hdfs_fullscale.py (made when missing): the real blocks
of ../shared/data/hdfs repeated under new block ids to HDFS_v1's 575,061 blocks and ~11.2M lines.

Extraction rows, each measured in its own fresh Python process (wall time, CPU time of the process
and its children, peak RSS of the largest of them), the fastest of --repeat runs:
- drain3: Drain3's TemplateMiner (the usual Python log parser, default settings) on each line's
  message after the HDFS header, plus the same per-block counting of its clusters; it is slow, so it
  runs on a prefix of the set (--prefix lines);
- regex: this image's previous path, count_events(): one anchored alternation regex per line;
- ours: rawlogs.count_files(), the training path: on the prefix in one process, then on the
  whole set (plain, and gzip with --gzip) with its default parallelism.
Drain3 finds its own templates while ours match the 30 known ones; both give one count vector
per block. Rates are lines per second of wall time, and per CPU second (steadier when the machine
is shared).

Job: `docker run IMAGE train` on the whole set as a raw-log train channel (default
hyperparameters); wall time from `docker run` to exit, and peak memory from the container's
cgroup, sampled every 50 ms: anonymous memory (rss, what the job holds; the page cache of the 1.5 GB
input is charged to the cgroup too and is reclaimable, so it is reported apart).
Results go to a table on stdout and to JSON (--json).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "benchmarks" / "results" / "logparse.json"
TARGETS = {"lines_per_s": 1_000_000, "job_seconds": 60, "job_peak_gb": 2.0}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# Measurements, each in a child process --------------------------------------------------------

def _paths() -> None:
    sys.path[:0] = [str(REPO / "core"), str(REPO / "containers" / "xgboost-hdfs")]


def measure_drain3(files: list[Path]):
    import logging
    import re
    from collections import Counter, defaultdict

    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    logging.getLogger("drain3").setLevel(logging.WARNING)
    miner = TemplateMiner(config=TemplateMinerConfig())
    block_id = re.compile(r"blk_-?\d+")

    def run() -> dict:
        counts: dict[str, Counter] = defaultdict(Counter)
        lines = 0
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    message = line.rstrip("\n").split(" ", 5)[-1]  # date time pid level component: message
                    cluster = miner.add_log_message(message)["cluster_id"]
                    for block in dict.fromkeys(block_id.findall(message)):
                        counts[block][cluster] += 1
                    lines += 1
        return {"lines": lines, "blocks": len(counts), "templates": len(miner.drain.clusters)}
    return run


def measure_regex(files: list[Path]):
    _paths()
    from byoc.training import open_text
    from xgboost_hdfs.logparse import BlockCounts, TemplateMatcher, count_events, numbered

    matcher = TemplateMatcher()

    def run() -> dict:
        counts = BlockCounts(feature_names=matcher.feature_names)
        for path in files:
            with open_text(path) as handle:
                count_events(numbered(path.name, handle), matcher, into=counts)
        return {"lines": counts.lines, "blocks": len(counts.counts), "templates": 30}
    return run


def measure_ours(files: list[Path], workers: int | None = None):
    _paths()
    from xgboost_hdfs.logparse import TemplateMatcher
    from xgboost_hdfs.rawlogs import count_files, parts_of, workers_for

    matcher = TemplateMatcher()

    def run() -> dict:
        counts = count_files(files, matcher, workers=workers)
        return {"lines": counts.lines, "blocks": counts.blocks, "templates": 30,
                "processes": workers or workers_for(parts_of(files))}
    return run


def _child(kind: str, files: list[Path], workers: int | None) -> None:
    """Run one measurement here (imports and set-up not timed); its JSON is the last line of stdout."""
    run = measure_ours(files, workers) if kind == "ours" else {"drain3": measure_drain3, "regex": measure_regex}[kind](files)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started, cpu = time.perf_counter(), time.process_time()
    result = run()
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - cpu + children.ru_utime + children.ru_stime
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children.ru_maxrss) * 1024
    print(json.dumps({**result, "seconds": wall, "cpu_seconds": cpu, "peak_rss_bytes": peak,
                      "rss_before_bytes": before.ru_maxrss * 1024}))


def run_measure(name: str, kind: str, files: list[Path], workers: int | None = None, repeat: int = 1) -> dict:
    """The fastest of `repeat` runs (the machine may be shared: the best run is the least disturbed)."""
    command = [sys.executable, "-m", "benchmarks.logparse", "--child", kind, *map(str, files)]
    if workers:
        command += ["--workers", str(workers)]
    log(f"{name}: {kind} on {', '.join(f.name for f in files)}, best of {repeat}")
    runs = []
    for _ in range(repeat):
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = min(runs, key=lambda run: run["seconds"])
    result.update(name=name, kind=kind, input=", ".join(f.name for f in files), runs_seconds=[r["seconds"] for r in runs],
                  input_bytes=sum(f.stat().st_size for f in files),
                  lines_per_s=result["lines"] / result["seconds"],
                  lines_per_cpu_s=result["lines"] / max(result["cpu_seconds"], 1e-9))
    log(f"{name}: {result['lines']:,} lines in {result['seconds']:.2f} s = {result['lines_per_s']:,.0f} lines/s")
    return result


def prefix_file(source: Path, lines: int) -> Path:
    target = source.with_name(f"prefix-{lines}.log")
    if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
        with open(source, "rb") as inp, open(str(target) + ".tmp", "wb") as out:
            for _, line in zip(range(lines), inp):
                out.write(line)
        os.replace(str(target) + ".tmp", target)
    return target


# The whole training job in Docker -------------------------------------------------------------

def _cgroup_dir(container_id: str) -> Path | None:
    for candidate in (f"/sys/fs/cgroup/memory/docker/{container_id}",
                      f"/sys/fs/cgroup/memory/system.slice/docker-{container_id}.scope",
                      f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope",
                      f"/sys/fs/cgroup/docker/{container_id}"):
        if Path(candidate).is_dir():
            return Path(candidate)
    return None


def _memory_sample(cgroup: Path) -> dict:
    """Anonymous memory (what the processes hold) and the total charged (with page cache)."""
    try:
        stat = dict(line.split() for line in (cgroup / "memory.stat").read_text().splitlines())
        if (cgroup / "memory.max_usage_in_bytes").exists():  # cgroup v1
            return {"anon": int(stat["total_rss"]), "charged_peak": int((cgroup / "memory.max_usage_in_bytes").read_text())}
        return {"anon": int(stat["anon"]), "charged_peak": int((cgroup / "memory.peak").read_text())}
    except (OSError, KeyError, ValueError):
        return {}


def job_tree(data: Path, root: Path) -> Path:
    """An /opt/ml tree whose train channel is the full-scale set (hard links, no copy)."""
    sys.path.insert(0, str(REPO / "examples"))
    import opt_ml

    if root.exists():
        shutil.rmtree(root)
    train = root / "input" / "data" / "train"
    train.mkdir(parents=True)
    for name in json.loads((data / "fullscale.json").read_text())["files"]:
        try:
            os.link(data / name, train / name)
        except OSError:
            shutil.copy2(data / name, train / name)
    opt_ml.write_config(root, channels=("train",))
    return root


def run_job(image: str, root: Path, timeout: float = 900) -> dict:
    name = f"bench-fullscale-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    subprocess.run(["docker", "run", "-d", "--name", name, "-v", f"{root}:/opt/ml", image, "train"],
                   check=True, capture_output=True)
    container_id = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True,
                                  text=True).stdout.strip()
    cgroup = _cgroup_dir(container_id)
    anon_peak, charged_peak, samples = 0, 0, 0
    try:
        while time.perf_counter() - started < timeout:
            sample = _memory_sample(cgroup) if cgroup else {}
            if sample:
                anon_peak = max(anon_peak, sample["anon"])
                charged_peak = max(charged_peak, sample["charged_peak"])
                samples += 1
            if not sample or samples % 20 == 0:  # gone, or once a second: still running?
                running = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name],
                                         capture_output=True, text=True).stdout.strip()
                if running != "true":
                    break
            time.sleep(0.05)
        exit_code = int(subprocess.run(["docker", "wait", name], capture_output=True, text=True,
                                       timeout=timeout).stdout.strip())
        wall = time.perf_counter() - started
        inspect = json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True).stdout)[0]
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    in_container = (_docker_time(inspect["State"]["FinishedAt"]) - _docker_time(inspect["State"]["StartedAt"]))
    output = logs.stdout + logs.stderr
    if exit_code:
        raise SystemExit(f"the training job failed ({exit_code}):\n{output[-3000:]}")
    evaluation = json.loads((root / "output" / "data" / "evaluation.json").read_text())
    extraction = json.loads((root / "output" / "data" / "extraction.json").read_text())
    return {"image": image, "seconds": wall, "seconds_in_container": in_container.total_seconds(),
            "peak_anon_bytes": anon_peak, "peak_charged_bytes": charged_peak, "memory_samples": samples,
            "memory_source": str(cgroup) if cgroup else None,
            "log": [line for line in output.splitlines()
                    if any(key in line for key in ("channel 'train'", "raw logs:", "training on", "[0]\t", "[99]", "saved"))],
            "lines": extraction["lines"], "blocks": extraction["blocks"],
            "train_roc_auc": evaluation.get("roc_auc"), "train_f1": evaluation.get("f1")}


def _docker_time(text: str) -> dt.datetime:
    head, _, frac = text.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(head) + dt.timedelta(seconds=float("0." + (frac or "0")))


# Report ---------------------------------------------------------------------------------------

def table(rows: list[dict], drain3: dict) -> str:
    out = [f"{'extractor':<26} {'input':<22} {'lines':>11} {'blocks':>8} {'s':>7} {'lines/s':>11} "
           f"{'x drain3':>9} {'lines/cpu-s':>12} {'peak RSS MB':>12}"]
    for r in rows:
        ratio = r["lines_per_s"] / drain3["lines_per_s"]
        out.append(f"{r['name']:<26} {r['input'][:22]:<22} {r['lines']:>11,} {r['blocks']:>8,} {r['seconds']:>7.2f} "
                   f"{r['lines_per_s']:>11,.0f} {ratio:>8.1f}x {r['lines_per_cpu_s']:>12,.0f} "
                   f"{r['peak_rss_bytes'] / 2**20:>12,.0f}")
    return "\n".join(out)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_bytes": memory, "python": platform.python_version(),
            "kernel": platform.release(), "load_average_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", type=int, default=200_000, help="lines for Drain3 and the same-prefix rows")
    parser.add_argument("--gzip", action="store_true", help="also ours on the gzip copy of the whole set")
    parser.add_argument("--no-job", action="store_true", help="skip the Docker training job")
    parser.add_argument("--image", default="xgboost-hdfs:latest", help="image for the training job")
    parser.add_argument("--quick", action="store_true", help="20k-line prefix and a 1M-line set")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each extraction row; the fastest counts")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.files, args.workers)
        return 0

    from benchmarks.make_hdfs_fullscale import FULL_BLOCKS, FULL_LINES, generate

    build = REPO / ".build"
    blocks, lines = (51_456, 1_000_000) if args.quick else (FULL_BLOCKS, FULL_LINES)
    prefix_lines = 20_000 if args.quick else args.prefix
    suffix = "-1m" if args.quick else ""
    data = build / f"hdfs-fullscale{suffix}"
    summary = generate(data, blocks, lines)
    whole = data / summary["files"][0]
    prefix = prefix_file(whole, prefix_lines)
    report = {"schema": 1, "when": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "dataset": summary, "targets": TARGETS, "quick": args.quick}

    n = 1 if args.quick else args.repeat
    rows = [run_measure("drain3 (1 process)", "drain3", [prefix], repeat=n),
            run_measure("regex, before (1 process)", "regex", [prefix], repeat=n),
            run_measure("ours (1 process)", "ours", [prefix], workers=1, repeat=n),
            run_measure("ours (1 process)", "ours", [whole], workers=1, repeat=n),
            run_measure("ours (default)", "ours", [whole], repeat=n)]
    if args.gzip:
        gz = generate(build / f"hdfs-fullscale{suffix}-gz", blocks, lines, compress=True)
        rows.append(run_measure("ours (default)", "ours", [build / f"hdfs-fullscale{suffix}-gz" / gz["files"][0]],
                                repeat=n))
    report["extraction"] = rows
    print(table(rows, rows[0]))

    if not args.no_job:
        root = job_tree(data, build / f"fullscale-job{suffix}")
        log(f"training job: docker run {args.image} train on {summary['lines']:,} lines")
        job = run_job(args.image, root)
        report["job"] = job
        print(f"\ntraining job ({args.image}, {job['lines']:,} lines, {job['blocks']:,} blocks, default "
              f"hyperparameters): {job['seconds']:.1f} s wall ({job['seconds_in_container']:.1f} s in the "
              f"container), peak anonymous memory {job['peak_anon_bytes'] / 2**30:.2f} GiB "
              f"(cgroup peak with page cache {job['peak_charged_bytes'] / 2**30:.2f} GiB); "
              f"targets < {TARGETS['job_seconds']} s, < {TARGETS['job_peak_gb']} GB")
    report["machine"]["load_average_at_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
