"""The `train` and `serve` commands SageMaker runs (`docker run IMAGE train|serve`).

The image names its algorithm with BYOC_ALGORITHM: a module with `train(env)` and `Runtime`.
"""
from __future__ import annotations

import importlib
import os
import sys


def _algorithm():
    name = os.environ.get("BYOC_ALGORITHM")
    if not name:
        sys.exit("BYOC_ALGORITHM is not set: the image must name its algorithm module")
    return importlib.import_module(name)


def train() -> None:
    from .training import run

    sys.exit(run(_algorithm().train))


def serve() -> None:
    from .serving.server import serve as run_server

    run_server(_algorithm().Runtime)
