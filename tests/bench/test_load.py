"""The load generator times requests on connections that are already open and answered."""

import asyncio
import itertools

from bench.load import run_load


async def test_the_clock_starts_once_every_connection_was_answered() -> None:
    """Each client's first exchange is an untimed ``GET /health``, and no timed request is sent
    before every client's was answered: a connection's set-up (uvloop accepts one connection per
    turn of the loop) is in no latency."""
    read: list[tuple[int, bytes]] = []  # (connection, request line), in the order the server read them
    numbers = itertools.count()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(numbers)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client is done
                writer.close()
                return
            read.append((connection, head.split(b"\r\n", 1)[0]))
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"code":0}')

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    requests = [b"GET /thing/%d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % i for i in range(12)]
    try:
        result = await run_load(port, requests, concurrency=4, time_limit_s=30)
    finally:
        server.close()
    assert (result.ok, result.failed, len(result.latencies_ms)) == (12, 0, 12)
    health = b"GET /health HTTP/1.1"
    assert [line for _, line in read[:4]] == [health] * 4  # every connection's first, before any timed one
    assert {c for c, _ in read[:4]} == {0, 1, 2, 3}
    assert sorted(line for _, line in read[4:]) == sorted(r.split(b"\r\n", 1)[0] for r in requests)
