"""Spot interruptions in real containers: `docker kill --signal SIGTERM` part way through `train`,
`train` again on the same folders, and the final model is the uninterrupted run's, byte for byte,
with row and column sampling too; a checkpoint of other data, or a finished job's folder, fails the job."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid

import numpy as np
import pytest
import xgboost as xgb

import opt_ml
from support import build, run_job

# Slow enough (a few seconds of boosting on one thread) to stop it part way.
HYPERPARAMETERS = {"num_round": 3000, "eta": 0.05, "nthread": 1, "checkpoint_frequency": 10,
                   "tree_method": "hist", "seed": 7, "subsample": 1}
# The seed's own subsample, and columns too. A booster per checkpoint_frequency rounds re-predicts
# its trees: 100 keeps 3000 rounds quick.
SAMPLING = {"subsample": 0.7, "colsample_bytree": 0.8, "checkpoint_frequency": 100}
STOP_AFTER = 300  # rounds: SIGTERM once a checkpoint at least this far exists
CHECKPOINT = re.compile(r"^xgboost-checkpoint\.(\d+)\.ubj$")


@pytest.fixture(scope="module")
def image():
    return build("xgboost-hdfs")


@pytest.fixture(scope="module")
def csv_tree(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("csv")
    opt_ml.hdfs_csv(root)
    return root


def _reference(image, csv_tree, root, hyperparameters):
    """The uninterrupted run, with no checkpoint configuration."""
    root = _job_tree(csv_tree, root, checkpoints=False, hyperparameters=hyperparameters)
    job = run_job(image, root, "train", timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]
    assert not (root / "checkpoints").exists()
    return root


def _job_tree(csv_tree, root, checkpoints: bool, hyperparameters=HYPERPARAMETERS):
    shutil.copytree(csv_tree / "input" / "data", root / "input" / "data")
    opt_ml.write_config(root, hyperparameters, content_types={"train": "text/csv", "validation": "text/csv"})
    if checkpoints:  # as SageMaker writes it for checkpoint_s3_uri (LocalPath defaults to /opt/ml/checkpoints)
        (root / "input" / "config" / "checkpointconfig.json").write_text(
            json.dumps({"S3Uri": "s3://bucket/spot-job/checkpoints", "LocalPath": "/opt/ml/checkpoints"}))
    return root


def _rounds(folder) -> list[int]:
    names = [CHECKPOINT.match(p.name) for p in folder.iterdir()] if folder.is_dir() else []
    return sorted((int(m.group(1)) for m in names if m), reverse=True)


class Detached:
    """`docker run -d IMAGE train` on an /opt/ml tree, stopped the way SageMaker stops it."""

    def __init__(self, image: str, root, docker_args: tuple = ()):
        self.name = f"byoc-ckpt-{uuid.uuid4().hex[:8]}"
        subprocess.run(["docker", "run", "-d", "--name", self.name, "-v", f"{root}:/opt/ml", *docker_args, image, "train"],
                       check=True, capture_output=True)

    def wait_for(self, ready, what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", self.name],
                                   capture_output=True, text=True).stdout.strip()
            assert state == "true", f"train ended before {what}:\n{self.logs()[-3000:]}"
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout} s:\n{self.logs()[-3000:]}")

    def sigterm(self) -> int:
        subprocess.run(["docker", "kill", "--signal", "SIGTERM", self.name], check=True, capture_output=True)
        return self.wait()

    def wait(self, timeout: float = 60) -> int:
        waited = subprocess.run(["docker", "wait", self.name], capture_output=True, text=True, timeout=timeout)
        return int(waited.stdout.strip())

    def logs(self) -> str:
        out = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return out.stdout + out.stderr

    def __enter__(self) -> "Detached":
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


def _validation_features(root) -> np.ndarray:
    return np.loadtxt(root / "input" / "data" / "validation" / "features.csv", delimiter=",")[:, 1:]


@pytest.mark.parametrize("sampling", [{}, SAMPLING], ids=["no-sampling", "subsample-colsample"])
def test_sigterm_saves_a_checkpoint_and_the_restarted_job_resumes_to_the_same_model(image, csv_tree, tmp_path,
                                                                                     sampling):
    hyperparameters = {**HYPERPARAMETERS, **sampling}
    reference = _reference(image, csv_tree, tmp_path / "reference", hyperparameters)
    root = _job_tree(csv_tree, tmp_path / "spot", checkpoints=True, hyperparameters=hyperparameters)
    folder = root / "checkpoints"
    with Detached(image, root) as job:
        job.wait_for(lambda: any(r >= STOP_AFTER for r in _rounds(folder)), f"checkpoint at round {STOP_AFTER}")
        exit_code = job.sigterm()
        logs = job.logs()
    assert exit_code == 143, logs[-3000:]  # 128 + SIGTERM, after saving
    resumable = _rounds(folder)[0]
    assert STOP_AFTER <= resumable < HYPERPARAMETERS["num_round"]
    failure = (root / "output" / "failure").read_text()
    stopped_at = int(re.match(r"stopped by SIGTERM at round (\d+) of 3000; ", failure).group(1))
    if stopped_at == resumable:
        assert failure == (f"stopped by SIGTERM at round {stopped_at} of 3000; checkpoint xgboost-checkpoint.{stopped_at}.ubj "
                           "saved in /opt/ml/checkpoints: a job started again with the same checkpoint configuration "
                           "resumes from it\n")
    else:  # with sampling a job resumes only from a multiple of checkpoint_frequency: none was written since
        assert sampling and resumable % 100 == 0 and stopped_at - resumable < 100
        assert failure.startswith(f"stopped by SIGTERM at round {stopped_at} of 3000; checkpoint "
                                  f"xgboost-checkpoint.{resumable}.ubj is in /opt/ml/checkpoints: ")
    assert list((root / "model").iterdir()) == []  # a stopped job leaves no model
    assert len(_rounds(folder)) == 3 and not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert f"[{stopped_at - 1}]\ttrain-logloss:" in logs and f"[{stopped_at}]\t" not in logs

    # A newer checkpoint cut off mid-write (as a hard kill could leave one): skipped, never loaded.
    latest = folder / f"xgboost-checkpoint.{resumable}.ubj"
    (folder / f"xgboost-checkpoint.{resumable + 1}.ubj").write_bytes(latest.read_bytes()[:1000])

    resumed = run_job(image, root, "train", timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"skipping checkpoint xgboost-checkpoint.{resumable + 1}.ubj: it does not load" in resumed.stderr
    assert f"resuming from checkpoint xgboost-checkpoint.{resumable}.ubj: {resumable} rounds done" in resumed.stderr
    printed = [int(n) for n in re.findall(r"^\[(\d+)\]\t", resumed.stdout, re.M)]
    assert printed[0] == resumable and printed[-1] == 2999  # only the remaining rounds, numbered on
    assert not (root / "output" / "failure").exists()

    final = (root / "model" / "xgboost-model").read_bytes()
    assert final == (reference / "model" / "xgboost-model").read_bytes()
    features = _validation_features(root)
    ours, theirs = (xgb.Booster(model_file=bytearray((r / "model" / "xgboost-model").read_bytes())).inplace_predict(features)
                    for r in (root, reference))
    assert np.array_equal(ours, theirs)
    evaluation, expected = (json.loads((r / "output" / "data" / "evaluation.json").read_text()) for r in (root, reference))
    assert evaluation == expected
    frequency = hyperparameters["checkpoint_frequency"]
    assert _rounds(folder)[:3] == [3000, 3000 - frequency, 3000 - 2 * frequency]

    # The job has finished: started again on its folder, it fails instead of resuming a finished run.
    assert json.loads((folder / "job-finished.json").read_text())["rounds"] == 3000
    again = run_job(image, root, "train", timeout=300)
    assert again.returncode == 1
    assert (root / "output" / "failure").read_text().startswith(
        "UserError: the checkpoint folder /opt/ml/checkpoints holds the checkpoints of a job that finished "
        "(job-finished.json: "
        "3000 rounds, model saved at ")


def test_a_checkpoint_of_other_data_fails_the_job_naming_the_channel(image, csv_tree, tmp_path):
    """Issue #12: the same hyperparameters on other data (1,610 rows, labels flipped) and the same
    checkpoint folder resumed the first job's checkpoint and saved the first job's model."""
    short = {**HYPERPARAMETERS, "num_round": 20}
    first = _job_tree(csv_tree, tmp_path / "first", checkpoints=True, hyperparameters=short)
    job = run_job(image, first, "train", timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]

    second = _job_tree(csv_tree, tmp_path / "second", checkpoints=True, hyperparameters=short)
    rows = np.loadtxt(second / "input" / "data" / "validation" / "features.csv", delimiter=",")
    rows[:, 0] = 1 - rows[:, 0]
    np.savetxt(second / "input" / "data" / "train" / "features.csv", rows, delimiter=",", fmt="%g")
    # The first job's checkpoints as a job stopped after its last round leaves them (no job-finished.json).
    shutil.copytree(first / "checkpoints", second / "checkpoints", ignore=shutil.ignore_patterns("job-finished.json"))
    job = run_job(image, second, "train", timeout=300)
    assert job.returncode == 1, job.stdout[-2000:]
    assert (second / "output" / "failure").read_text().startswith(
        "UserError: checkpoint xgboost-checkpoint.20.ubj belongs to another training: other train data "
        "(1,610 rows x 31 now, 6,440 rows x 31 in the checkpoint)")  # then scale_pos_weight=auto's value
    assert list((second / "model").iterdir()) == []


def test_sigterm_without_checkpoint_configuration_fails_cleanly(image, csv_tree, tmp_path):
    root = _job_tree(csv_tree, tmp_path, checkpoints=False)
    with Detached(image, root) as job:
        job.wait_for(lambda: "\n[100]\t" in job.logs(), "round 100")
        exit_code = job.sigterm()
        logs = job.logs()
    assert exit_code == 143, logs[-3000:]
    failure = (root / "output" / "failure").read_text()
    assert re.fullmatch(r"stopped by SIGTERM at round \d+ of 3000; no checkpoint saved: the job has no checkpoint "
                        r"configuration \(set checkpoint_s3_uri to let a restarted job resume\)\n", failure), failure
    assert list((root / "model").iterdir()) == [] and not (root / "checkpoints").exists()
    assert "Traceback" not in logs  # a stop is not a crash


HOSTS = ("algo-1", "algo-2")
TWO_HOST_HYPERPARAMETERS = {**HYPERPARAMETERS, "num_round": 200, "checkpoint_frequency": 5, "collective_timeout": 120}


@pytest.fixture
def network():
    name = f"byoc-ckpt-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "network", "create", name], check=True, capture_output=True)
    yield name
    subprocess.run(["docker", "network", "rm", name], capture_output=True)


def _two_host_job(image, csv_tree, root, network, checkpoints: bool):
    """Both hosts of a two-instance job, as SageMaker lays them out: each with its own /opt/ml,
    replicated channels and its own checkpoint folder, on one network under the names algo-1, algo-2."""
    jobs = []
    for host in HOSTS:
        tree = _job_tree(csv_tree, root / host, checkpoints)
        opt_ml.write_config(tree, TWO_HOST_HYPERPARAMETERS, content_types={"train": "text/csv", "validation": "text/csv"})
        (tree / "input" / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": list(HOSTS)}))
        jobs.append(Detached(image, tree, ("--network", network, "--hostname", host, "--network-alias", host)))
    return jobs


def test_two_hosts_stop_at_the_same_round_and_resume_from_the_leaders_checkpoint(image, csv_tree, tmp_path, network):
    reference = _two_host_job(image, csv_tree, tmp_path / "reference", network, checkpoints=False)
    try:
        assert [job.wait(timeout=300) for job in reference] == [0, 0], reference[0].logs()[-3000:]
    finally:
        for job in reference:
            job.__exit__()

    jobs = _two_host_job(image, csv_tree, tmp_path / "spot", network, checkpoints=True)
    leader, other = (tmp_path / "spot" / host for host in HOSTS)
    try:
        jobs[0].wait_for(lambda: any(r >= 10 for r in _rounds(leader / "checkpoints")), "checkpoint at round 10")
        for job in jobs:  # the second may be gone already: the hosts agree to stop when either got SIGTERM
            subprocess.run(["docker", "kill", "--signal", "SIGTERM", job.name], capture_output=True)
        codes = [job.wait() for job in jobs]
        assert codes == [143, 143], f"exit codes {codes}:\n" + jobs[0].logs()[-2000:] + jobs[1].logs()[-2000:]
    finally:
        for job in jobs:
            job.__exit__()
    stopped_at = _rounds(leader / "checkpoints")[0]
    assert (leader / "output" / "failure").read_text().startswith(
        f"stopped by SIGTERM at round {stopped_at} of 200; checkpoint xgboost-checkpoint.{stopped_at}.ubj saved")
    assert (other / "output" / "failure").read_text().startswith(
        f"stopped by SIGTERM at round {stopped_at} of 200; algo-1 saved the checkpoint")  # the same round
    assert not (other / "checkpoints").exists() or _rounds(other / "checkpoints") == []  # only the leader writes

    resumed = _two_host_job(image, csv_tree, tmp_path / "spot-again", network, checkpoints=True)
    for host in HOSTS:  # the restarted job's hosts, the leader's checkpoints copied back as SageMaker does
        shutil.rmtree(tmp_path / "spot-again" / host / "checkpoints", ignore_errors=True)
    shutil.copytree(leader / "checkpoints", tmp_path / "spot-again" / "algo-1" / "checkpoints")
    try:
        assert [job.wait(timeout=300) for job in resumed] == [0, 0], resumed[0].logs()[-3000:]
        logs = [job.logs() for job in resumed]
    finally:
        for job in resumed:
            job.__exit__()
    for host_logs in logs:
        assert f"resuming from checkpoint xgboost-checkpoint.{stopped_at}.ubj: {stopped_at} rounds done" in host_logs
    final = tmp_path / "spot-again" / "algo-1" / "model" / "xgboost-model"
    assert final.read_bytes() == (tmp_path / "reference" / "algo-1" / "model" / "xgboost-model").read_bytes()
