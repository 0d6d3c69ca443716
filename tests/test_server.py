"""The HTTP server's guards on real sockets: slow clients are cut off, one address has a cap."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
import uvicorn

from thingport.app import create_app
from thingport.server import server_options
from thingport.services.container import Services
from thingport.settings import Settings

pytestmark = [pytest.mark.slow]  # real servers on loopback sockets, deadlines of half a second


async def echo_app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                   send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """Reads the whole body, answers its length; on a disconnect answers nothing."""
    assert scope["type"] == "http"
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


class Server:
    """uvicorn with ``serve``'s options on a loopback socket that listens before uvicorn starts, so
    a test connects at once instead of waiting for start-up."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        options = {**server_options(settings), "host": "127.0.0.1", "port": self.port, "log_level": "warning"}
        self.server = uvicorn.Server(uvicorn.Config(app, lifespan="off", timeout_graceful_shutdown=1, **options))
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Server:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await self.task
        self.sock.close()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


async def closed_after(reader: asyncio.StreamReader, started: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    data = await asyncio.wait_for(reader.read(), timeout=10)
    return data, time.monotonic() - started


def limits(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **{"http_header_timeout_s": 0.5, "http_body_timeout_s": 0.5, **changes})


@pytest.fixture
def quick(tmp_path: Any) -> Settings:
    return limits(Settings(data_dir=tmp_path))


@pytest.fixture
async def served(quick: Settings) -> AsyncIterator[Server]:
    async with Server(echo_app, quick) as server:
        yield server


async def test_a_request_in_time_is_answered(served: Server) -> None:
    reader, writer = await served.connect()
    writer.write(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    assert await reader.readexactly(1) == b"5"
    writer.close()


async def test_a_silent_connection_is_closed_at_the_head_deadline(served: Server) -> None:
    started = time.monotonic()
    reader, _ = await served.connect()
    data, after = await closed_after(reader, started)
    assert data.startswith(b"HTTP/1.1 408 ") and 0.5 <= after < 3


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(served: Server) -> None:
    """The slowloris client: every byte arrives in time, the head never does."""
    started = time.monotonic()
    reader, writer = await served.connect()
    head = b"POST / HTTP/1.1\r\nhost: t\r\nx-slow: " + b"a" * 100
    closing = asyncio.create_task(closed_after(reader, started))
    for byte in head:  # the client's own pace, not a wait for the server
        if closing.done():
            break
        writer.write(bytes([byte]))
        await asyncio.sleep(0.02)
    data, after = await closing
    assert data.startswith(b"HTTP/1.1 408 ") and 0.5 <= after < 2


async def test_a_body_sent_too_slowly_is_cut_off(served: Server) -> None:
    started = time.monotonic()
    reader, writer = await served.connect()
    writer.write(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n0123456789")
    data, after = await closed_after(reader, started)
    assert data == b"" and 0.5 <= after < 3  # the application saw the client go and answered nothing


async def test_the_next_request_on_a_kept_alive_connection_has_a_head_deadline(served: Server) -> None:
    reader, writer = await served.connect()
    writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await reader.readexactly(1)
    started = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nhost:")  # begun, never finished: the keep-alive timer no longer runs
    data, after = await closed_after(reader, started)
    assert data.startswith(b"HTTP/1.1 408 ") and 0.5 <= after < 3


async def test_an_oversized_head_is_431(quick: Settings) -> None:
    async with Server(echo_app, replace(quick, http_max_header_bytes=4096)) as server:
        reader, writer = await server.connect()
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n" + b"x-big: " + b"a" * 8192 + b"\r\n")
        data, _ = await closed_after(reader, time.monotonic())
        assert data.startswith(b"HTTP/1.1 431 ")


async def test_one_address_holds_at_most_its_share_of_connections(quick: Settings) -> None:
    async with Server(echo_app, replace(quick, http_connections_per_address=3, http_header_timeout_s=30)) as server:
        held = [await server.connect() for _ in range(3)]
        for reader, writer in held:  # each answered once, so each is surely counted
            writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            await reader.readexactly(1)
        reader, _ = await server.connect()
        data, _ = await closed_after(reader, time.monotonic())
        assert data.startswith(b"HTTP/1.1 503 ")
        first_reader, first_writer = held.pop(0)
        first_writer.close()
        assert await first_reader.read() == b""  # the server has closed it: its count has dropped
        reader, writer = await server.connect()
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        assert await reader.read(12) == b"HTTP/1.1 200"


async def test_hundreds_of_slow_clients_are_all_cut_off(quick: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """The adversarial review's case: 300 connections trickling headers, held 40 s before."""
    with caplog.at_level(logging.WARNING, logger="thingport.server"):
        async with Server(echo_app, replace(quick, http_connections_per_address=0)) as server:
            started = time.monotonic()
            conns = await asyncio.gather(*(server.connect() for _ in range(300)))
            for _, writer in conns:
                writer.write(b"POST / HTTP/1.1\r\nhost: t\r\n")
            results = await asyncio.gather(*(closed_after(reader, started) for reader, _ in conns))
    assert all(data.startswith(b"HTTP/1.1 408 ") for data, _ in results)
    assert max(after for _, after in results) < 5
    reports = [r for r in caplog.records if r.name == "thingport.server"]
    assert len(reports) == 1 and "within 0.5 s" in reports[0].getMessage()  # one line, not 300


async def test_thingport_answers_nothing_and_logs_nothing_for_a_client_cut_off_mid_body(
        settings: Settings, services: Services, caplog: pytest.LogCaptureFixture) -> None:
    quick = limits(settings)
    with caplog.at_level(logging.WARNING):
        async with Server(create_app(quick, services), quick) as server:
            reader, writer = await server.connect()
            writer.write(b"POST /iocm/app/sec/v1.1.0/logout HTTP/1.1\r\nhost: t\r\ncontent-length: 50\r\n\r\n{")
            data, _ = await closed_after(reader, time.monotonic())
    assert data == b""
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
