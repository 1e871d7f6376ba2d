"""checkov 3.3.30 on deploy/cloudformation and containers/*/Dockerfile, as a security team runs it:
no failed check, and every suppression is one listed here, with its reason in the file itself.
checkov lives in a venv of its own (test.sh makes it and sets BYOC_CHECKOV)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from support import REPO

# What is suppressed in place, and where; each carries a one-line reason (checked below).
SUPPRESSED = {
    "cloudformation": {
        ("CKV_AWS_18", "AWS::S3::Bucket.Bucket"),  # access logging
        ("CKV_AWS_51", "AWS::ECR::Repository.XgboostHdfsRepository"),  # immutable tags: users re-push :latest
        ("CKV_AWS_51", "AWS::ECR::Repository.SklearnCpuRepository"),
        ("CKV_AWS_136", "AWS::ECR::Repository.XgboostHdfsRepository"),  # ECR KMS
        ("CKV_AWS_136", "AWS::ECR::Repository.SklearnCpuRepository"),
        ("CKV_AWS_158", "AWS::Logs::LogGroup.FrontLogGroup"),  # log group KMS
        ("CKV_AWS_116", "AWS::Lambda::Function.FrontFunction"),  # DLQ (synchronous invocations only)
        ("CKV_AWS_117", "AWS::Lambda::Function.FrontFunction"),  # VPC
        ("CKV_AWS_173", "AWS::Lambda::Function.FrontFunction"),  # environment KMS
        ("CKV_AWS_73", "AWS::ApiGateway::Stage.ApiStage"),  # X-Ray
        ("CKV_AWS_76", "AWS::ApiGateway::Stage.ApiStage"),  # access logs need the account-wide role
        ("CKV_AWS_120", "AWS::ApiGateway::Stage.ApiStage"),  # caching
    },
    "dockerfile": {
        (check, f"/{image}/Dockerfile.") for image in ("xgboost-hdfs", "sklearn-cpu")
        for check in ("CKV_DOCKER_2", "CKV_DOCKER_3", "CKV_DOCKER_7")  # HEALTHCHECK, USER, the base's tag
    },
}


def _checkov(framework: str, directory: Path) -> dict:
    checkov = os.environ.get("BYOC_CHECKOV")
    if not checkov or not Path(checkov).exists():
        pytest.fail("checkov is not installed: run the tests through ./test.sh, which makes .venv-checkov "
                    "(requirements-checkov.txt) and sets BYOC_CHECKOV")
    # --skip-download: no call to the vendor's platform; the checks are those of the pinned version.
    # Run from inside the folder: checkov 3.3.30 puts each file's absolute path into the Lambda's
    # environment variables it scans for secrets (key __file__), so some checkout paths (seen:
    # /work/ci/main/...) made CKV_AWS_45 fail on a path, not on the template.
    result = subprocess.run([checkov, "--directory", ".", "--framework", framework, "--skip-download",
                             "--output", "json"], capture_output=True, text=True, timeout=600, cwd=directory)
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: some check failed
    report = json.loads(result.stdout)
    [report] = report if isinstance(report, list) else [report]
    assert report["summary"]["checkov_version"] == "3.3.30"
    return report


@pytest.mark.parametrize("framework, directory", [("cloudformation", REPO / "deploy" / "cloudformation"),
                                                  ("dockerfile", REPO / "containers")])
def test_checkov_finds_nothing_unexplained(framework, directory):
    report = _checkov(framework, directory)
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and report["summary"]["parsing_errors"] == 0, failed
    assert report["summary"]["passed"] > 30
    skipped = report["results"]["skipped_checks"]
    assert {(c["check_id"], c["resource"]) for c in skipped} == SUPPRESSED[framework]
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 30, check  # a reason, not a placeholder


def test_checkov_run_really_checks(tmp_path):
    """The same run on a copy of the template without its suppressions and the concurrency cap
    reports those checks as failed."""
    text = (REPO / "deploy" / "cloudformation" / "byoc.yaml").read_text()
    stripped = "\n".join(line for line in text.splitlines()
                         if "ReservedConcurrentExecutions" not in line and "checkov" not in line
                         and not line.lstrip().startswith(("skip:", "- id: CKV", "comment: ")))
    stripped = stripped.replace("    Metadata:\n", "")
    (tmp_path / "byoc.yaml").write_text(stripped)
    report = _checkov("cloudformation", tmp_path)
    failed = {(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]}
    assert failed == SUPPRESSED["cloudformation"] | {("CKV_AWS_115", "AWS::Lambda::Function.FrontFunction")}
