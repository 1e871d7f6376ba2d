"""Run the ASGI app under gunicorn, with uvicorn's worker (uvloop, httptools), and SageMaker's settings.

Gunicorn keeps what it is good at: the master, preloading, replacing a worker that died, the
graceful stop on SIGTERM and the hard timeout. Each worker is an event loop that parses HTTP in C.

The model is loaded once in the master before any socket is opened (preload), so /ping cannot
answer before the model is ready, a broken model stops the container with a clear message,
and workers share the loaded model's memory copy-on-write.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Callable

from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from ..runtime import ModelRuntime
from .app import create_app
from .config import ServerConfig
from .deadline import hard_timeout

log = logging.getLogger(__name__)


class Worker(UvicornWorker):
    """uvicorn's gunicorn worker with the fast loop and parser, and nothing per request we do not use."""

    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "off", "access_log": False,
                     "server_header": False}


class _Server(BaseApplication):
    def __init__(self, load_app: Callable, options: dict):
        self._load_app = load_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._load_app()


def gunicorn_options(config: ServerConfig) -> dict:
    """gunicorn's settings for this server (benchmarks/serving.py measures alternatives)."""
    return {
        "bind": f"0.0.0.0:{config.port}",
        "workers": config.workers,
        # The app answers a request past SAGEMAKER_MODEL_SERVER_TIMEOUT with a 504 itself
        # (deadline.py); gunicorn's kill comes later, for work that never returns to Python.
        "timeout": hard_timeout(config.timeout),
        "graceful_timeout": 20,
        "preload_app": True,
        "worker_class": f"{__name__}.Worker",
        # Idle keep-alive connections cost an event loop nothing; clients that reuse them skip a
        # TCP handshake per request.
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
    }


def serve(runtime_class: type[ModelRuntime], overrides: dict | None = None) -> None:
    """overrides: gunicorn settings over gunicorn_options() (for benchmarks, not for SageMaker)."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig.from_env()
    # One compute thread per worker: workers are the unit of parallelism.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    def load_app():
        try:
            runtime = runtime_class(config.model_dir)
        except Exception as exc:
            log.exception("could not load the model from %s", config.model_dir)
            sys.exit(f"could not load the model from {config.model_dir}: {exc}")
        log.info("model loaded from %s; %d worker(s) on port %d", config.model_dir, config.workers, config.port)
        return create_app(runtime, config)

    _Server(load_app, {**gunicorn_options(config), **(overrides or {})}).run()
