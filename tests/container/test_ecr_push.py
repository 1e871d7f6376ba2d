"""build.sh --push end to end: the ECR API served by moto on 127.0.0.1, the image pushed to a real
registry (Debian's docker-registry) on 127.0.0.1, pulled back and run."""
from __future__ import annotations

import os
import subprocess
import sys

from support import REPO, MotoServer, RegistryServer, TAG, build


def test_build_push_creates_repository_logs_in_pushes_and_pulls_back(tmp_path):
    build("xgboost-hdfs")
    with MotoServer() as moto, RegistryServer(tmp_path) as registry:
        env = {**os.environ, **moto.container_env, "BYOC_REGISTRY_ENDPOINT": registry.endpoint, "PYTHON": sys.executable}
        pushed = subprocess.run([str(REPO / "build.sh"), "--tag", TAG, "--push", "xgboost-hdfs"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=1200)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        uri = f"{registry.endpoint}/xgboost-hdfs:{TAG}"
        assert pushed.stdout.strip().splitlines()[-1] == uri  # the URI is the last line, for scripts
        assert "ECR repository xgboost-hdfs created (scan on push)" in pushed.stdout

        repository = moto.client("ecr").describe_repositories(repositoryNames=["xgboost-hdfs"])["repositories"][0]
        assert repository["imageScanningConfiguration"] == {"scanOnPush": True}

        # Gone locally, then back from the registry, and it runs.
        subprocess.run(["docker", "rmi", uri], check=True, capture_output=True)
        subprocess.run(["docker", "pull", uri], check=True, capture_output=True, timeout=600)
        ran = subprocess.run(["docker", "run", "--rm", uri, "python", "-c", "import xgboost_hdfs, xgboost; print(xgboost.__version__)"],
                             capture_output=True, text=True)
        assert ran.returncode == 0 and ran.stdout.strip() == "3.2.0"
        subprocess.run(["docker", "rmi", uri], capture_output=True)
        # A second push finds the repository and does not create it again.
        again = subprocess.run([str(REPO / "build.sh"), "--tag", TAG, "--push", "xgboost-hdfs"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=1200)
        assert again.returncode == 0 and "created" not in again.stdout
        subprocess.run(["docker", "rmi", uri], capture_output=True)
