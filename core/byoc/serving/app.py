"""SageMaker's serving contract as one small ASGI app: /ping, /invocations, /execution-parameters.

No web framework: three fixed routes need no router, and every layer a framework adds is paid on
each request (flask under gunicorn was 1.3 ms of a 1.6 ms single-row request; README, "Serving
benchmark"). Bad requests get a 4xx with {"error": "..."}; nothing a client sends gives a 500.

The event loop only does HTTP: the model runs in the worker's compute thread (deadline.py), so
/ping and the worker's heartbeat never wait for a computation. SAGEMAKER_MODEL_SERVER_TIMEOUT
covers the whole request: a body not read in time is a 408 (so is a body that stalls for
BYOC_BODY_TIMEOUT; both answered by protocol.py), a computation not done in time a 504. A computation still running
BYOC_RETIRE_GRACE seconds after its 504 makes the worker retire (`retire`, set by server.py).
At most BYOC_MAX_CONCURRENT_INVOCATIONS requests are held per worker; more get a 503 at once.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Callable

from ..codecs import CSV, JSONLINES
from ..errors import PayloadTooLarge, RequestError
from ..runtime import ModelRuntime
from .config import ServerConfig
from .deadline import ComputeThreads, DeadlineExceeded

log = logging.getLogger(__name__)
LINE_TYPES = (CSV, JSONLINES)
# One method per path; GET routes answer HEAD too (the server drops the body). Anything else:
# an unknown path is a JSON 404, another method a JSON 405 naming the allowed one (openapi.yaml).
ROUTES = {"/ping": "GET", "/execution-parameters": "GET", "/invocations": "POST"}
JSON_TYPE = b"application/json"
_SLASHES = re.compile(r"//+")


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


class ServingApp:
    """The ASGI application: `ServingApp(runtime, config)` is what the server runs."""

    def __init__(self, runtime: ModelRuntime, config: ServerConfig):
        self.runtime, self.config = runtime, config
        self.compute = ComputeThreads()
        self.active = 0  # /invocations held now (reading, queued or computing)
        # Stops this worker gracefully (server.py); None when no server runs the app (unit tests).
        self.retire: Callable[[], None] | None = None
        self.retiring = False
        self.limit = config.max_payload_bytes
        self.execution_parameters = json.dumps({
            "MaxConcurrentTransforms": config.workers,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": config.max_payload_mb,
        }).encode()
        self._type_headers: dict[str, bytes] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # the server runs without lifespan events; nothing else is served
            return
        path, method = scope["path"], scope["method"]
        if "//" in path:  # repeated slashes count as one ("//ping"), never a redirect
            path = _SLASHES.sub("/", path)
        allowed = ROUTES.get(path)
        if allowed is None:
            await self._send(send, 404, error_body(f"no such path: {path}; this server answers {sorted(ROUTES)}"))
        elif method != allowed and not (method == "HEAD" and allowed == "GET"):
            await self._send(send, 405, error_body(f"{method} is not allowed on {path}; use {allowed}"),
                             extra=[(b"allow", allowed.encode())])
        elif path == "/invocations":
            if self.active >= self.config.max_invocations:
                return await self._send(send, 503, error_body(
                    f"this worker already holds {self.active} requests (BYOC_MAX_CONCURRENT_INVOCATIONS); "
                    "retry shortly"), extra=[(b"retry-after", b"1")])
            self.active += 1
            try:
                await self._invocations(scope, receive, send)
            finally:
                self.active -= 1
        elif path == "/ping":
            # The model is loaded before the first worker accepts a connection (server.py): a
            # worker that answers at all is ready.
            await self._send(send, 200, b"{}")
        else:
            await self._send(send, 200, self.execution_parameters)

    async def _invocations(self, scope, receive, send) -> None:
        started = time.monotonic()
        content_type = accept = length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = content_type or value.decode("latin-1")
            elif name == b"accept":  # repeated Accept headers are one comma-separated list
                accept = value.decode("latin-1") if accept is None else f"{accept},{value.decode('latin-1')}"
            elif name == b"content-length" and value.isdigit():  # the HTTP parser refuses other values
                length = int(value)
        try:
            if length is not None and length > self.limit:
                raise PayloadTooLarge(f"body of {length} bytes is over the {self.config.max_payload_mb} MB limit "
                                      "(SAGEMAKER_MAX_PAYLOAD_IN_MB)")
            body = await self._read_body(receive)
            if body is None:  # the client went away
                return
            try:
                payload, mimetype = await self.compute.run(
                    lambda: self.runtime.invoke(body, content_type, accept),
                    self.config.timeout - (time.monotonic() - started))
            except DeadlineExceeded as exc:
                if exc.running:
                    asyncio.get_running_loop().call_later(self.config.retire_grace, self._retire_if_running, exc)
                return await self._timed_out(send, length, content_type)
        except RequestError as exc:
            return await self._send(send, exc.status, error_body(str(exc)))
        except Exception as exc:
            log.exception("unexpected error while serving")
            return await self._send(send, 500, error_body(f"internal error: {type(exc).__name__}: {exc}"))
        if self.config.batch and mimetype in LINE_TYPES and payload.endswith(b"\n"):
            # Batch transform with AssembleWith=Line adds a newline after each response itself:
            # without this one more, every input line gives exactly one output line.
            payload = payload[:-1]
        await self._send(send, 200, payload, mimetype)

    async def _timed_out(self, send, length: int | None, content_type: str | None) -> None:
        log.warning("504: request not done within SAGEMAKER_MODEL_SERVER_TIMEOUT=%d s (%s bytes of %s)",
                    self.config.timeout, length, content_type)
        await self._send(send, 504, error_body(
            f"the request took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT={self.config.timeout} s; "
            "send fewer rows per request or raise SAGEMAKER_MODEL_SERVER_TIMEOUT"))

    def _retire_if_running(self, overrun: DeadlineExceeded) -> None:
        if not overrun.running or self.retiring:
            return
        self.retiring = True
        log.warning("a computation is still running %d s after its 504 (BYOC_RETIRE_GRACE): this worker "
                    "finishes its other requests and exits, gunicorn starts a fresh one", self.config.retire_grace)
        if self.retire is not None:
            self.retire()

    async def _read_body(self, receive) -> bytes | None:
        """The whole body, or PayloadTooLarge as soon as it passes the limit (chunked bodies too).
        A body that stalls or comes too late gets its 408 from the protocol (protocol.py): here it
        ends as a disconnect."""
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body = message.get("body", b"")
        if not message.get("more_body"):  # the usual case: one message
            if len(body) > self.limit:
                raise self._too_large()
            return body
        chunks, size = [body], len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"body is over the {self.config.max_payload_mb} MB limit (SAGEMAKER_MAX_PAYLOAD_IN_MB)")

    async def _send(self, send, status: int, body: bytes, mimetype: str | None = None, extra: list | None = None) -> None:
        content_type = self._type_headers.get(mimetype) if mimetype else JSON_TYPE
        if content_type is None:
            content_type = self._type_headers[mimetype] = mimetype.encode("latin-1")
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(runtime: ModelRuntime, config: ServerConfig) -> ServingApp:
    return ServingApp(runtime, config)
