"""The life of a model on SageMaker, one function a step. Each prints what it created so that a
user can find it in the console; `session.local_mode` decides local Docker or AWS."""
from __future__ import annotations

import time
from pathlib import Path

LOCAL_ROLE = "arn:aws:iam::111111111111:role/byoc-local-mode"  # local mode never uses it
DEFAULT_INSTANCE = "ml.m5.large"


def _say(message: str) -> None:
    print(f"[byoc-deploy] {message}", flush=True)


def _is_local(session) -> bool:
    return bool(getattr(session, "local_mode", False))


def _instance(session, instance_type: str | None) -> str:
    return "local" if _is_local(session) else (instance_type or DEFAULT_INSTANCE)


def _uri(location: str) -> str:
    """Local paths become file:// URIs (local mode); s3:// and file:// pass through."""
    if location.startswith(("s3://", "file://")):
        return location
    return Path(location).resolve().as_uri()


def train(session, image: str, channels: dict[str, str], hyperparameters: dict | None = None, role: str | None = None,
          instance_type: str | None = None, instance_count: int = 1, output_path: str | None = None,
          spot: bool = False, max_run: int = 3600, max_wait: int | None = None, checkpoint_s3_uri: str | None = None,
          base_job_name: str = "byoc", wait: bool = True, logs: bool = True):
    """A training job; returns the fitted Estimator (its .model_data is the artifact)."""
    from sagemaker.estimator import Estimator

    local = _is_local(session)
    options = {}
    if spot and not local:
        options = {"use_spot_instances": True, "max_wait": max_wait or max_run * 2}
    if checkpoint_s3_uri and not local:
        options["checkpoint_s3_uri"] = checkpoint_s3_uri
    estimator = Estimator(
        image_uri=image, role=role or LOCAL_ROLE, instance_count=instance_count,
        instance_type=_instance(session, instance_type), sagemaker_session=session,
        output_path=_uri(output_path) if output_path else (_uri(".byoc-local/output") if local else None),
        hyperparameters={k: str(v) for k, v in (hyperparameters or {}).items()},
        max_run=max_run, base_job_name=base_job_name,
        # Our images have no SageMaker Debugger hook: do not ask for one or for profiling.
        debugger_hook_config=False, disable_profiler=True, **options,
    )
    start = time.monotonic()
    estimator.fit({name: _uri(path) for name, path in channels.items()}, wait=wait, logs=logs)
    _say(f"training job {estimator.latest_training_job.name}: "
         f"{'finished' if wait else 'started'} after {time.monotonic() - start:.0f} s")
    if wait:
        _say(f"model artifact: {estimator.model_data}")
    return estimator


def model(session, image: str, model_data: str, role: str | None = None, env: dict | None = None, name: str | None = None):
    from sagemaker.model import Model

    return Model(image_uri=image, model_data=_uri(model_data), role=role or LOCAL_ROLE, env=env or {},
                 sagemaker_session=session, name=name)


def _serving_port(session) -> int:
    return int(((session.config or {}).get("local") or {}).get("serving_port", 8080))


def wait_until_serving(session, endpoint_name: str, timeout: float = 300) -> None:
    """Local mode: poll /ping; cloud: the endpoint waiter. Prints elapsed time."""
    start = time.monotonic()
    if _is_local(session):
        import requests

        while time.monotonic() - start < timeout:
            try:
                if requests.get(f"http://127.0.0.1:{_serving_port(session)}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.25)
        else:
            raise TimeoutError(f"local endpoint {endpoint_name} did not answer /ping within {timeout:.0f} s")
    else:
        session.wait_for_endpoint(endpoint_name, poll=10)
    _say(f"endpoint {endpoint_name} in service after {time.monotonic() - start:.0f} s")


def deploy(session, image: str, model_data: str, endpoint_name: str | None = None, instance_type: str | None = None,
           role: str | None = None, env: dict | None = None):
    """A real-time endpoint; returns a Predictor with CSV in and JSON out."""
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer

    deployable = model(session, image, model_data, role, env)
    # wait=False: the SDK's own wait sleeps a fixed 30 s in local mode; we poll instead.
    deployable.deploy(initial_instance_count=1, instance_type=_instance(session, instance_type),
                      endpoint_name=endpoint_name, wait=False)
    name = deployable.endpoint_name
    _say(f"model {deployable.name}, endpoint config and endpoint {name} created")
    wait_until_serving(session, name)
    return Predictor(name, sagemaker_session=session, serializer=CSVSerializer(), deserializer=JSONDeserializer())


def invoke(session, endpoint_name: str, body: bytes, content_type: str, accept: str | None = None) -> tuple[bytes, str]:
    client = session.sagemaker_runtime_client
    options = {"Accept": accept} if accept else {}
    response = client.invoke_endpoint(EndpointName=endpoint_name, Body=body, ContentType=content_type, **options)
    return response["Body"].read(), response.get("ContentType", "")


def transform(session, image: str, model_data: str, input_path: str, output_path: str, content_type: str = "text/csv",
              accept: str | None = None, instance_type: str | None = None, role: str | None = None,
              env: dict | None = None, max_payload_mb: int = 6, wait: bool = True) -> str:
    """A batch transform over a prefix or folder: split by line, many records per request."""
    transformer = model(session, image, model_data, role, env).transformer(
        instance_count=1, instance_type=_instance(session, instance_type), strategy="MultiRecord",
        assemble_with="Line", output_path=_uri(output_path), accept=accept, max_payload=max_payload_mb)
    start = time.monotonic()
    # logs=False: local mode cannot stream a transform job's logs.
    transformer.transform(_uri(input_path), content_type=content_type, split_type="Line", wait=wait, logs=False)
    _say(f"transform job {transformer.latest_transform_job.name} {'finished' if wait else 'started'} after "
         f"{time.monotonic() - start:.0f} s; output in {transformer.output_path}")
    return transformer.output_path


def register(session, image: str, model_data: str, group: str, approval_status: str = "PendingManualApproval",
             content_types=("text/csv", "application/json"), instance_type: str | None = None) -> str:
    """A model package in a model package group (created when missing)."""
    from botocore.exceptions import ClientError

    client = session.sagemaker_client
    try:
        client.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError:
        client.create_model_package_group(ModelPackageGroupName=group,
                                          ModelPackageGroupDescription="byoc-deploy models")
        _say(f"model package group {group} created")
    instance = instance_type or DEFAULT_INSTANCE
    arn = client.create_model_package(
        ModelPackageGroupName=group, ModelApprovalStatus=approval_status,
        InferenceSpecification={
            "Containers": [{"Image": image, "ModelDataUrl": model_data}],
            "SupportedContentTypes": list(content_types), "SupportedResponseMIMETypes": ["application/json", "text/csv"],
            "SupportedRealtimeInferenceInstanceTypes": [instance], "SupportedTransformInstanceTypes": [instance],
        },
    )["ModelPackageArn"]
    _say(f"model package {arn} registered ({approval_status})")
    return arn


def _local_endpoints(session) -> set[str]:
    """Endpoints this process deployed (local mode keeps them in memory)."""
    return set(getattr(session.sagemaker_client, "_endpoints", {}) or {})


def _stop_local_serving() -> None:
    import subprocess

    ids = subprocess.run(["docker", "ps", "-q", "--filter", "publish=8080"], capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], check=True, capture_output=True)
    _say(f"stopped {len(ids)} local serving container(s) on port 8080")


def teardown(session, endpoint_name: str | None = None, bucket: str | None = None, prefix: str = "") -> None:
    """Endpoint, its config and model, then the bucket's objects under prefix; confirms each."""
    client = session.sagemaker_client
    if endpoint_name and _is_local(session) and endpoint_name not in _local_endpoints(session):
        _stop_local_serving()  # an endpoint another process deployed: only Docker knows it
        endpoint_name = None
    if endpoint_name:
        description = client.describe_endpoint(EndpointName=endpoint_name)
        config_name = description["EndpointConfigName"]
        config = client.describe_endpoint_config(EndpointConfigName=config_name)
        client.delete_endpoint(EndpointName=endpoint_name)
        client.delete_endpoint_config(EndpointConfigName=config_name)
        for variant in config["ProductionVariants"]:
            client.delete_model(ModelName=variant["ModelName"])
            _say(f"deleted model {variant['ModelName']}")
        _say(f"deleted endpoint {endpoint_name} and endpoint config {config_name}")
    if bucket and not _is_local(session):
        s3 = session.boto_session.resource("s3")
        deleted = s3.Bucket(bucket).objects.filter(Prefix=prefix).delete()
        count = sum(len(batch.get("Deleted", [])) for batch in deleted)
        left = list(s3.Bucket(bucket).objects.filter(Prefix=prefix).limit(1))
        _say(f"deleted {count} object(s) under s3://{bucket}/{prefix}; {'none left' if not left else 'SOME LEFT'}")
