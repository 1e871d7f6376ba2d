"""Push a local image to ECR: repository (created when missing, scan on push), login with the
ECR token, tag <account>.dkr.ecr.<region>.amazonaws.com/<name>:<tag>, push; returns the URI."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from botocore.exceptions import ClientError


def _say(message: str) -> None:
    print(f"[byoc-deploy] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _private_docker_config():
    """A Docker client configuration folder of our own (0700, removed afterwards) for the login
    and the push: the ECR token, good for 12 hours, never reaches ~/.docker/config.json or the
    user's credential store. The user's current context comes along, so the same engine is used."""
    user = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    folder = Path(tempfile.mkdtemp(prefix="byoc-docker-config-"))
    try:
        settings = {}
        with contextlib.suppress(OSError, ValueError):
            current = json.loads((user / "config.json").read_text()).get("currentContext")
            if current:
                settings["currentContext"] = current
        (folder / "config.json").write_text(json.dumps(settings))
        if (user / "contexts").is_dir():
            (folder / "contexts").symlink_to(user / "contexts")
        yield str(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def push(image: str, repository: str | None = None, region: str | None = None,
         registry_endpoint: str | None = None, endpoint_url: str | None = None) -> str:
    """Returns the pushed image URI.

    registry_endpoint (or BYOC_REGISTRY_ENDPOINT) replaces the registry host that ECR's token names,
    for a registry mirror or a test registry; endpoint_url (or AWS_ENDPOINT_URL) the ECR API's.
    """
    import boto3

    name, _, tag = image.partition(":")
    tag = tag or "latest"
    repository = repository or name
    ecr = boto3.client("ecr", region_name=region, endpoint_url=endpoint_url)
    try:
        ecr.describe_repositories(repositoryNames=[repository])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "RepositoryNotFoundException":
            raise
        ecr.create_repository(repositoryName=repository, imageScanningConfiguration={"scanOnPush": True},
                              imageTagMutability="MUTABLE")
        _say(f"ECR repository {repository} created (scan on push)")
    token = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(token["authorizationToken"]).decode().partition(":")
    registry = registry_endpoint or os.environ.get("BYOC_REGISTRY_ENDPOINT") or \
        token["proxyEndpoint"].removeprefix("https://").removeprefix("http://")
    uri = f"{registry}/{repository}:{tag}"
    subprocess.run(["docker", "tag", image, uri], check=True)
    with _private_docker_config() as config:
        subprocess.run(["docker", "--config", config, "login", "--username", user, "--password-stdin", registry],
                       input=password, text=True, check=True, capture_output=True)
        _say(f"pushing {image} to {uri}")
        subprocess.run(["docker", "--config", config, "push", uri], check=True, stdout=subprocess.DEVNULL)
    _say(f"pushed: {uri}")
    return uri
