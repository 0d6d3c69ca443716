"""A lean MQTT 3.1.1 client for the benchmarks: one asyncio protocol per connection, no task, no codec.

It does what the scenarios need and nothing else: log in (and keep the socket), subscribe, publish
at QoS 0 and 1 in pipelined rounds, acknowledge, count. The same client drives Thingport and
Mosquitto in one run, and costs each message a few microseconds, so that on two shared cores the
client stays off the critical path and what is measured is the broker.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast


def _str(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        digit, n = n & 0x7F, n >> 7
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, username: str | None = None, password: str | None = None, *,
                   keep_alive: int = 300, clean: bool = True) -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = _str(b"MQTT") + bytes((4, flags)) + struct.pack("!H", keep_alive) + _str(client_id.encode())
    if username is not None:
        body += _str(username.encode())
    if password is not None:
        body += _str(password.encode())
    return b"\x10" + _remaining(len(body)) + body


def publish_packet(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    var = _str(topic.encode()) + (struct.pack("!H", packet_id) if qos else b"")
    return bytes((0x30 | qos << 1,)) + _remaining(len(var) + len(payload)) + var + payload


def subscribe_packet(packet_id: int, topic_filter: str, qos: int) -> bytes:
    body = struct.pack("!H", packet_id) + _str(topic_filter.encode()) + bytes((qos,))
    return b"\x82" + _remaining(len(body)) + body


class Conn(asyncio.Protocol):
    """One client connection: sends its CONNECT when connected, then counts what arrives."""

    def __init__(self, connect: bytes) -> None:
        loop = asyncio.get_running_loop()
        self.connect = connect
        self.connack: asyncio.Future[int] = loop.create_future()
        self.suback: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.received = 0  # PUBLISH packets
        self.acked = 0  # PUBACK packets
        self.next_id = 0
        self._want: tuple[int, int, asyncio.Future[None]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        self.transport.write(self.connect)

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.connack, self.suback, self._want[2] if self._want else None):
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError("closed by the broker"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        n, pos = len(buf), 0
        acks: list[bytes] = []
        while pos + 2 <= n:
            first, i, length, shift = buf[pos], pos + 1, 0, 0
            while i < n:
                b = buf[i]
                length |= (b & 0x7F) << shift
                i += 1
                if not b & 0x80:
                    break
                shift += 7
            else:
                break
            end = i + length
            if end > n:
                break
            kind = first >> 4
            if kind == 3:
                self.received += 1
                if first & 0x06:
                    at = i + 2 + (buf[i] << 8 | buf[i + 1])
                    acks.append(b"\x40\x02" + buf[at:at + 2])
            elif kind == 4:
                self.acked += 1
            elif kind == 2:
                if not self.connack.done():
                    self.connack.set_result(buf[i + 1])
            elif kind == 9 and self.suback is not None and not self.suback.done():
                self.suback.set_result(buf[i + 2])
            pos = end
        self.buf = buf[pos:]
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))
        want = self._want
        if want is not None and self.received >= want[0] and self.acked >= want[1]:
            self._want = None
            if not want[2].done():
                want[2].set_result(None)

    def packet_id(self) -> int:
        self.next_id = self.next_id % 65535 + 1
        return self.next_id

    async def subscribe(self, topic_filter: str, qos: int) -> int:
        assert self.transport is not None
        self.suback = asyncio.get_running_loop().create_future()
        self.transport.write(subscribe_packet(self.packet_id(), topic_filter, qos))
        return await self.suback

    def until(self, received: int = 0, acked: int = 0) -> asyncio.Future[None]:
        """Done once this many PUBLISHes and PUBACKs arrived in all."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.received >= received and self.acked >= acked:
            fut.set_result(None)
        else:
            self._want = (received, acked, fut)
        return fut

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


# --- logins ----------------------------------------------------------------------------------------

@dataclass(slots=True)
class Storm:
    """What a login storm gave: every login is accepted, refused (by CONNACK code) or failed (how)."""

    conns: list[Conn] = field(default_factory=list)
    refused: dict[int, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def connected(self) -> int:
        return len(self.conns)

    @property
    def lost(self) -> int:
        return sum(self.refused.values()) + sum(self.failed.values())

    @property
    def per_second(self) -> float:
        return self.connected / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    def describe(self) -> str:
        return (f"{self.connected} logged in, refused {self.refused or 0}, failed {self.failed or 0}; "
                f"p50 {self.percentile(0.5):.1f} ms, p99 {self.percentile(0.99):.1f} ms, "
                f"max {self.percentile(1.0):.0f} ms")

    def close(self) -> None:
        for c in self.conns:
            c.close()


async def storm(port: int, connects: Sequence[bytes], *, concurrency: int, timeout_s: float = 60.0,
                sources: int = 1, host: str = "127.0.0.1") -> Storm:
    """Log every CONNECT in, ``concurrency`` at a time (from ``sources`` loopback addresses), without
    retrying any; the connections stay open. ``concurrency`` workers take the next login as each of
    theirs is answered (no task or timer per login: the client stays cheap)."""
    loop = asyncio.get_running_loop()
    result = Storm()
    todo = iter(enumerate(connects))

    async def worker() -> None:
        for i, packet in todo:
            started = time.perf_counter()
            try:
                # a source address of our choosing only when one has too few ports: binding
                # before connecting costs Mosquitto an order of magnitude at 50 logins in flight
                local = (f"127.0.0.{1 + i % sources}", 0) if sources > 1 else None
                _, conn = await loop.create_connection(lambda p=packet: Conn(p), host, port, local_addr=local)
                code = await conn.connack
            except OSError as exc:
                kind = type(exc).__name__
                result.failed[kind] = result.failed.get(kind, 0) + 1
                continue
            if code:
                result.refused[code] = result.refused.get(code, 0) + 1
                conn.close()
                continue
            result.latencies.append(time.perf_counter() - started)
            result.conns.append(conn)

    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*(worker() for _ in range(concurrency)))
    except TimeoutError:  # what was under way or never began is lost
        result.failed["TimeoutError"] = len(connects) - result.connected - result.lost
    result.seconds = time.perf_counter() - started
    return result


# --- messages --------------------------------------------------------------------------------------

@dataclass(slots=True)
class Fan:
    """Publishers and subscribers of one delivery scenario, connected and subscribed."""

    publishers: list[Conn]
    subscribers: list[Conn]
    qos: int
    payload: bytes
    per_round: int

    async def rounds(self, n: int) -> int:
        """``n`` rounds: every publisher sends ``per_round`` messages at once (pipelined), then the round
        ends when every subscriber has them (and, at QoS 1, every publisher its PUBACKs). Returns the
        messages delivered to subscribers."""
        delivered = 0
        for _ in range(n):
            for i, pub in enumerate(self.publishers):
                assert pub.transport is not None
                pub.transport.write(b"".join(publish_packet(f"bench/{i}", self.payload, self.qos,
                                                            pub.packet_id() if self.qos else 0)
                                             for _ in range(self.per_round)))
            sent = len(self.publishers) * self.per_round
            waits = [s.until(received=s.received + sent) for s in self.subscribers]
            if self.qos:
                waits += [p.until(acked=p.acked + self.per_round) for p in self.publishers]
            await asyncio.wait_for(asyncio.gather(*waits), 60)
            delivered += sent * len(self.subscribers)
        return delivered

    def close(self) -> None:
        for c in (*self.publishers, *self.subscribers):
            c.close()


async def fan(port: int, *, publishers: int, subscribers: int, qos: int, payload_size: int = 256,
              per_round: int = 1, host: str = "127.0.0.1") -> Fan:
    loop = asyncio.get_running_loop()

    async def connect(client_id: str) -> Conn:
        _, conn = await loop.create_connection(lambda: Conn(connect_packet(client_id)), host, port)
        if await conn.connack:
            raise RuntimeError(f"{client_id} refused")
        return conn

    subs = [await connect(f"sub-{i}") for i in range(subscribers)]
    for s in subs:
        if await s.subscribe("bench/#", qos) != qos:
            raise RuntimeError("subscription refused")
    pubs = [await connect(f"pub-{i}") for i in range(publishers)]
    return Fan(pubs, subs, qos, bytes(payload_size), per_round)
