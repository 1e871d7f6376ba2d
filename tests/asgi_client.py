"""Calls the serving app in process, the way uvicorn calls it: one ASGI scope per request.

For unit tests of the app's own rules (routes, limits, errors); the images are tested over real
HTTP in tests/container/.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field


@dataclass
class Response:
    status_code: int
    headers: dict = field(default_factory=dict)  # lower-case names
    data: bytes = b""

    @property
    def text(self) -> str:
        return self.data.decode()

    @property
    def mimetype(self) -> str:
        return self.headers.get("content-type", "").split(";")[0]

    def get_json(self):
        return json.loads(self.data)


class Client:
    def __init__(self, app):
        self.app = app

    def request(self, method: str, path: str, data: bytes = b"", content_type: str | None = None,
                headers: dict | list | None = None, chunks: list[bytes] | None = None) -> Response:
        """chunks: send the body in these pieces without Content-Length (as a chunked upload arrives)."""
        pairs = headers.items() if isinstance(headers, dict) else headers or []  # a list may repeat a name
        raw = [(k.lower().encode(), v.encode()) for k, v in pairs]
        if content_type is not None:
            raw.append((b"content-type", content_type.encode()))
        if chunks is None:
            chunks = [data]
            raw.append((b"content-length", str(len(data)).encode()))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method.upper(),
                 "path": path, "raw_path": path.encode(), "query_string": b"", "headers": raw}
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
        response = Response(0)

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                response.status_code = message["status"]
                response.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
            else:
                response.data += message.get("body", b"")

        asyncio.run(self.app(scope, receive, send))
        return response

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> Response:
        return self.request("POST", path, **kwargs)

    def options(self, path: str, **kwargs) -> Response:
        return self.request("OPTIONS", path, **kwargs)

    def put(self, path: str, **kwargs) -> Response:
        return self.request("PUT", path, **kwargs)
