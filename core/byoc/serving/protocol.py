"""uvicorn's httptools protocol with the guards a server facing the network needs.

- Header deadline: a connection that has not sent a request's complete headers within
  BYOC_HEADER_TIMEOUT seconds of connecting (or of the request's first byte on a kept-alive
  connection) gets a 408 and is closed. uvicorn has no such deadline: a half-sent request (or a
  connection that never sends anything) would hold its file descriptor forever (slowloris).
- Body deadline: a body that stalls for BYOC_BODY_TIMEOUT seconds, or is not complete within
  SAGEMAKER_MODEL_SERVER_TIMEOUT of its headers, gets a JSON 408 and the connection is closed
  (the app then sees a disconnect). Here rather than in the app, so a body that arrives with its
  headers (every small request) costs no timer at all.
- Connection cap: past BYOC_MAX_CONNECTIONS (below the open-file limit), the oldest connection
  without a request in progress is closed to make room, so the worker never runs out of file
  descriptors and a new /ping still gets in. uvicorn's limit_concurrency would instead answer
  503 to every request, /ping included.
"""
from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import ServerConfig

_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


class GuardedProtocol(HttpToolsProtocol):
    header_timeout: float = 10
    body_timeout: float = 10
    request_timeout: float = 60
    max_connections: int = 960
    _warned_at = float("-inf")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.connected_at = self.loop.time()
        self.header_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.body_deadline = 0.0
        self._arm_header_timer()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_started and not self.transport.is_closing():
            # The body is still coming: (re)start its stall timer, never past the request's deadline.
            self._cancel_body_timer()
            delay = min(self.body_timeout, self.body_deadline - self.loop.time())
            self.body_timer = self.loop.call_later(max(delay, 0), self._body_too_slow)

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.header_timer is None:
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        self.body_deadline = self.loop.time() + self.request_timeout
        super().on_headers_complete()

    def _arm_header_timer(self) -> None:
        self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _cancel_body_timer(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _body_too_slow(self) -> None:
        self.body_timer = None
        if self.transport.is_closing() or self.cycle is None or self.cycle.response_started:
            return
        if self.loop.time() >= self.body_deadline:
            reason = b"was not complete within SAGEMAKER_MODEL_SERVER_TIMEOUT=%d s" % self.request_timeout
        else:
            reason = b"stalled for BYOC_BODY_TIMEOUT=%d s" % self.body_timeout
        self._close_with_408(b'{"error": "the request body %s; send it faster or in one piece"}' % reason)

    def _close_with_408(self, body: bytes) -> None:
        self.transport.write(_408 % (len(body), body))
        self.transport.close()

    def _idle(self) -> bool:
        """No request of this connection is being answered (it is idle or still sending headers)."""
        return self.cycle is None or self.cycle.response_complete

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if self.transport.is_closing():
            return
        if not self._idle():  # a pipelined request behind one being answered: close after that one
            self.cycle.keep_alive = False
            return
        self._close_with_408(b'{"error": "the request headers did not arrive within BYOC_HEADER_TIMEOUT=%d s"}'
                             % self.header_timeout)

    def _make_room(self) -> None:
        idle = [c for c in self.connections if c is not self and isinstance(c, GuardedProtocol) and c._idle()
                and not c.transport.is_closing()]
        victim = min(idle, key=lambda c: c.connected_at) if idle else self
        now = self.loop.time()
        if now - GuardedProtocol._warned_at > 10:  # one line per 10 s, however many connections
            GuardedProtocol._warned_at = now
            self.logger.warning("%d connections (BYOC_MAX_CONNECTIONS=%d): closing the oldest idle ones",
                                len(self.connections), self.max_connections)
        victim.transport.close()


def guarded_protocol(config: ServerConfig) -> type[GuardedProtocol]:
    """The protocol class for uvicorn's Config(http=...), with this server's limits."""
    return type("GuardedProtocol", (GuardedProtocol,), {
        "header_timeout": config.header_timeout, "body_timeout": config.body_timeout,
        "request_timeout": config.timeout, "max_connections": config.max_connections})
