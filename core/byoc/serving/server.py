"""Run the ASGI app under gunicorn, with uvicorn's worker (uvloop, httptools), and SageMaker's settings.

Gunicorn keeps what it is good at: the master, preloading, replacing a worker that died, the
graceful stop on SIGTERM and the hard timeout. Each worker is an event loop that parses HTTP in C.

The model is loaded once in the master before any socket is opened (preload), so /ping cannot
answer before the model is ready, a broken model stops the container with a clear message,
and workers share the loaded model's memory copy-on-write.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Callable

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from ..runtime import ModelRuntime
from .app import create_app
from .config import ServerConfig
from .deadline import hard_timeout
from .limits import THREAD_VARIABLES
from .protocol import guarded_protocol

log = logging.getLogger(__name__)
HEARTBEAT_S = 1.0


def thread_pools() -> str:
    """What the loaded native thread pools use, as threadpoolctl sees them (the env if it is absent)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ", ".join(f"{name}={os.environ.get(name)}" for name in THREAD_VARIABLES[:3]) + " (no threadpoolctl)"
    return ", ".join(f"{pool['internal_api']}={pool['num_threads']}" for pool in threadpool_info()) or "none loaded"


class Worker(UvicornWorker):
    """uvicorn's gunicorn worker with the fast loop and parser, and nothing per request we do not use.

    Two additions: the heartbeat to gunicorn's master comes from a task of its own every second
    (uvicorn's comes only every timeout/2 and stops once a shutdown begins), so gunicorn's kill
    is left for a loop that is really blocked; and the app can retire this worker gracefully
    (server.should_exit: stop accepting, finish what is held, exit; the master forks a new one).
    """

    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "off", "access_log": False,
                     "server_header": False}

    async def _serve(self) -> None:
        app = self.wsgi
        self.config.app = app
        self.config.http = guarded_protocol(app.config)
        self.config.timeout_graceful_shutdown = app.config.timeout + app.config.retire_grace
        server = Server(config=self.config)
        app.retire = lambda: setattr(server, "should_exit", True)
        self._install_sigquit_handler()
        log.info("worker %d: thread pools %s", os.getpid(), thread_pools())
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat())
        try:
            await server.serve(sockets=self.sockets)
        finally:
            heartbeat.cancel()
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    async def _heartbeat(self) -> None:
        while True:
            self.notify()
            await asyncio.sleep(HEARTBEAT_S)


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
        # (deadline.py); gunicorn's kill is for a loop blocked that long (a C call holding the GIL).
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
    config = ServerConfig.from_env()  # thread and open-file limits are set already (limits.py, cli.serve)

    def load_app():
        try:
            runtime = runtime_class(config.model_dir)
        except Exception as exc:
            log.exception("could not load the model from %s", config.model_dir)
            sys.exit(f"could not load the model from {config.model_dir}: {exc}")
        log.info("model loaded from %s; %d worker(s) on port %d", config.model_dir, config.workers, config.port)
        return create_app(runtime, config)

    _Server(load_app, {**gunicorn_options(config), **(overrides or {})}).run()
