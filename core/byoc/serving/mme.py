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

log = logging.getLogger(__name__)

HANDLER = f"{__name__}:handle"
# A model needs its files in memory a few times over while XGBoost or joblib parses them, and its
# worker process needs room for the libraries it imports first (numpy, XGBoost or scikit-learn:
# about 80-100 MiB).
LOAD_FACTOR = 3
LOAD_HEADROOM = 128 * 1024 * 1024

_runtime = None  # this worker process's model


def _cgroup_free(limit_file: str, usage_file: str, stat_file: str, inactive_key: str) -> int | None:
    """Limit minus usage, not counting inactive page cache (the kernel reclaims it before OOM)."""
    try:
        limit = Path(limit_file).read_text().strip()
        usage = int(Path(usage_file).read_text())
        stat = dict(line.split() for line in Path(stat_file).read_text().splitlines() if line.count(" ") == 1)
    except (OSError, ValueError):
        return None
    if limit == "max" or int(limit) >= _machine_memory():
        return None  # no limit on this container
    return int(limit) - (usage - int(stat.get(inactive_key, 0)))


def _meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _machine_memory() -> int:
    return _meminfo("MemTotal")


def available_memory() -> int | None:
    """Bytes this container can still use: its cgroup's limit (v2 or v1) if any, else the machine's."""
    free = _cgroup_free("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current",
                        "/sys/fs/cgroup/memory.stat", "inactive_file")
    if free is None:
        free = _cgroup_free("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
                            "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file")
    if free is None:
        try:
            free = _meminfo("MemAvailable") or None
        except OSError:
            return None
    return free


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
    _runtime = algorithm().Runtime(model_dir)
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
