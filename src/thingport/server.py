"""The HTTP server as ``thingport serve`` runs it: uvicorn, plus the guards uvicorn lacks.

uvicorn closes a kept-alive connection that stays idle (``timeout_keep_alive``), but sets no time
limit on *receiving* a request: a connection that sends nothing, or its headers a byte at a time
(slowloris), or its body a byte at a time, is held for as long as the client likes, and nothing
limits how many connections one address opens. :func:`guarded_protocol` makes a subclass of
uvicorn's httptools protocol (the one ``uvicorn[standard]`` runs) that adds:

* a deadline for the request head, ``http_header_timeout_s``, from the connection's start or from
  the first byte of the next request on a kept-alive one, and a size limit on it,
  ``http_max_header_bytes``: past either, HTTP 408 / 431 and the connection is closed;
* a deadline for the body, ``http_body_timeout_s``, from the end of the head: past it the
  connection is closed and the application sees the client gone;
* at most ``http_connections_per_address`` open connections from one address: one more is
  answered HTTP 503 and closed at once.

Connections cut off are counted in one warning line a minute (docs/operations.md, "Limits").
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from thingport.logs import LogLimiter
from thingport.settings import Settings

log = logging.getLogger(__name__)

HEAD, BODY, IDLE = "head", "body", "idle"

_ANSWERS = {
    408: b"HTTP/1.1 408 Request Timeout\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
    503: b"HTTP/1.1 503 Service Unavailable\r\n",
}


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` for ``settings``."""
    return {"host": settings.host, "port": settings.http_port, "log_level": settings.log_level, "access_log": False,
            **guard_options(settings)}


def guard_options(settings: Settings) -> dict[str, Any]:
    """The options that hold connections to ``settings``' limits (the guarded protocol among them)."""
    return {"http": guarded_protocol(settings), "timeout_keep_alive": settings.http_keep_alive_s,
            "limit_concurrency": settings.http_max_connections or None}


def guarded_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """A protocol class with ``settings``' limits and its own count of connections per address
    (one server per class: uvicorn makes one protocol object per connection)."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {
        "header_timeout_s": settings.http_header_timeout_s, "body_timeout_s": settings.http_body_timeout_s,
        "max_header_bytes": settings.http_max_header_bytes,
        "per_address": settings.http_connections_per_address, "open_by_address": Counter(),
        "cut_off": LogLimiter(),
    })


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines and a per-address connection cap."""

    header_timeout_s: ClassVar[float]
    body_timeout_s: ClassVar[float]
    max_header_bytes: ClassVar[int]
    per_address: ClassVar[int]
    open_by_address: ClassVar[Counter[str]]
    cut_off: ClassVar[LogLimiter]

    _phase = IDLE
    _deadline: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _address: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else ""
        self.open_by_address[self._address] += 1
        if self.per_address and self.open_by_address[self._address] > self.per_address:
            self._refuse(503, f"more than {self.per_address} connections from one address")
            return
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            self.open_by_address[self._address] -= 1
            if self.open_by_address[self._address] <= 0:
                del self.open_by_address[self._address]
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():  # refused or cut off: what still arrives is not read
            return
        if self._phase == IDLE and (self.cycle is None or self.cycle.response_complete):
            self._begin_head()  # the first byte of the next request on a kept-alive connection
        if self._phase == HEAD:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._phase == HEAD and self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._refuse(431, f"a request head over {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase != HEAD:
            self._begin_head()

    def on_headers_complete(self) -> None:
        self._phase, self._head_bytes = BODY, 0
        self._arm(self.body_timeout_s, "a request body not received")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = IDLE
        self._disarm()
        super().on_message_complete()

    # ----------------------------------------------------------------------------------------

    def _begin_head(self) -> None:
        self._phase, self._head_bytes = HEAD, 0
        self._arm(self.header_timeout_s, "a request head not received")

    def _arm(self, delay_s: float, what: str) -> None:
        self._disarm()
        if delay_s > 0:
            self._deadline = self.loop.call_later(delay_s, self._late, f"{what} within {delay_s:g} s")

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _late(self, why: str) -> None:
        self._deadline = None
        if self._phase == HEAD:
            self._refuse(408, why)
        elif not self.transport.is_closing():  # the application reading the body sees the client gone
            self._report(why)
            self.transport.close()

    def _refuse(self, status: int, why: str) -> None:
        """Answer ``status`` (unless a response is under way) and close the connection."""
        self._disarm()
        self._phase = IDLE
        if self.transport.is_closing():
            return
        self._report(why)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_ANSWERS[status] + b"content-length: 0\r\nconnection: close\r\n\r\n")
        self.transport.close()

    def _report(self, why: str) -> None:
        self.cut_off.log(log, logging.WARNING, why, "closed a connection from %s: %s", self._address or "?", why)
