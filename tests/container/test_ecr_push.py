"""build.sh --push end to end: the ECR API served by moto on 127.0.0.1, the image pushed to a real
registry (Debian's docker-registry) on 127.0.0.1, pulled back and run; the ECR token is left nowhere."""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from support import REPO, MotoServer, RegistryServer, TAG, build


def test_build_push_creates_repository_logs_in_pushes_and_pulls_back(tmp_path):
    build("xgboost-hdfs")
    user_config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    config_before = user_config.read_bytes() if user_config.exists() else None
    temp = tmp_path / "tmp"  # the push's temporary folder, to see what it leaves
    temp.mkdir()
    with MotoServer() as moto, RegistryServer(tmp_path) as registry:
        env = {**os.environ, **moto.container_env, "BYOC_REGISTRY_ENDPOINT": registry.endpoint, "PYTHON": sys.executable,
               "TMPDIR": str(temp)}
        pushed = subprocess.run([str(REPO / "build.sh"), "--tag", TAG, "--push", "xgboost-hdfs"], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=1200)
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        uri = f"{registry.endpoint}/xgboost-hdfs:{TAG}"
        assert pushed.stdout.strip().splitlines()[-1] == uri  # the URI is the last line, for scripts
        assert "ECR repository xgboost-hdfs created (scan on push)" in pushed.stderr  # progress: stderr
        # The 12-hour token (moto's: "123456789012-auth-token") is in no Docker config afterwards.
        assert (user_config.read_bytes() if user_config.exists() else None) == config_before
        assert list(temp.iterdir()) == []
        token = b"123456789012-auth-token"
        for folder in (temp, user_config.parent):
            for path in (p for p in folder.rglob("*") if p.is_file()) if folder.exists() else ():
                data = path.read_bytes()
                assert token not in data and base64.b64encode(b"AWS:" + token) not in data, path

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
        assert again.returncode == 0 and "created" not in again.stdout + again.stderr
        subprocess.run(["docker", "rmi", uri], capture_output=True)
