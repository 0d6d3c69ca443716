"""The load generator: many concurrent keep-alive HTTP/1.1 clients replaying pre-built requests.

Requests (already signed) are built before the clock starts, so the measured time is the
servers', not the client's hashing. Each client holds one loopback connection and speaks just
enough HTTP/1.1 (Content-Length bodies) to be cheap: a general-purpose async client costs about as
much CPU per request as the bare reference server, and client and servers share the same cores.

The clock starts once every client's connection is open and has been answered once (``GET
/health``, untimed), so a latency is a request's on a kept-alive connection, as the scenarios
claim, and not also its connection's set-up: uvloop (libuv ≥ 1.45) accepts one connection per
turn of the event loop, so 50 clients connecting at once to a server whose turns are busy with the
first ones' requests waited up to 0.4 s for their first answer, which had been the get scenario's
p99.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def apim_signature(token: str, params: dict[str, str], body: str, timestamp: str, secret: str) -> str:
    """docs/reference/enos.md §3.2: sha256(token + sorted k+v + body + timestamp + secret), lowercase hex."""
    data = token + "".join(k + v for k, v in sorted(params.items())) + body + timestamp + secret
    return hashlib.sha256(data.encode()).hexdigest()


def signed_request(path: str, params: dict[str, str], body: dict[str, Any] | None, token: str, secret: str) -> bytes:
    """One complete HTTP/1.1 request signed with the APIM token scheme: a POST of ``body``, or a
    GET when ``body`` is None."""
    text = "" if body is None else json.dumps(body)
    ts = str(int(time.time() * 1000))
    query = "&".join(f"{k}={v}" for k, v in params.items())
    payload = text.encode()
    head = (f"{'GET' if body is None else 'POST'} {path}?{query} HTTP/1.1\r\n"
            "Host: 127.0.0.1\r\n"
            "Content-Type: application/json;charset=UTF-8\r\n"
            f"Content-Length: {len(payload)}\r\n"
            f"apim-accesstoken: {token}\r\n"
            f"apim-timestamp: {ts}\r\n"
            f"apim-signature: {apim_signature(token, params, text, ts, secret)}\r\n"
            "\r\n")
    return head.encode() + payload


@dataclass(frozen=True, slots=True)
class Result:
    ok: int
    failed: int
    seconds: float
    latencies_ms: list[float]
    first_failure: str
    #: CPU seconds the server process spent on the timed requests (0: not measured); unlike
    #: throughput it hardly moves with what else runs on the machine.
    server_cpu_s: float = 0.0

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": self.failed, "seconds": round(self.seconds, 3),
                "throughput_rps": round(self.throughput, 1), "p50_ms": round(self.percentile(50), 2),
                "p99_ms": round(self.percentile(99), 2),
                "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else 0.0,
                "server_cpu_ms_per_request": round(1000 * self.server_cpu_s / self.ok, 3) if self.ok else 0.0,
                "first_failure": self.first_failure or None}


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length) if length else b""
    return status, body


PRIME = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"


async def run_load(port: int, requests: list[bytes], concurrency: int, time_limit_s: float) -> Result:
    """Send every request once, ``concurrency`` at a time; stop early after ``time_limit_s``. The
    clock starts when every connection is open and answered once (see the module's docstring)."""
    queue: Iterator[bytes] = iter(requests)
    latencies: list[float] = []
    failures: list[str] = []
    ready = asyncio.Barrier(concurrency + 1)
    deadline = float("inf")  # set when the clock starts

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await _exchange(reader, writer, PRIME)
            return reader, writer
        except BaseException:
            ready.abort()  # the others stop waiting for this one
            if writer is not None:
                writer.close()
            raise

    async def client() -> None:
        reader, writer = await connect()
        try:
            await ready.wait()
            for request in queue:
                if time.perf_counter() > deadline:
                    return
                start = time.perf_counter()
                status, body = await _exchange(reader, writer, request)
                elapsed = (time.perf_counter() - start) * 1000
                if status == 200 and b'"code":0' in body:
                    latencies.append(elapsed)
                else:
                    failures.append(f"HTTP {status}: {body[:300].decode(errors='replace')}")
        finally:
            writer.close()

    clients = asyncio.gather(*(client() for _ in range(concurrency)))
    try:
        await ready.wait()
    except asyncio.BrokenBarrierError:
        await clients  # raises what broke it
        raise
    start = time.perf_counter()
    deadline = start + time_limit_s
    await clients
    seconds = time.perf_counter() - start
    return Result(len(latencies), len(failures), seconds, latencies, failures[0] if failures else "")
