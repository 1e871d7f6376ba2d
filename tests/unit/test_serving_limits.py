"""Process limits at `serve` start (core/byoc/serving/limits.py): thread pools sized to
cpus // workers before numpy and friends are imported (user settings win), CPUs from the affinity
and the cgroup quota, and the open-file soft limit raised to the hard one."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support import REPO
from byoc.serving.limits import THREAD_VARIABLES, _cgroup_cpus, threads_per_worker

# An algorithm module that reports, at import (where cli.serve imports it), what numpy's and
# scikit-learn's thread pools really use.
PROBE = '''
import json, os, sys
import numpy, sklearn  # noqa: F401 - loads OpenBLAS and OpenMP
from threadpoolctl import threadpool_info
print(json.dumps({"pools": [p["num_threads"] for p in threadpool_info()],
                  "omp": os.environ.get("OMP_NUM_THREADS"), "nofile": __import__("resource").getrlimit(7)[0]}))
sys.exit(0)
'''


def _serve_probe(tmp_path, **env) -> dict:
    (tmp_path / "probe_algorithm.py").write_text(PROBE)
    clean = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    run = subprocess.run([sys.executable, "-c", "from byoc.cli import serve; serve()"], capture_output=True, text=True,
                         timeout=60, env={**clean, "PYTHONPATH": f"{REPO / 'core'}:{tmp_path}",
                                          "BYOC_ALGORITHM": "probe_algorithm", **env})
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_serve_limits_thread_pools_before_the_algorithm_is_imported(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    seen = _serve_probe(tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS=str(cpus))
    assert seen["omp"] == "1" and set(seen["pools"]) == {1}, seen  # was 2/2/2 with 2 CPUs


def test_one_worker_gets_every_cpu_and_a_user_setting_wins(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    assert set(_serve_probe(tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1")["pools"]) == {cpus}
    assert _serve_probe(tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1", OMP_NUM_THREADS="3")["omp"] == "3"


def test_serve_raises_the_open_file_soft_limit_to_the_hard_one(tmp_path):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no finite hard open-file limit here")
    seen = _serve_probe(tmp_path, SAGEMAKER_MODEL_SERVER_WORKERS="1")
    assert seen["nofile"] == hard


@pytest.mark.parametrize("workers, cpus, threads", [(1, 8, 8), (2, 8, 4), (3, 8, 2), (8, 8, 1), (16, 8, 1)])
def test_workers_times_threads_never_exceeds_the_cpus(workers, cpus, threads):
    assert threads_per_worker(workers, cpus) == threads


def test_cgroup_quota_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpus(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_cpus(v1) == 2
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _cgroup_cpus(v1) is None
