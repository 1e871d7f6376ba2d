"""The life of a model on SageMaker, one function a step. Each reports what it created on stderr so
that a user can find it in the console (stdout is for a step's result, see cli.py);
`session.local_mode` decides local Docker or AWS."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

LOCAL_ROLE = "arn:aws:iam::111111111111:role/byoc-local-mode"  # local mode never uses it
DEFAULT_INSTANCE = "ml.m5.large"


# Local endpoints' containers carry this label with the endpoint's name, so that a teardown in
# another process removes those containers and no others.
ENDPOINT_LABEL = "byoc.endpoint"


def _say(message: str) -> None:
    print(f"[byoc-deploy] {message}", file=sys.stderr, flush=True)


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

    from sagemaker.utils import name_from_image

    deployable = model(session, image, model_data, role, env)
    name = endpoint_name or name_from_image(image)
    local_config = session.config if _is_local(session) else None
    if local_config is not None:  # local mode starts the container inside deploy(): label it first
        local = local_config.get("local", {})
        container = {**local.get("container_config", {})}
        container["labels"] = {**container.get("labels", {}), ENDPOINT_LABEL: name}
        session.config = {**local_config, "local": {**local, "container_config": container}}
    try:
        # wait=False: the SDK's own wait sleeps a fixed 30 s in local mode; we poll instead.
        deployable.deploy(initial_instance_count=1, instance_type=_instance(session, instance_type),
                          endpoint_name=name, wait=False)
    finally:
        if local_config is not None:
            session.config = local_config
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


def _docker(*args: str) -> str:
    import subprocess

    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def _labelled_containers(endpoint_name: str) -> list[str]:
    """`id name` of the containers local mode started for this endpoint (in any process)."""
    return _docker("ps", "-a", "--filter", f"label={ENDPOINT_LABEL}={endpoint_name}",
                   "--format", "{{.ID}} {{.Names}}").splitlines()


def _folder(prefix: str) -> str:
    """A prefix names a folder: "byoc" and "byoc/" are byoc/, never byoc-prod/."""
    folder = prefix.strip().lstrip("/")
    if not folder.strip("/"):
        raise ValueError("--prefix must name a folder of the bucket (deleting a whole bucket is not a teardown step)")
    return folder.rstrip("/") + "/"


@dataclass
class Plan:
    """What a teardown deletes, found before anything is deleted."""
    endpoint: str | None = None
    endpoint_config: str | None = None
    models: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)  # local endpoints of another process: "id name"
    bucket: str | None = None
    folder: str | None = None
    objects: list[tuple[str, int]] = field(default_factory=list)  # (key, bytes)

    def lines(self, limit: int | None = 50) -> list[str]:
        lines = []
        if self.endpoint_config:
            lines.append(f"endpoint {self.endpoint}, endpoint config {self.endpoint_config}, "
                         f"model(s) {', '.join(self.models) or '-'}")
        lines += [f"local container {c} of endpoint {self.endpoint}" for c in self.containers]
        if self.bucket:
            size = sum(n for _, n in self.objects)
            lines.append(f"{len(self.objects)} object(s), {size:,} bytes, under s3://{self.bucket}/{self.folder}")
            shown = self.objects if limit is None else self.objects[:limit]
            lines += [f"  s3://{self.bucket}/{key} ({n:,} bytes)" for key, n in shown]
            if len(shown) < len(self.objects):
                lines.append(f"  ... and {len(self.objects) - len(shown)} more (--dry-run lists them all)")
        return lines

    @property
    def empty(self) -> bool:
        return not (self.endpoint_config or self.containers or self.objects)


def plan_teardown(session, endpoint_name: str | None = None, bucket: str | None = None,
                  prefix: str | None = None) -> Plan:
    plan = Plan(endpoint=endpoint_name)
    if endpoint_name:
        if _is_local(session) and endpoint_name not in _local_endpoints(session):
            # deployed by another process (byoc-deploy deploy --local): only Docker knows it
            plan.containers = _labelled_containers(endpoint_name)
            if not plan.containers:
                raise LookupError(f"no local endpoint {endpoint_name}: no container labelled "
                                  f"{ENDPOINT_LABEL}={endpoint_name}")
        else:
            from botocore.exceptions import ClientError

            client = session.sagemaker_client
            try:
                plan.endpoint_config = client.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
            except ClientError as exc:
                raise LookupError(f"no endpoint {endpoint_name}: {exc}") from None
            config = client.describe_endpoint_config(EndpointConfigName=plan.endpoint_config)
            plan.models = [variant["ModelName"] for variant in config["ProductionVariants"]]
    if bucket:
        if _is_local(session):
            raise ValueError("--bucket is for the cloud: local mode keeps its files on this machine")
        plan.bucket, plan.folder = bucket, _folder(prefix or "")
        pages = session.boto_session.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=plan.folder)
        plan.objects = [(o["Key"], o["Size"]) for page in pages for o in page.get("Contents", [])]
    return plan


def execute_teardown(session, plan: Plan) -> None:
    if plan.containers:
        _docker("rm", "-f", *(c.split()[0] for c in plan.containers))
        _say(f"removed {len(plan.containers)} local container(s) of endpoint {plan.endpoint}")
    if plan.endpoint_config:
        client = session.sagemaker_client
        client.delete_endpoint(EndpointName=plan.endpoint)
        client.delete_endpoint_config(EndpointConfigName=plan.endpoint_config)
        for name in plan.models:
            client.delete_model(ModelName=name)
            _say(f"deleted model {name}")
        _say(f"deleted endpoint {plan.endpoint} and endpoint config {plan.endpoint_config}")
    if plan.objects:
        s3 = session.boto_session.client("s3")
        keys = [key for key, _ in plan.objects]
        errors = []
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys a call
            batch = [{"Key": key} for key in keys[start:start + 1000]]
            errors += s3.delete_objects(Bucket=plan.bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors", [])
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=plan.bucket, Prefix=plan.folder)
        left = {o["Key"] for page in pages for o in page.get("Contents", [])} & set(keys)
        _say(f"deleted {len(keys) - len(left)} object(s) under s3://{plan.bucket}/{plan.folder}; "
             + ("none of them left" if not left else f"{len(left)} LEFT, e.g. {sorted(left)[0]}"))
        if errors or left:
            raise RuntimeError(f"some objects were not deleted: {errors[:3] or sorted(left)[:3]}")


def teardown(session, endpoint_name: str | None = None, bucket: str | None = None, prefix: str | None = None,
             confirm=None, dry_run: bool = False) -> Plan:
    """Endpoint, its config and model (local: its containers), and the objects under a bucket's
    folder. Lists them first; confirm(plan) -> bool decides (the CLI asks, or --yes); dry_run
    only lists. Returns the plan."""
    plan = plan_teardown(session, endpoint_name, bucket, prefix)
    if plan.empty:
        _say("nothing to delete")
        return plan
    _say("dry run, would delete:" if dry_run else "to delete:")
    for line in plan.lines(limit=None if dry_run else 50):
        _say(f"  {line}")
    if dry_run:
        return plan
    if confirm is not None and not confirm(plan):
        raise SystemExit("byoc-deploy: nothing deleted")
    execute_teardown(session, plan)
    return plan
