"""The cloud path of byoc-deploy against moto in server mode on 127.0.0.1: every request it makes
to SageMaker is recorded as sent and served by moto, then checked field by field."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from support import MotoServer

pytest.importorskip("byoc_deploy.steps", reason="the deploy tool is not installed (./test.sh installs it)")
from byoc_deploy import steps  # noqa: E402
from byoc_deploy.sessions import session  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/byoc-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost-hdfs:1.0"
MODEL = "s3://byoc-test/output/model.tar.gz"


@pytest.fixture()
def cloud(monkeypatch):
    with MotoServer() as moto:
        for key, value in moto.container_env.items():
            monkeypatch.setenv(key, value)
        sess = session(local=False, region="us-east-1")
        calls: list[tuple[str, dict]] = []
        sess.sagemaker_client.meta.events.register(
            "provide-client-params.sagemaker.*", lambda params, model, **_: calls.append((model.name, dict(params))))
        moto.client("s3").create_bucket(Bucket="byoc-test")
        yield sess, calls, moto


def _call(calls, name):
    found = [params for operation, params in calls if operation == name]
    assert found, f"no {name} among {[c[0] for c in calls]}"
    return found[-1]


def test_training_job_request(cloud):
    sess, calls, _ = cloud
    steps.train(sess, IMAGE, {"train": "s3://byoc-test/train", "validation": "s3://byoc-test/validation"},
                {"num_round": 50, "eta": 0.2}, role=ROLE, output_path="s3://byoc-test/output", spot=True,
                max_run=3600, max_wait=7200, checkpoint_s3_uri="s3://byoc-test/checkpoints", wait=False, logs=False)
    job = _call(calls, "CreateTrainingJob")
    assert job["AlgorithmSpecification"] == {"TrainingInputMode": "File", "TrainingImage": IMAGE}
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.large" and job["ResourceConfig"]["InstanceCount"] == 1
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert job["CheckpointConfig"] == {"S3Uri": "s3://byoc-test/checkpoints"}
    assert job["HyperParameters"] == {"num_round": "50", "eta": "0.2"}
    assert {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]} == {
        "train": "s3://byoc-test/train", "validation": "s3://byoc-test/validation"}
    assert job["OutputDataConfig"]["S3OutputPath"] == "s3://byoc-test/output" and job["RoleArn"] == ROLE
    assert "DebugHookConfig" not in job and job.get("ProfilerConfig", {}).get("DisableProfiler", True)
    described = sess.sagemaker_client.describe_training_job(TrainingJobName=job["TrainingJobName"])
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE  # moto holds the job


def test_endpoint_transform_registry_and_teardown_requests(cloud):
    sess, calls, moto = cloud
    moto.client("s3").put_object(Bucket="byoc-test", Key="batch-in/rows.csv", Body=b"1,2,3\n")
    steps.deploy(sess, IMAGE, MODEL, endpoint_name="byoc-endpoint", role=ROLE)
    model = _call(calls, "CreateModel")
    assert model["PrimaryContainer"]["Image"] == IMAGE and model["PrimaryContainer"]["ModelDataUrl"] == MODEL
    assert model["ExecutionRoleArn"] == ROLE
    config = _call(calls, "CreateEndpointConfig")
    variant = config["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
    assert variant["ModelName"] == model["ModelName"]
    endpoint = _call(calls, "CreateEndpoint")
    assert endpoint["EndpointName"] == "byoc-endpoint" and endpoint["EndpointConfigName"] == config["EndpointConfigName"]

    steps.transform(sess, IMAGE, MODEL, "s3://byoc-test/batch-in", "s3://byoc-test/batch-out", role=ROLE, wait=False)
    job = _call(calls, "CreateTransformJob")
    assert job["TransformInput"]["SplitType"] == "Line" and job["TransformInput"]["ContentType"] == "text/csv"
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://byoc-test/batch-in"
    assert job["BatchStrategy"] == "MultiRecord" and job["TransformOutput"]["AssembleWith"] == "Line"
    assert job["TransformOutput"]["S3OutputPath"] == "s3://byoc-test/batch-out"
    assert job["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}

    steps.register(sess, IMAGE, MODEL, "byoc-models", "PendingManualApproval")
    assert _call(calls, "CreateModelPackageGroup")["ModelPackageGroupName"] == "byoc-models"
    package = _call(calls, "CreateModelPackage")
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["InferenceSpecification"]["Containers"] == [{"Image": IMAGE, "ModelDataUrl": MODEL}]

    steps.teardown(sess, "byoc-endpoint", "byoc-test", "batch-in/")
    assert _call(calls, "DeleteEndpoint") == {"EndpointName": "byoc-endpoint"}
    assert _call(calls, "DeleteEndpointConfig") == {"EndpointConfigName": config["EndpointConfigName"]}
    assert _call(calls, "DeleteModel") == {"ModelName": model["ModelName"]}
    assert "Contents" not in moto.client("s3").list_objects_v2(Bucket="byoc-test", Prefix="batch-in/")
    endpoints = sess.sagemaker_client.list_endpoints()["Endpoints"]
    assert [e["EndpointName"] for e in endpoints] == []


def test_every_step_has_help():
    for step in ("push", "train", "deploy", "invoke", "transform", "register", "teardown"):
        shown = subprocess.run([sys.executable, "-m", "byoc_deploy", step, "--help"], capture_output=True, text=True)
        assert shown.returncode == 0 and "usage: byoc-deploy" in shown.stdout


# ---- the command line: teardown deletes what was asked, stdout carries the result alone -----------

def _cli(moto, *args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    """`python -m byoc_deploy ...` against moto, with this checkout's byoc_deploy."""
    import byoc_deploy

    env = {**os.environ, **moto.container_env,
           "PYTHONPATH": os.pathsep.join([str(Path(byoc_deploy.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "byoc_deploy", *args], env=env, stdin=stdin,
                          capture_output=True, text=True, timeout=120)


KEYS = ["byoc/model.tar.gz", "byoc/batch/rows.csv", "byoc-prod/model.tar.gz", "byocx.csv", "other/byoc/a.csv"]


def _keys(moto, bucket: str = "byoc-test") -> list[str]:
    return sorted(o["Key"] for o in moto.client("s3").list_objects_v2(Bucket=bucket).get("Contents", []))


def test_teardown_deletes_only_the_folder_after_listing_it(cloud):
    """--prefix byoc is the folder byoc/: byoc-prod/ and byocx.csv stay. It lists first and deletes
    only with --yes when nobody can answer; --dry-run deletes nothing; no prefix is refused."""
    _, _, moto = cloud
    s3 = moto.client("s3")
    for key in KEYS:
        s3.put_object(Bucket="byoc-test", Key=key, Body=key.encode())

    refused = _cli(moto, "teardown", "--bucket", "byoc-test", "--prefix", "byoc")  # stdin: not a terminal
    assert refused.returncode != 0 and "pass --yes" in refused.stderr and refused.stdout == ""
    assert "2 object(s)" in refused.stderr and "s3://byoc-test/byoc/model.tar.gz" in refused.stderr
    assert "byoc-prod" not in refused.stderr
    assert _keys(moto) == sorted(KEYS)

    dry = _cli(moto, "teardown", "--bucket", "byoc-test", "--prefix", "byoc", "--dry-run")
    assert dry.returncode == 0 and "dry run" in dry.stderr and "s3://byoc-test/byoc/batch/rows.csv" in dry.stderr
    assert _keys(moto) == sorted(KEYS)

    for prefix in ([], ["--prefix", ""], ["--prefix", "/"]):
        whole = _cli(moto, "teardown", "--bucket", "byoc-test", "--yes", *prefix)
        assert whole.returncode != 0 and "--prefix" in whole.stderr, whole.stderr
    assert _keys(moto) == sorted(KEYS)

    done = _cli(moto, "teardown", "--bucket", "byoc-test", "--prefix", "byoc", "--yes")
    assert done.returncode == 0, done.stderr
    assert "deleted 2 object(s) under s3://byoc-test/byoc/; none of them left" in done.stderr and done.stdout == ""
    assert _keys(moto) == ["byoc-prod/model.tar.gz", "byocx.csv", "other/byoc/a.csv"]


def test_teardown_of_an_endpoint_lists_and_asks(cloud):
    sess, _, moto = cloud
    steps.deploy(sess, IMAGE, MODEL, endpoint_name="byoc-endpoint", role=ROLE)
    refused = _cli(moto, "teardown", "--endpoint-name", "byoc-endpoint")
    assert refused.returncode != 0 and "endpoint byoc-endpoint, endpoint config" in refused.stderr
    assert [e["EndpointName"] for e in sess.sagemaker_client.list_endpoints()["Endpoints"]] == ["byoc-endpoint"]
    missing = _cli(moto, "teardown", "--endpoint-name", "no-such-endpoint", "--yes")
    assert missing.returncode != 0 and "no endpoint no-such-endpoint" in missing.stderr
    done = _cli(moto, "teardown", "--endpoint-name", "byoc-endpoint", "--yes")
    assert done.returncode == 0, done.stderr
    assert sess.sagemaker_client.list_endpoints()["Endpoints"] == [] and sess.sagemaker_client.list_models()["Models"] == []


def test_invoke_prints_the_answer_alone_on_stdout(cloud):
    """`byoc-deploy invoke ... > out` gets the endpoint's answer and nothing else: the SDK's
    `sagemaker.config INFO` lines and our own go to stderr."""
    _, _, moto = cloud
    answer = '{"predictions": [{"score": 0.25, "predicted_label": 0}]}'
    requests.post(f"{moto.url}/moto-api/static/sagemaker/endpoint-results", timeout=10, json={
        "results": [{"Body": answer, "ContentType": "application/json"}]}).raise_for_status()
    invoked = _cli(moto, "invoke", "--endpoint-name", "byoc-endpoint", "--body", "1,2,3", "--region", "us-east-1")
    assert invoked.returncode == 0, invoked.stderr
    assert invoked.stdout == answer
    assert "sagemaker.config INFO" in invoked.stderr  # the SDK still says it; where it belongs


def test_sessions_write_no_config_file_and_opt_out_of_telemetry(tmp_path, monkeypatch):
    """The SDK config (telemetry opt-out) is handed to the session: no file at a fixed path in the
    shared temp folder for anyone to swap."""
    from sagemaker.config.config_schema import TELEMETRY_OPT_OUT_PATH
    from sagemaker.utils import resolve_value_from_config

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("SAGEMAKER_USER_CONFIG_OVERRIDE", raising=False)
    tempfile.tempdir = None  # read TMPDIR again
    try:
        for local in (True, False):
            sess = session(local=local, region="us-east-1")
            assert resolve_value_from_config(config_path=TELEMETRY_OPT_OUT_PATH, sagemaker_session=sess) is True
    finally:
        tempfile.tempdir = None
    assert list(tmp_path.iterdir()) == [] and "SAGEMAKER_USER_CONFIG_OVERRIDE" not in os.environ
