"""SageMaker sessions for local mode and the cloud. Credentials come only from the normal AWS
chain (environment, profile, instance role); nothing is written to a file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

TELEMETRY_OPT_OUT = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""
LOCAL_REGION = "us-east-1"


def _opt_out_of_telemetry() -> None:
    """The SDK reads its config from the file SAGEMAKER_USER_CONFIG_OVERRIDE names."""
    if "SAGEMAKER_USER_CONFIG_OVERRIDE" not in os.environ:
        path = Path(tempfile.gettempdir()) / "byoc-sagemaker-config.yaml"
        path.write_text(TELEMETRY_OPT_OUT)
        os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(path)
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


def _bind_local_endpoints_to_loopback() -> None:
    """Local mode publishes the serving port on every interface; keep it on 127.0.0.1."""
    from sagemaker.local import image

    create = image._SageMakerContainer._create_docker_host
    if getattr(create, "byoc_loopback", False):
        return

    def create_on_loopback(self, *args, **kwargs):
        host = create(self, *args, **kwargs)
        if "ports" in host:
            host["ports"] = [p if p.count(":") > 1 else f"127.0.0.1:{p}" for p in host["ports"]]
        return host

    create_on_loopback.byoc_loopback = True
    image._SageMakerContainer._create_docker_host = create_on_loopback


def session(local: bool, region: str | None = None):
    _opt_out_of_telemetry()
    import boto3

    if local:
        from sagemaker.local import LocalSession

        # Local mode makes no AWS call: a region and dummy static credentials are all it needs.
        for key, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
            os.environ.setdefault(key, value)
        _bind_local_endpoints_to_loopback()
        local_session = LocalSession(boto_session=boto3.Session(region_name=region or LOCAL_REGION))
        local_session.config = {"local": {"local_code": True}}
        # With local code nothing is uploaded, but the SDK still asks STS for the default bucket's
        # name (an AWS call) when it prepares a framework model: name it here instead.
        local_session._default_bucket = "byoc-local-mode"
        return local_session
    import sagemaker

    return sagemaker.Session(boto_session=boto3.Session(region_name=region))
