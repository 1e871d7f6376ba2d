"""The `train` and `serve` commands SageMaker runs (`docker run IMAGE train|serve`).

The image names its algorithm with BYOC_ALGORITHM: a module with `train(env)` and `Runtime`.
`serve` runs the single-model server, or multi-model-server when SAGEMAKER_MULTI_MODEL=true.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys


def algorithm():
    name = os.environ.get("BYOC_ALGORITHM")
    if not name:
        sys.exit("BYOC_ALGORITHM is not set: the image must name its algorithm module")
    return importlib.import_module(name)


def train() -> None:
    from .training import run

    # The algorithm's (slow) imports run inside run(), whose SIGTERM handler is already in place.
    sys.exit(run(lambda env: algorithm().train(env)))


def serve() -> None:
    # Until the server installs its own handlers, SIGTERM (docker stop) would be ignored: PID 1 has
    # no default action. Loading libraries and the model can take a while: stop at once, with 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from .serving.limits import prepare_serving

    # Before the algorithm's imports: native thread pools read their limits when loaded.
    prepare_serving()
    if os.environ.get("SAGEMAKER_MULTI_MODEL", "").strip().lower() == "true":
        from .serving import mme

        mme.serve()
        return
    from .serving.server import serve as run_server

    run_server(algorithm().Runtime)
