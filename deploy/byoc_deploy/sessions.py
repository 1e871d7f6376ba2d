"""SageMaker sessions for local mode and the cloud. Credentials come only from the normal AWS
chain (environment, profile, instance role); nothing is written to a file."""
from __future__ import annotations

import os

LOCAL_REGION = "us-east-1"


def _sdk_config() -> dict:
    """The SDK's defaults (admin and user config files, as it would read them), telemetry opted out.
    Handed to the session itself: no config file of ours, so nothing in a shared temp folder."""
    from sagemaker.config import load_sagemaker_config

    config = load_sagemaker_config()
    modules = config.setdefault("SageMaker", {}).setdefault("PythonSDK", {}).setdefault("Modules", {})
    modules["TelemetryOptOut"] = True
    config.setdefault("SchemaVersion", "1.0")
    return config


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


def session(local: bool, region: str | None = None, serving_port: int = 8080):
    """serving_port: the host port of local endpoints (on 127.0.0.1)."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    import boto3

    if local:
        from sagemaker.local import LocalSession

        # Local mode makes no AWS call: a region and dummy static credentials are all it needs.
        for key, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
            os.environ.setdefault(key, value)
        _bind_local_endpoints_to_loopback()
        local_session = LocalSession(boto_session=boto3.Session(region_name=region or LOCAL_REGION),
                                     sagemaker_config=_sdk_config())
        local_session.config = {"local": {"local_code": True, "serving_port": serving_port}}
        # With local code nothing is uploaded, but the SDK still asks STS for the default bucket's
        # name (an AWS call) when it prepares a framework model: name it here instead.
        local_session._default_bucket = "byoc-local-mode"
        return local_session
    import sagemaker

    return sagemaker.Session(boto_session=boto3.Session(region_name=region), sagemaker_config=_sdk_config())
