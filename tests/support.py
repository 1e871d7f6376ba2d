"""Test support: paths, the real data, and Docker helpers (build through build.sh, run jobs and servers)."""
from __future__ import annotations

import hashlib
import os
import signal
import sys
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
for _path in (REPO / "core", REPO / "containers" / "xgboost-hdfs", REPO / "containers" / "sklearn-cpu", REPO / "examples"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
TAG = os.environ.get("BYOC_TEST_TAG", "latest")


def engine_problem() -> str | None:
    if not shutil.which("docker"):
        return "no docker command on PATH"
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"no Docker engine reachable: {probe.stderr.strip()[:200]}"


def build(image: str) -> str:
    """Build through the project's own build.sh, as a user would; returns the image reference."""
    result = subprocess.run([str(REPO / "build.sh"), "--tag", TAG, image], cwd=REPO,
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"./build.sh {image} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return f"{image}:{TAG}"


def run_job(image: str, ml_root: Path, *args: str, env: dict | None = None, timeout: int = 600,
            volumes: dict | None = None, host_network: bool = False, docker_args: tuple = ()):
    """`docker run IMAGE train` with ml_root as /opt/ml; returns the CompletedProcess.
    host_network: the container shares the host's loopback (to reach a test server on 127.0.0.1).
    docker_args: more `docker run` options, such as ("--memory", "300m")."""
    command = ["docker", "run", "--rm", "-v", f"{ml_root}:/opt/ml", *docker_args] + (["--network", "host"] if host_network else [])
    for host, container in (volumes or {}).items():
        command += ["-v", f"{host}:{container}:ro"]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    return subprocess.run(command + [image, *args], capture_output=True, text=True, timeout=timeout)


class Server:
    """`docker run IMAGE serve` on a loopback port; the container is removed on exit."""

    def __init__(self, image: str, model_dir: Path, env: dict | None = None, port: int = 8080,
                 volumes: dict | None = None, docker_args: tuple = ()):
        self.image, self.model_dir, self.env, self.port = image, model_dir, env or {}, port
        self.volumes, self.docker_args = volumes or {}, list(docker_args)
        self.name = f"byoc-test-{uuid.uuid4().hex[:8]}"
        self.url = ""

    def __enter__(self) -> "Server":
        command = ["docker", "run", "-d", "--name", self.name, "-p", f"127.0.0.1::{self.port}",
                   "-v", f"{self.model_dir}:/opt/ml/model:ro", *self.docker_args]
        for key, value in self.env.items():
            command += ["-e", f"{key}={value}"]
        for host, container in self.volumes.items():
            command += ["-v", f"{host}:{container}:ro"]
        subprocess.run(command + [self.image, "serve"], check=True, capture_output=True)
        try:  # __exit__ does not run when __enter__ fails: a server that never got ready is removed here
            mapped = subprocess.run(["docker", "port", self.name, f"{self.port}/tcp"], capture_output=True,
                                    text=True, check=True).stdout.split()[0]
            self.url = f"http://{mapped}"
            self.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if not self.running():
                break
            time.sleep(0.2)
        raise AssertionError(f"server did not become ready:\n{self.logs()}")

    def running(self) -> bool:
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", self.name],
                               capture_output=True, text=True)
        return state.stdout.strip() == "true"

    def logs(self) -> str:
        out = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return out.stdout + out.stderr

    def post(self, body, content_type: str | None, accept: str | None = None, **kwargs):
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        return requests.post(f"{self.url}/invocations", data=body, headers=headers, timeout=30, **kwargs)

    def __exit__(self, *exc) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


OLD_XGBOOST = REPO / "tests" / "artifacts"  # requirements-xgboost-<version>.txt, make_builtin_model.py
CACHE = Path(os.environ.get("BYOC_TEST_CACHE", Path.home() / ".cache" / "byoc-tests"))


def old_xgboost_python(version: str) -> Path:
    """The Python of a venv with the XGBoost a SageMaker built-in container used (version "1.0",
    "1.7", "3.0"), pinned in tests/artifacts/requirements-xgboost-<version>.txt. Made once per
    machine in CACHE (outside the checkout, so CI's fresh clones reuse it) and again only when that
    file changes, like test.sh's stamp; pip's cache makes a remake quick."""
    requirements = OLD_XGBOOST / f"requirements-xgboost-{version}.txt"
    venv = CACHE / f"venv-xgboost-{version}"
    stamp, want = venv / ".requirements.sha", hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = venv / "bin" / "python"
    if not python.exists() or not stamp.exists() or stamp.read_text() != want:
        shutil.rmtree(venv, ignore_errors=True)
        for step in ([sys.executable, "-m", "venv", str(venv)],
                     [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)]):
            done = subprocess.run(step, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                pytest.fail(f"making {venv} failed ({' '.join(step)}):\n{done.stderr[-3000:]}")
        stamp.write_text(want)
    return python


def start_process(args: list, **kwargs) -> subprocess.Popen:
    """Popen in a session (and process group) of its own, so stop_process ends it with its children."""
    return subprocess.Popen(args, start_new_session=True, **kwargs)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # the whole group is gone already
        pass


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
    """Send `sig` to the process's whole group, SIGKILL the group if the process has not exited
    within `timeout`, and SIGKILL whatever of the group outlived it (orphaned workers); returns
    the exit code of the process itself."""
    _signal_group(process.pid, sig)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        code = process.wait()
    _signal_group(process.pid, signal.SIGKILL)
    return code


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """moto in server mode on 127.0.0.1: the AWS APIs, with no AWS account and no internet."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "MotoServer":
        self.process = start_process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.2)
        stop_process(self.process, signal.SIGKILL)
        raise AssertionError("moto server did not start")

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    @property
    def container_env(self) -> dict:
        """For a container on the host network: the same endpoint and dummy credentials."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    def __exit__(self, *exc) -> None:
        stop_process(self.process, timeout=10)


class RegistryServer:
    """Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1, storing in a temp dir.
    The Docker engine treats 127.0.0.0/8 registries as insecure-allowed, so plain HTTP works."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.config = root / "registry.yml"
        self.config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
            f"http:\n  addr: {self.endpoint}\n"
            "log:\n  level: warn\n"
        )

    def __enter__(self) -> "RegistryServer":
        binary = shutil.which("docker-registry")
        if not binary:
            pytest.fail("docker-registry is not installed (apt-get install docker-registry; .ci/run does it)")
        self.process = start_process([binary, "serve", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://{self.endpoint}/v2/", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                time.sleep(0.2)
        stop_process(self.process, signal.SIGKILL)
        raise AssertionError("docker-registry did not start")

    def __exit__(self, *exc) -> None:
        stop_process(self.process, timeout=10)
