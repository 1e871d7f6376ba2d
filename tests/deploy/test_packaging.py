"""`pip install ./deploy`, as the README says, leaves the work tree as it was (setuptools builds
in deploy/build/, which .gitignore names)."""
from __future__ import annotations

import subprocess
import sys

from support import REPO


def _untracked_or_changed() -> set[str]:
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True).stdout
    return set(status.splitlines())


def test_pip_install_deploy_leaves_the_work_tree_clean(tmp_path):
    before = _untracked_or_changed()
    # Into a prefix of its own (nothing changes in the test venv); --no-build-isolation uses this
    # venv's setuptools instead of fetching one, the build itself is the one `pip install ./deploy` runs.
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                                "--prefix", str(tmp_path / "prefix"), "./deploy"],
                               cwd=REPO, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert (tmp_path / "prefix" / "bin" / "byoc-deploy").exists()
    assert list((tmp_path / "prefix").glob("lib/python*/site-packages/byoc_deploy/cli.py"))
    assert _untracked_or_changed() - before == set()
