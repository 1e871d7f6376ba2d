"""Script mode in real containers: the user's script as a first-class process (stop signals,
any bytes on its stderr) and its code bundle's requirements.txt installed at endpoint start."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import time
import uuid
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

import opt_ml
from support import Server, build, run_job


@pytest.fixture(scope="module")
def image():
    return build("sklearn-cpu")


class Job:
    """`docker run -d IMAGE train` with ml_root as /opt/ml, for tests that act while the job runs."""

    def __init__(self, image: str, root: Path, code: Path, env: dict | None = None):
        self.name = f"byoc-test-{uuid.uuid4().hex[:8]}"
        self.command = ["docker", "run", "-d", "--name", self.name, "-v", f"{root}:/opt/ml",
                        "-v", f"{code}:/opt/ml/code:ro"]
        for key, value in (env or {}).items():
            self.command += ["-e", f"{key}={value}"]
        self.command += [image, "train"]

    def __enter__(self) -> "Job":
        subprocess.run(self.command, check=True, capture_output=True)
        return self

    def logs(self, timestamps: bool = False) -> str:
        out = subprocess.run(["docker", "logs", *(["-t"] if timestamps else []), self.name],
                             capture_output=True, text=True, errors="replace")
        return out.stdout + out.stderr

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.logs():
            assert time.monotonic() < deadline, f"{text!r} never appeared in the log:\n{self.logs()}"
            time.sleep(0.2)

    def wait(self, timeout: float = 120) -> int:
        return int(subprocess.run(["docker", "wait", self.name], capture_output=True, text=True,
                                  check=True, timeout=timeout).stdout.strip())

    def __exit__(self, *exc) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


def _script_job(root: Path, code: Path, source: str, hyperparameters: dict | None = None) -> None:
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text(source)
    opt_ml.write_config(root, {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"/opt/ml/code"',
                               **(hyperparameters or {})}, channels=())


# SIGTERM -----------------------------------------------------------------------------------------

TRAPS_SIGTERM = '''
import argparse, os, signal, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--exit-code", type=int, default=0)
args, _ = parser.parse_known_args()

def stop(signum, frame):
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "stopped.txt"), "w") as marker:
        marker.write(signal.Signals(signum).name)
    print("script: saved my state, exiting with", args.exit_code, flush=True)
    sys.exit(args.exit_code)

signal.signal(signal.SIGTERM, stop)
print("script: training", flush=True)
time.sleep(300)
'''

IGNORES_SIGTERM = '''
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("script: training, deaf to SIGTERM", flush=True)
time.sleep(300)
'''


def _sigterm_when(job: "Job", line: str) -> tuple[int, float, str]:
    """docker kill --signal TERM once the job logged `line`: (exit code, seconds to exit, logs)."""
    job.wait_for(line)
    sent = time.monotonic()
    subprocess.run(["docker", "kill", "--signal", "TERM", job.name], check=True, capture_output=True)
    status = job.wait()
    return status, time.monotonic() - sent, job.logs()


@pytest.mark.parametrize("exit_code", [0, 3])
def test_sigterm_reaches_the_script_and_how_it_exited_is_the_failure_reason(image, tmp_path, exit_code):
    _script_job(tmp_path, tmp_path / "code", TRAPS_SIGTERM, {"exit-code": str(exit_code)})
    with Job(image, tmp_path, tmp_path / "code") as job:
        status, took, logs = _sigterm_when(job, "script: training")
    assert (tmp_path / "model" / "stopped.txt").read_text() == "SIGTERM", logs
    assert f"script: saved my state, exiting with {exit_code}" in logs
    assert status == 143, logs  # the job was stopped, whatever the script's own code
    reason = (tmp_path / "output" / "failure").read_text()
    assert reason.startswith(f"stopped by SIGTERM (forwarded to train.py, which exited with code {exit_code};"), reason
    assert took < 10, took
    print(f"exit {exit_code}: container ended {took:.2f} s after SIGTERM; failure: {reason.strip()}")


def test_a_script_that_ignores_sigterm_is_killed_after_the_grace_period(image, tmp_path):
    _script_job(tmp_path, tmp_path / "code", IGNORES_SIGTERM)
    with Job(image, tmp_path, tmp_path / "code", env={"BYOC_STOP_GRACE_SECONDS": "3"}) as job:
        status, took, logs = _sigterm_when(job, "script: training, deaf to SIGTERM")
    assert status == 143, logs
    assert "train.py did not exit within 3 s of SIGTERM: killing its process group" in logs
    reason = (tmp_path / "output" / "failure").read_text()
    assert "forwarded to train.py, which did not exit within 3 s and was killed" in reason, reason
    assert 3 <= took < 10, took
    print(f"ignored SIGTERM: killed, container ended {took:.2f} s after SIGTERM (grace 3 s)")


# stderr ------------------------------------------------------------------------------------------

NOT_UTF8 = r'''
import sys, time
sys.stderr.buffer.write(b"script: latin-1 caf\xe9 and \xff\xfe\n")
sys.stderr.flush()
time.sleep(2)
sys.stderr.write("script: after the pause\n")
'''


def test_non_utf8_bytes_on_stderr_pass_through_line_by_line(image, tmp_path):
    _script_job(tmp_path, tmp_path / "code", NOT_UTF8)
    with Job(image, tmp_path, tmp_path / "code") as job:
        status = job.wait()
        logs = job.logs(timestamps=True)
    assert status == 0, logs
    assert not (tmp_path / "output" / "failure").exists()
    stamps = {}
    for line in logs.splitlines():
        stamp, _, text = line.partition(" ")
        if text.startswith("script: "):
            stamps[text] = datetime.fromisoformat(stamp[:26])  # docker's RFC 3339 with nanoseconds
    assert list(stamps) == ["script: latin-1 caf\ufffd and \ufffd\ufffd", "script: after the pause"], logs
    # line by line: the first line reached the log when it was written, not when the script ended
    gap = (stamps["script: after the pause"] - stamps["script: latin-1 caf\ufffd and \ufffd\ufffd"]).total_seconds()
    assert gap >= 1.5, gap


# requirements.txt at endpoint start -------------------------------------------------------------

PACKAGE = "byoc_offline_pkg"
INFERENCE = f'''
import json
import {PACKAGE}

def model_fn(model_dir):
    return "no model file needed"

def predict_fn(data, model):
    return {PACKAGE}.row_sums(data.tolist())

def output_fn(prediction, accept):
    return json.dumps({{"sums": prediction, "version": {PACKAGE}.__version__}}), "application/json"
'''


def _wheel(folder: Path) -> Path:
    """A pure-Python wheel, written by hand: something pip can install with no package index."""
    files = {f"{PACKAGE}/__init__.py": '__version__ = "1.0"\n\ndef row_sums(rows):\n    return [sum(r) for r in rows]\n',
             f"{PACKAGE}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 1.0\n",
             f"{PACKAGE}-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: byoc-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(text.encode())}" for name, text in files.items()]
    files[f"{PACKAGE}-1.0.dist-info/RECORD"] = "\n".join(record + [f"{PACKAGE}-1.0.dist-info/RECORD,,"]) + "\n"
    folder.mkdir(parents=True)
    path = folder / f"{PACKAGE}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
    return path


def _serving_code(code: Path, requirements: str) -> dict:
    code.mkdir()
    (code / "inference.py").write_text(INFERENCE)
    (code / "requirements.txt").write_text(requirements)
    return {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/code"}


def test_serving_installs_the_code_bundles_requirements_before_loading(image, tmp_path):
    env = _serving_code(tmp_path / "code", f"--no-index\n--find-links wheels\n{PACKAGE}==1.0\n")
    _wheel(tmp_path / "code" / "wheels")
    (tmp_path / "model").mkdir()
    started = time.monotonic()
    with Server(image, tmp_path / "model", env=env, volumes={tmp_path / "code": "/opt/ml/code"}) as server:
        ready = time.monotonic() - started
        response = server.post("1,2,3\n4,5,6\n", "text/csv", "application/json")
        assert response.status_code == 200, response.text
        assert response.json() == {"sums": [6, 15], "version": "1.0"}
        logs = server.logs()
    print(next(line for line in logs.splitlines() if "requirements.txt: Successfully" in line))
    assert f"requirements.txt: Successfully installed {PACKAGE.replace('_', '-')}-1.0" in logs \
        or f"requirements.txt: Successfully installed {PACKAGE}-1.0" in logs, logs
    assert logs.index("installing /opt/ml/code/requirements.txt") < logs.index("model loaded from")
    print(f"endpoint with requirements.txt ready after {ready:.2f} s")


def test_serving_stops_saying_which_requirement_could_not_be_installed(image, tmp_path):
    env = _serving_code(tmp_path / "code", "--no-index\nscikit-learn\nbyoc-no-such-package==1.0\n")
    (tmp_path / "model").mkdir()
    name = f"byoc-test-{uuid.uuid4().hex[:8]}"
    command = ["docker", "run", "--name", name, "-v", f"{tmp_path / 'model'}:/opt/ml/model:ro",
               "-v", f"{tmp_path / 'code'}:/opt/ml/code:ro"]
    for key, value in env.items():
        command += ["-e", f"{key}={value}"]
    started = time.monotonic()
    try:
        served = subprocess.run(command + [image, "serve"], capture_output=True, text=True, timeout=120)
        took = time.monotonic() - started
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    assert served.returncode != 0
    assert "could not load the model from /opt/ml/model: /opt/ml/code/requirements.txt: " \
           "pip could not install byoc-no-such-package==1.0 (" in served.stderr, served.stderr
    assert "scikit-learn," not in served.stderr.split("pip could not install")[-1].split("(")[0]  # the image has it
    print(f"unsatisfiable requirements.txt: serve exited {served.returncode} after {took:.2f} s")
