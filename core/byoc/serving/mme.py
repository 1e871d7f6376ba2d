"""Multi-model endpoints: multi-model-server (MMS) started by sagemaker-inference, serving the same
ModelRuntime and codecs as the single-model server.

With SAGEMAKER_MULTI_MODEL=true, SageMaker drives MMS's API on port 8080: POST /models
(load {"model_name", "url"}), GET /models, GET /models/<name>, POST /models/<name>/invoke and
DELETE /models/<name>. MMS runs one Python worker process per loaded model (more with
SAGEMAKER_MODEL_SERVER_WORKERS); each imports this module and calls `handle`.

https://docs.aws.amazon.com/sagemaker/latest/dg/mms-container-apis.html
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..errors import RequestError
from ..memory import available_memory

log = logging.getLogger(__name__)

HANDLER = f"{__name__}:handle"
# A model needs its files in memory a few times over while XGBoost or joblib parses them, and its
# worker process needs room for the libraries it imports first (numpy, XGBoost or scikit-learn:
# about 80-100 MiB).
LOAD_FACTOR = 3
LOAD_HEADROOM = 128 * 1024 * 1024

_runtime = None  # this worker process's model


def _check_memory(model_dir: Path) -> None:
    """MME contract: not enough memory to load a model -> 507, so SageMaker unloads others and retries."""
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    needed, free = size * LOAD_FACTOR + LOAD_HEADROOM, available_memory()
    if free is not None and free < needed:
        # MMS answers a MemoryError raised while loading with 507 Insufficient Storage.
        raise MemoryError(f"loading {model_dir.name} needs about {needed >> 20} MiB, "
                          f"{max(free, 0) >> 20} MiB are free in this container")


def _load(model_dir: str) -> None:
    global _runtime
    from ..cli import algorithm

    _check_memory(Path(model_dir))
    try:
        _runtime = algorithm().Runtime(model_dir)
    except Exception as exc:
        # MMS answers POST /models with its own 500 "Failed to start workers" and unregisters the
        # model; this line is where the reason is told (the log, CloudWatch on SageMaker).
        log.error("could not load the model from %s: %s", model_dir, exc)
        raise
    log.info("loaded model from %s", model_dir)


def _header(properties: dict, name: str) -> str | None:
    wanted = name.lower()
    for key, value in properties.items():
        key = key.decode() if isinstance(key, bytes) else key
        if key.lower() == wanted:
            return value.decode() if isinstance(value, bytes) else value
    return None


def handle(data, context):
    """MMS entry point: handle(None, context) once to load, then a batch of requests per call."""
    if data is None:
        _load(context.system_properties["model_dir"])
        return None
    responses = []
    for index, request in enumerate(data):
        body = request.get("body") or request.get("data") or b""
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        elif isinstance(body, str):
            body = body.encode()
        headers = context.get_all_request_header(index)
        try:
            payload, mimetype = _runtime.invoke(body, _header(headers, "Content-Type"), _header(headers, "Accept"))
        except RequestError as exc:
            context.set_response_status(code=exc.status, phrase=type(exc).__name__, idx=index)
            payload, mimetype = json.dumps({"error": str(exc)}).encode(), "application/json"
        context.set_response_content_type(index, mimetype)
        responses.append(payload)
    return responses


def serve() -> None:
    """Start MMS the way SageMaker's own containers do, with our handler; returns when MMS exits."""
    from sagemaker_inference import model_server

    os.environ.setdefault("SAGEMAKER_HANDLER", HANDLER)
    model_server.start_model_server(handler_service=HANDLER)
