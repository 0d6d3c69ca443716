"""An embedded MQTT 3.1.1 broker whose every decision is delegated to the embedding application.

Why our own: the platform must refuse a login with the right CONNACK code, check each topic a
device touches, answer some device requests itself, and close a device's session the moment its
key is replaced. amqtt makes the last hard and is slow; this core is small enough to read.

Choices worth knowing:

* **An idle connection is a socket and two small objects.** Plain TCP connections are watched by
  one epoll set of the broker's own (Linux), registered once with the event loop; TLS connections
  (and plain ones where epoll is missing) are asyncio protocols. No connection has a task, a timer
  or a read buffer of its own while idle: packets are parsed as they arrive, in the loop's
  callback, and keep-alive and CONNECT deadlines all live on one timer wheel
  (:class:`_Wheel`). That is what holds 100,000 devices in well under a GiB (docs/benchmarks.md).
* **In order, hooks included.** A packet whose hook must wait (a login, a platform request) gets a
  task, and the client is not read until it is done, so a device's request is always seen before
  its next one. Hooks that can answer at once (:class:`QuickHooks`, an optional addition to
  :class:`BrokerHooks`) are asked first, so a publish needs no task at all.
* **Writes** are gathered per client and sent once per turn of the loop: a subscriber receiving
  many messages at once costs one system call, not one per message.
* **Backpressure.** A client whose unsent bytes exceed ``HIGH_WATER`` is not read until they drain,
  so a client that does not read its acks stops being read. Messages routed *to* a client never
  wait: if its unsent bytes exceed ``max_write_buffer`` it is disconnected (reason ``overflow``)
  instead of letting memory grow.
* **Sessions.** ``clean_session=False`` keeps subscriptions and QoS 1/2 messages for the client id
  in memory (at most ``max_queued`` queued messages per client, oldest dropped first; at most
  ``max_inflight`` unacknowledged at once). QoS 0 messages for an offline client are dropped.
  Sessions live until the broker stops; nothing is written to disk. A retained message keeps its
  RETAIN flag on every path, queued or resent ([MQTT-3.3.1-8]).
* **Will messages** are published whenever a connection ends without DISCONNECT, as the spec says:
  on a lost connection, keep-alive expiry, takeover *and* when the platform kicks the client. The
  will goes through ``authorize`` and ``on_publish`` like any publish, so the platform can drop it.
* **Takeover.** A CONNECT with a live client id closes the older connection, and its
  ``on_disconnected`` completes before the newcomer's ``on_connected`` runs.
* **Disconnect reasons** given to hooks: ``client`` (DISCONNECT), ``lost``, ``keepalive``,
  ``kicked``, ``takeover``, plus ``protocol_error`` (malformed packet), ``overflow`` (slow reader)
  and ``shutdown`` (broker stopped).
* **Nothing is lost silently.** Connections are accepted eagerly from a listen backlog of
  ``listen_backlog``; every refused login, CONNECT timeout, protocol error and failed accept is
  counted (:meth:`Broker.stats`) and logged, at most once per ``LOG_INTERVAL_S`` per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import socket
import ssl
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal, Protocol, cast

from thingport.connect.mqtt import codec
from thingport.connect.mqtt.codec import (
    Connack,
    Connect,
    MalformedPacket,
    PacketTooLarge,
    Suback,
    Subscribe,
    Unsubscribe,
    UnsupportedProtocol,
)
from thingport.connect.mqtt.topics import (
    InvalidTopic,
    SubscriptionTrie,
    TopicTree,
    parse_shared,
    validate_filter,
    validate_topic_name,
)
from thingport.logs import LogLimiter

log = logging.getLogger(__name__)

Action = Literal["publish", "subscribe"]
DisconnectReason = Literal["client", "lost", "keepalive", "kicked", "takeover", "protocol_error", "overflow",
                           "shutdown"]

_PINGRESP: Final = codec.encode(codec.Pingresp())
#: Unsent bytes above which a client is not read until they drain (what ``drain()`` waited for).
HIGH_WATER: Final = 64 * 1024
#: How often one kind of connection trouble is logged at most; the others are counted meanwhile.
LOG_INTERVAL_S: Final = 10.0
#: Resolution of the timer wheel, seconds: deadlines fire at most this late.
WHEEL_S: Final = 0.25
_RECV: Final = 65536
_EPOLL = getattr(select, "epoll", None)
_IN: Final = getattr(select, "EPOLLIN", 1)
_OUT: Final = getattr(select, "EPOLLOUT", 4)
_GONE: Final = getattr(select, "EPOLLHUP", 16) | getattr(select, "EPOLLERR", 8)

# Connection states.
_CONNECTING: Final = 0  # waiting for CONNECT
_LOGIN: Final = 1  # CONNECT received, the login hooks run
_ONLINE: Final = 2  # CONNACK 0 sent
_ENDING: Final = 3  # teardown scheduled or running
_DONE: Final = 4  # torn down


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What a client presented at CONNECT; ``password`` must never be logged."""

    client_id: str
    username: str | None
    password: bytes | None = field(repr=False)
    clean_session: bool
    keep_alive: int
    peer: tuple[str, int] | None
    tls: bool
    will_topic: str | None = None
    #: The client sent an empty client id and the broker made this one up.
    assigned_client_id: bool = False
    #: The client certificate (DER) the TLS handshake verified, if the client presented one.
    peer_cert: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The platform's answer to a CONNECT: a principal to accept, or a CONNACK code to refuse with."""

    return_code: int = codec.ACCEPTED
    principal: object = None

    @classmethod
    def accept(cls, principal: object) -> AuthResult:
        return cls(codec.ACCEPTED, principal)

    @classmethod
    def refuse(cls, return_code: int = codec.REFUSED_NOT_AUTHORIZED) -> AuthResult:
        if not 1 <= return_code <= 5:
            raise ValueError("a refusal needs a CONNACK return code from 1 to 5")
        return cls(return_code, None)

    @property
    def accepted(self) -> bool:
        return self.return_code == codec.ACCEPTED


class BrokerHooks(Protocol):
    """What the embedding application decides. Hooks of one client run in order, one at a time."""

    async def authenticate(self, conn: ConnectInfo) -> AuthResult: ...

    async def authorize(self, principal: object, topic: str, action: Action) -> bool: ...

    async def on_publish(self, principal: object, client_id: str, topic: str, payload: bytes, qos: int) -> bool:
        """Return True when the platform handled the message, so it is not routed to subscribers."""
        ...

    async def on_connected(self, principal: object, client_id: str) -> None: ...

    async def on_disconnected(self, principal: object, client_id: str, reason: str) -> None: ...


class QuickHooks(Protocol):
    """Optional synchronous answers, asked before the async hooks of the same name.

    A hooks object may have any of them. An answer of None (False for ``on_connected_now``) means
    "only the async hook can tell" and the broker awaits that one; any other answer is final. A
    publish both publish hooks answer, and a login both login hooks answer, need no task.
    """

    def authenticate_now(self, conn: ConnectInfo) -> AuthResult | None: ...

    def authorize_now(self, principal: object, topic: str, action: Action) -> bool | None: ...

    def on_publish_now(self, principal: object, client_id: str, topic: str, payload: bytes,
                       qos: int) -> bool | None: ...

    def on_connected_now(self, principal: object, client_id: str) -> bool:
        """True when done, so ``on_connected`` is not called."""
        ...


class AbandonHook(Protocol):
    """Optional: told of a login ``authenticate`` accepted whose client never got its CONNACK (it left,
    or an older connection would not close), so the platform can undo what the login did. Neither
    ``on_connected`` nor ``on_disconnected`` runs for it."""

    async def on_abandoned(self, principal: object, client_id: str) -> None: ...


class AllowAllHooks:
    """Everyone may connect and do anything; the principal is the user name or the client id."""

    async def authenticate(self, conn: ConnectInfo) -> AuthResult:
        return AuthResult.accept(conn.username if conn.username is not None else conn.client_id)

    async def authorize(self, principal: object, topic: str, action: Action) -> bool:
        return True

    async def on_publish(self, principal: object, client_id: str, topic: str, payload: bytes, qos: int) -> bool:
        return False

    async def on_connected(self, principal: object, client_id: str) -> None:
        return None

    async def on_disconnected(self, principal: object, client_id: str, reason: str) -> None:
        return None


class OpenHooks(AllowAllHooks):
    """:class:`AllowAllHooks` that answer at once: a broker with no platform behind it."""

    def authenticate_now(self, conn: ConnectInfo) -> AuthResult:
        return AuthResult.accept(conn.username if conn.username is not None else conn.client_id)

    def on_connected_now(self, principal: object, client_id: str) -> bool:
        return True

    def authorize_now(self, principal: object, topic: str, action: Action) -> bool:
        return True

    def on_publish_now(self, principal: object, client_id: str, topic: str, payload: bytes, qos: int) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class ClientInfo:
    client_id: str
    principal: object
    peer: tuple[str, int] | None
    connected_at: float
    clean_session: bool
    keep_alive: int


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    max_packet_size: int = codec.DEFAULT_MAX_PACKET_SIZE
    #: Unsent bytes a client may have before it is dropped as too slow.
    max_write_buffer: int = 4 * 1024 * 1024
    #: QoS 1/2 messages kept for a client (offline, or beyond the in-flight window); oldest dropped.
    max_queued: int = 1000
    #: QoS 1/2 messages sent to a client and not yet acknowledged.
    max_inflight: int = 100
    #: Seconds a new connection has to send its CONNECT.
    connect_timeout: float = 10.0
    #: Seconds a kicked client's buffered bytes may take to flush before the socket is aborted.
    close_grace: float = 5.0
    #: Connections the kernel may queue for a listener before the broker accepts them (it accepts
    #: eagerly; the kernel caps this at ``net.core.somaxconn``).
    listen_backlog: int = 4096


@dataclass(slots=True)
class BrokerStats:
    """What the broker counted since it started (:meth:`Broker.stats`), plus two gauges."""

    #: TCP (or TLS) connections accepted.
    accepted: int = 0
    #: accept() failures (out of file descriptors …): the kernel keeps the connection queued.
    accept_errors: int = 0
    #: Connections closed because no CONNECT came within ``connect_timeout``.
    connect_timeouts: int = 0
    #: Logins accepted (CONNACK 0) and refused (CONNACK 1-5, a failing authenticate hook included).
    connects: int = 0
    refused: int = 0
    #: Connections that ended while their login was being decided (no CONNACK reached them).
    abandoned_logins: int = 0
    #: Connections closed for a malformed packet, an expired keep-alive, not reading, a newer login.
    protocol_errors: int = 0
    keepalive_expired: int = 0
    overflows: int = 0
    takeovers: int = 0
    #: PUBLISH packets received from clients, and sent to them.
    messages_in: int = 0
    messages_out: int = 0
    #: Queued QoS 1/2 messages dropped because a client's queue was full.
    queue_drops: int = 0
    #: Gauges: open connections and sessions at the time of the call.
    connections: int = 0
    sessions: int = 0


class _Message:
    """A QoS 1/2 message on its way to clients (queued or in flight), shared by every subscriber
    that gets it at this QoS; ``head`` is its encoding up to the packet id, made when first sent."""

    __slots__ = ("head", "payload", "qos", "retain", "topic")

    def __init__(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.head: bytes | None = None

    def packet(self, packet_id: int) -> bytes:
        head = self.head
        if head is None:
            head = self.head = codec.publish_head(self.topic, len(self.payload), self.qos, self.retain)
        return head + packet_id.to_bytes(2, "big") + self.payload


class _Session:
    """What outlives a connection when clean_session is false. Containers are made when first used."""

    __slots__ = ("_last_id", "clean", "client_id", "conn", "inbound_qos2", "inflight", "pending", "released",
                 "subscriptions")

    def __init__(self, client_id: str, clean: bool) -> None:
        self.client_id = client_id
        self.clean = clean
        self.conn: _Connection | None = None
        self.subscriptions: dict[str, int] | None = None
        self.inflight: dict[int, _Message] | None = None
        self.released: set[int] | None = None  # QoS 2 ids in flight whose PUBREC came (PUBREL sent)
        self.pending: deque[_Message] | None = None
        self.inbound_qos2: set[int] | None = None
        self._last_id = 0

    def next_packet_id(self, inflight: dict[int, _Message]) -> int:
        """The next id not in flight (the window is far below 65535, so this ends quickly)."""
        while True:
            self._last_id = self._last_id % 65535 + 1
            if self._last_id not in inflight:
                return self._last_id


class _Connection:
    """One client connection; its I/O is the subclass's (an epoll-watched socket or an asyncio transport)."""

    __slots__ = ("buf", "connected_at", "keep_alive", "kick_reason", "last_rx", "out", "paused", "principal",
                 "session", "since", "state", "task", "waiters", "wheel_slot", "will")

    tls = False

    def __init__(self, now: float) -> None:
        self.buf = b""  # received bytes not yet parsed (the start of a packet)
        self.task: asyncio.Task[None] | None = None  # runs this client's hooks; its packets wait
        self.paused = 0  # why reading is paused: 1 busy, 2 too many unsent bytes
        self.state = _CONNECTING
        self.kick_reason: DisconnectReason | None = None
        self.since = now  # accepted at; once closing, the moment to abort the socket
        self.last_rx = now
        self.connected_at = 0.0
        self.keep_alive = 0
        self.wheel_slot = 0
        self.out: bytes | list[bytes] | None = None  # gathered for this turn of the loop
        self.session: _Session | None = None
        self.principal: object = None
        self.will: codec.Will | None = None
        self.waiters: list[asyncio.Future[None]] | None = None

    @property
    def closing(self) -> bool:
        return self.kick_reason is not None

    # --- I/O, by subclass ---------------------------------------------------------------------------
    def write(self, data: bytes | list[bytes]) -> None:
        raise NotImplementedError

    def unsent(self) -> int:
        raise NotImplementedError

    def close(self, abort: bool) -> None:
        raise NotImplementedError

    def set_reading(self, on: bool) -> None:
        raise NotImplementedError

    def peer(self) -> tuple[str, int] | None:
        raise NotImplementedError

    def peer_cert(self) -> bytes | None:
        """The client's verified certificate (DER); only a TLS connection has one."""
        return None


class _SocketConnection(_Connection):
    """A plain TCP client in the broker's epoll set: a non-blocking socket and its unsent bytes."""

    __slots__ = ("addr", "io", "pending", "poll", "sock")

    def __init__(self, poll: _Poll, sock: socket.socket, addr: Any, now: float) -> None:
        super().__init__(now)
        self.poll = poll
        self.sock = sock
        self.addr: tuple[str, int] | None = (str(addr[0]), int(addr[1])) if addr else None  # until logged in
        self.io = _IN  # the epoll events asked for
        self.pending: bytearray | None = None  # what the socket did not take yet

    def write(self, data: bytes | list[bytes]) -> None:
        if self.sock.fileno() < 0:
            return
        whole = b"".join(data) if isinstance(data, list) else data
        if self.pending is not None:  # the socket is full: queue behind what waits
            self.pending += whole
            return
        try:
            sent = self.sock.send(whole)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.poll.lost(self)
            return
        if sent < len(whole):
            self.pending = bytearray(memoryview(whole)[sent:])
            self.poll.watch(self, self.io | _OUT)

    def writable(self) -> None:
        pending = self.pending
        if pending:
            try:
                sent = self.sock.send(pending)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.poll.lost(self)
                return
            del pending[:sent]
        if not pending:
            self.pending = None
            self.poll.watch(self, self.io & ~_OUT)
            self.poll.drained(self)

    def unsent(self) -> int:
        return len(self.pending) if self.pending else 0

    def close(self, abort: bool) -> None:
        if abort or not self.pending:
            self.poll.forget(self)
        # else: writable() sends the rest, then the poll closes it (or the wheel aborts it)

    def set_reading(self, on: bool) -> None:
        self.poll.watch(self, self.io | _IN if on else self.io & ~_IN)

    def peer(self) -> tuple[str, int] | None:
        if self.addr is not None:
            return self.addr
        try:
            host, port = self.sock.getpeername()[:2]
        except OSError:
            return None
        return str(host), int(port)


class _StreamConnection(_Connection, asyncio.Protocol):
    """A client on an asyncio transport: TLS, or plain TCP where the broker has no epoll of its own."""

    __slots__ = ("broker", "tls", "transport")

    def __init__(self, broker: Broker, tls: bool) -> None:
        super().__init__(broker.loop.time())
        self.broker = broker
        self.tls = tls
        self.transport: asyncio.Transport | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        self.broker._accepted(self)

    def data_received(self, data: bytes) -> None:
        self.broker._feed(self, data)

    def eof_received(self) -> bool:
        return False  # close; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.broker._lost(self)

    def pause_writing(self) -> None:
        self.broker._backpressure(self, True)

    def resume_writing(self) -> None:
        self.broker._backpressure(self, False)

    # _Connection
    def write(self, data: bytes | list[bytes]) -> None:
        assert self.transport is not None
        if isinstance(data, list):
            self.transport.writelines(data)
        else:
            self.transport.write(data)

    def unsent(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self, abort: bool) -> None:
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()

    def set_reading(self, on: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if on:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def peer(self) -> tuple[str, int] | None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return (str(peer[0]), int(peer[1])) if peer else None

    def peer_cert(self) -> bytes | None:
        tls = self.transport.get_extra_info("ssl_object") if self.tls and self.transport is not None else None
        return tls.getpeercert(binary_form=True) if tls is not None else None


class _Poll:
    """The broker's own epoll set: its listening sockets and every plain TCP client, one loop reader.

    When any of them is ready the loop calls :meth:`ready`, which handles every ready socket and
    then sends what the handling gathered. Sockets closed while handling are closed after it, so a
    descriptor number cannot be reused by an accept within the same batch.
    """

    def __init__(self, broker: Broker) -> None:
        assert _EPOLL is not None
        self.broker = broker
        self.ep = _EPOLL()
        self.conns: dict[int, _SocketConnection] = {}
        self.listeners: dict[int, socket.socket] = {}
        self.closing: list[socket.socket] = []
        self.handling = False
        self.paused_accepts: set[int] = set()
        broker.loop.add_reader(self.ep.fileno(), self.ready)

    def close(self) -> None:
        self.broker.loop.remove_reader(self.ep.fileno())
        for conn in list(self.conns.values()):
            self.forget(conn)
        for sock in self.listeners.values():
            sock.close()
        self.listeners.clear()
        self._close_now()
        self.ep.close()

    def listen(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.listeners[sock.fileno()] = sock
        self.ep.register(sock.fileno(), _IN)

    def unlisten(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self.listeners.pop(fd, None) is not None:
            with contextlib.suppress(OSError):
                self.ep.unregister(fd)
            sock.close()

    def watch(self, conn: _SocketConnection, io: int) -> None:
        if io != conn.io and conn.sock.fileno() >= 0:
            conn.io = io
            with contextlib.suppress(OSError):
                self.ep.modify(conn.sock.fileno(), io)

    def forget(self, conn: _SocketConnection) -> None:
        """Stop watching the socket and close it (after the batch being handled, if any)."""
        fd = conn.sock.fileno()
        if fd < 0 or self.conns.get(fd) is not conn:
            return
        del self.conns[fd]
        with contextlib.suppress(OSError):
            self.ep.unregister(fd)
        self.closing.append(conn.sock)
        if not self.handling:
            self._close_now()

    def lost(self, conn: _SocketConnection) -> None:
        self.forget(conn)
        self.broker._lost(conn)

    def drained(self, conn: _SocketConnection) -> None:
        if conn.closing:
            self.forget(conn)
        else:
            self.broker._backpressure(conn, False)

    def _close_now(self) -> None:
        closing, self.closing = self.closing, []
        for sock in closing:
            sock.close()

    def ready(self) -> None:
        broker = self.broker
        self.handling = True
        try:
            for fd, events in self.ep.poll(0, 1024):
                conn = self.conns.get(fd)
                if conn is None:
                    listener = self.listeners.get(fd)
                    if listener is not None:
                        self._accept(listener)
                    continue
                if events & _OUT:
                    conn.writable()
                if events & (_IN | _GONE) and self.conns.get(fd) is conn:
                    self._read(conn, events)
            broker._flush()
        finally:
            self.handling = False
            self._close_now()

    def _read(self, conn: _SocketConnection, events: int) -> None:
        if not conn.io & _IN:  # paused since the poll: read it when resumed, unless it is gone
            if events & _GONE:
                self.lost(conn)
            return
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.lost(conn)
            return
        if not data:
            self.lost(conn)
            return
        self.broker._feed(conn, data)

    def _accept(self, listener: socket.socket) -> None:
        broker = self.broker
        now = broker.loop.time()
        while True:
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: the connection stays queued; retry shortly
                broker.counts.accept_errors += 1
                broker._report.log(log, logging.ERROR, "accept", "MQTT listener cannot accept connections: %s", exc)
                fd = listener.fileno()
                with contextlib.suppress(OSError):
                    self.ep.modify(fd, 0)
                broker.loop.call_later(0.1, self._resume_accept, listener)
                return
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _SocketConnection(self, sock, addr, now)
            self.conns[sock.fileno()] = conn
            self.ep.register(sock.fileno(), _IN)
            broker._accepted(conn)

    def _resume_accept(self, listener: socket.socket) -> None:
        if listener.fileno() >= 0 and listener.fileno() in self.listeners:
            with contextlib.suppress(OSError):
                self.ep.modify(listener.fileno(), _IN)


class _Wheel:
    """Every connection's next deadline on one repeating timer of ``WHEEL_S``.

    A connection sits in one slot at a time (``wheel_slot``); when its slot comes it is checked
    against what it waits for now (CONNECT, keep-alive, a closing socket's grace) and put in the
    slot of its next deadline, if any. Receiving a packet only records the time, so a busy client
    costs the wheel nothing, and an idle one a check per keep-alive period.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, check: Callable[[_Connection, float], float | None]) -> None:
        self.loop = loop
        self.check = check
        self.slots: dict[int, list[_Connection]] = {}
        self.done = int(loop.time() / WHEEL_S)
        self.timer: asyncio.TimerHandle | None = loop.call_later(WHEEL_S, self._tick)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.slots.clear()

    def at(self, conn: _Connection, deadline: float) -> None:
        slot = int(deadline / WHEEL_S) + 1
        if slot <= self.done:
            slot = self.done + 1
        if conn.wheel_slot and conn.wheel_slot <= slot:
            return  # checked earlier anyway, and moved on from there
        conn.wheel_slot = slot
        self.slots.setdefault(slot, []).append(conn)

    def _tick(self) -> None:
        now = self.loop.time()
        current = int(now / WHEEL_S)
        try:
            while self.done < current:
                self.done += 1
                for conn in self.slots.pop(self.done, ()):
                    if conn.wheel_slot != self.done:
                        continue  # moved to an earlier slot, which already checked it
                    conn.wheel_slot = 0
                    deadline = self.check(conn, now)
                    if deadline is not None:
                        self.at(conn, deadline)
        finally:
            self.timer = self.loop.call_later(WHEEL_S, self._tick)


class Broker:
    """An MQTT 3.1.1 broker; see the module docstring for its semantics."""

    def __init__(self, hooks: BrokerHooks | None = None, limits: BrokerLimits | None = None, *,
                 own_poll: bool | None = None) -> None:
        """``own_poll``: watch plain TCP clients with an epoll set of the broker's own (default:
        where the platform has epoll); False puts every client on an asyncio transport."""
        self.hooks: BrokerHooks = hooks if hooks is not None else OpenHooks()
        self.limits = limits if limits is not None else BrokerLimits()
        self.counts = BrokerStats()
        self._own_poll = _EPOLL is not None if own_poll is None else own_poll and _EPOLL is not None
        self._authorize_now: Callable[[object, str, Action], bool | None] | None = getattr(
            self.hooks, "authorize_now", None)
        self._publish_now: Callable[[object, str, str, bytes, int], bool | None] | None = getattr(
            self.hooks, "on_publish_now", None)
        self._authenticate_now: Callable[[ConnectInfo], AuthResult | None] | None = getattr(
            self.hooks, "authenticate_now", None)
        self._connected_now: Callable[[object, str], bool] | None = getattr(self.hooks, "on_connected_now", None)
        self._servers: list[tuple[asyncio.Server | socket.socket, bool]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poll: _Poll | None = None
        self._wheel: _Wheel | None = None
        self._streams: set[_StreamConnection] = set()
        self._sessions: dict[str, _Session] = {}
        self._subscriptions: SubscriptionTrie[_Session, int] = SubscriptionTrie()
        self._retained: TopicTree[_Message] = TopicTree()
        self._dirty: list[_Connection] = []
        self._flush_soon = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._report = LogLimiter(LOG_INTERVAL_S)
        self._clock: Callable[[], float] = time.monotonic  # the loop's, once started

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("broker not started")
        return self._loop

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 1883, ssl_context: ssl.SSLContext | None = None) -> None:
        """Open a listener; call again for more (plain and TLS listeners share every session)."""
        if self._wheel is None:
            self._loop = asyncio.get_running_loop()
            self._clock = self._loop.time
            self._wheel = _Wheel(self._loop, self._check)
        backlog = self.limits.listen_backlog
        if ssl_context is None and self._own_poll:
            if self._poll is None:
                self._poll = _Poll(self)
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            for family, kind, proto, _, address in dict.fromkeys(infos):  # every address, as create_server
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.bind(address)
                    sock.listen(backlog)
                except BaseException:
                    sock.close()
                    raise
                self._poll.listen(sock)
                self._listening(sock, False, host)
        else:
            tls = ssl_context is not None
            server = await self.loop.create_server(lambda: _StreamConnection(self, tls), host, port,
                                                   ssl=ssl_context, backlog=backlog)
            self._listening(server, tls, host)

    def _listening(self, listener: asyncio.Server | socket.socket, tls: bool, host: str) -> None:
        self._servers.append((listener, tls))
        log.info("MQTT broker listening on %s:%d%s", host, self._port_of(listener), " (TLS)" if tls else "")

    @staticmethod
    def _port_of(listener: asyncio.Server | socket.socket) -> int:
        sock = listener if isinstance(listener, socket.socket) else listener.sockets[0]
        return int(sock.getsockname()[1])

    @staticmethod
    def _open(listener: asyncio.Server | socket.socket) -> bool:
        return listener.fileno() >= 0 if isinstance(listener, socket.socket) else bool(listener.sockets)

    @property
    def port(self) -> int:
        """The first listener's port."""
        if not self._servers or not self._open(self._servers[0][0]):
            raise RuntimeError("broker not started")
        return self._port_of(self._servers[0][0])

    @property
    def ports(self) -> list[int]:
        return [self._port_of(listener) for listener, _ in self._servers if self._open(listener)]

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        if not servers:
            return
        for listener, _ in servers:
            if isinstance(listener, socket.socket):
                assert self._poll is not None
                self._poll.unlisten(listener)
            else:
                listener.close()
        conns = list(self._connections())
        for conn in conns:
            self._kick(conn, "shutdown")
        await self._wait_done(conns)
        for listener, _ in servers:
            if isinstance(listener, asyncio.Server):
                await listener.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._flush()
        if self._poll is not None:
            self._poll.close()
            self._poll = None
        if self._wheel is not None:
            self._wheel.close()
            self._wheel = None
        self._sessions.clear()
        self._subscriptions = SubscriptionTrie()
        log.info("MQTT broker stopped")

    def _connections(self) -> Iterator[_Connection]:
        if self._poll is not None:
            yield from list(self._poll.conns.values())
        yield from list(self._streams)

    # --- platform API -------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> int:
        """Publish as the platform (no hooks); returns how many subscribers it went to."""
        validate_topic_name(topic)
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        return self._route(topic, bytes(payload), qos, retain)

    def send_to(self, client_id: str, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Deliver to one client whether or not it subscribed (a device's replies and commands).

        Cloud brokers subscribe devices to their own downlink topics implicitly, and device SDKs
        rely on it: a reply or push must arrive without a SUBSCRIBE. Returns whether the client
        has a session (a QoS 0 message to an offline client is dropped, as for any publish).
        """
        validate_topic_name(topic)
        session = self._sessions.get(client_id)
        if session is None:
            return False
        self._deliver(session, topic, bytes(payload), qos, False)
        return True

    async def disconnect_client(self, client_id: str, reason: str = "", *, discard_session: bool = False) -> bool:
        """Close a client's connection now (hooks see reason ``kicked``); ``reason`` is for the log.

        Bytes already queued to the client (a notification published just before) are still
        flushed. Returns whether a live connection was closed.
        """
        session = self._sessions.get(client_id)
        conn = session.conn if session is not None else None
        if conn is not None and not conn.closing:
            log.info("kicking MQTT client %s%s", client_id, f": {reason}" if reason else "")
            self._kick(conn, "kicked")
            await self._wait_done([conn])
        if discard_session and session is not None and self._sessions.get(client_id) is session:
            self._discard_session(session)
        return conn is not None

    async def disconnect_where(self, predicate: Callable[[object], bool], reason: str = "", *,
                               discard_session: bool = False) -> int:
        """Kick every connected client whose principal satisfies ``predicate``; returns how many."""
        targets = [c.session.client_id for c in self._connections()
                   if c.session is not None and not c.closing and predicate(c.principal)]
        results = await asyncio.gather(*(self.disconnect_client(cid, reason, discard_session=discard_session)
                                         for cid in targets))
        return sum(results)

    def connected_clients(self) -> list[ClientInfo]:
        out = []
        for c in self._connections():
            if c.session is not None and c.state == _ONLINE and not c.closing:
                out.append(ClientInfo(c.session.client_id, c.principal, c.peer(), c.connected_at,
                                      c.session.clean, c.keep_alive))
        return out

    def stats(self) -> BrokerStats:
        """A copy of the counters, with the gauges filled in (a later issue exports them as metrics)."""
        snapshot = BrokerStats(**{f.name: getattr(self.counts, f.name) for f in fields(BrokerStats)})
        snapshot.connections = (len(self._poll.conns) if self._poll is not None else 0) + len(self._streams)
        snapshot.sessions = len(self._sessions)
        return snapshot

    # --- connections: arrival, bytes, end -----------------------------------------------------

    def _accepted(self, conn: _Connection) -> None:
        self.counts.accepted += 1
        if isinstance(conn, _StreamConnection):
            self._streams.add(conn)
        assert self._wheel is not None
        self._wheel.at(conn, conn.since + self.limits.connect_timeout)

    def _feed(self, conn: _Connection, data: bytes) -> None:
        """Bytes arrived: handle every whole packet, unless an earlier one's hooks still run."""
        conn.last_rx = self._clock()
        if conn.kick_reason is not None:
            return
        conn.buf = conn.buf + data if conn.buf else data
        if conn.task is not None:  # wait for it, reading no more meanwhile
            self._pause(conn, 1, True)
            return
        later = self._handle_packets(conn)
        if later is not None:
            self._run_later(conn, later)

    def _lost(self, conn: _Connection) -> None:
        """The socket is gone (peer closed, reset, or our close completed)."""
        if isinstance(conn, _StreamConnection):
            self._streams.discard(conn)
        if not conn.closing:
            conn.kick_reason = "lost"
        self._end(conn)

    def _end(self, conn: _Connection) -> None:
        """Tear the closing connection down once its running hooks are done (their task does it then)."""
        if conn.task is None and conn.state < _ENDING:
            conn.state = _ENDING
            self._spawn(self._finish(conn))

    def _kick(self, conn: _Connection, reason: DisconnectReason) -> None:
        """Close a connection for ``reason``: what was sent to it is flushed first (except on overflow
        or a protocol error). Hooks running for it are never cancelled: teardown waits for them."""
        if conn.closing or conn.state >= _ENDING:
            return
        conn.kick_reason = reason
        abort = reason in ("overflow", "protocol_error")
        out, conn.out = conn.out, None
        if out is not None and not abort:
            conn.write(out)
        conn.since = self.loop.time() + self.limits.close_grace
        conn.close(abort)
        if conn.unsent() and self._wheel is not None:
            self._wheel.at(conn, conn.since)
        self._end(conn)

    def _backpressure(self, conn: _Connection, full: bool) -> None:
        self._pause(conn, 2, full)

    def _pause(self, conn: _Connection, why: int, on: bool) -> None:
        was = conn.paused
        conn.paused = was | why if on else was & ~why
        if bool(was) != bool(conn.paused) and not conn.closing:
            conn.set_reading(not conn.paused)

    def _check(self, conn: _Connection, now: float) -> float | None:
        """The timer wheel's visit: act on a passed deadline, or say when to look again."""
        if conn.closing:  # let its last bytes go out, for a while
            if not conn.unsent():
                return None
            if now < conn.since:
                return conn.since
            conn.close(True)
            return None
        if conn.state == _CONNECTING:
            deadline = conn.since + self.limits.connect_timeout
            if now < deadline:
                return deadline
            self.counts.connect_timeouts += 1
            self._report.log(log, logging.WARNING, "connect_timeout",
                             "MQTT connection from %s closed: no CONNECT within %gs", conn.peer(),
                             self.limits.connect_timeout)
            self._kick(conn, "lost")
            return None
        if conn.state == _ONLINE and conn.keep_alive:
            deadline = conn.last_rx + conn.keep_alive * 1.5
            if now < deadline:
                return deadline
            self.counts.keepalive_expired += 1
            log.info("MQTT client %s keep-alive expired", conn.session.client_id if conn.session else "?")
            self._kick(conn, "keepalive")
        return None

    async def _finish(self, conn: _Connection) -> None:
        """Tear a connection down exactly once: will, session, hooks, whoever waits for it."""
        reason: DisconnectReason = conn.kick_reason or "lost"
        conn.buf = b""
        if isinstance(conn, _SocketConnection) and not conn.unsent():
            conn.poll.forget(conn)
        session = conn.session
        try:
            if session is None:
                return
            if session.conn is conn:
                session.conn = None
                if session.clean:
                    self._discard_session(session)
            log.info("MQTT client %s disconnected (%s)", session.client_id, reason)
            will, conn.will = conn.will, None
            if will is not None and reason != "shutdown":
                await self._publish_from(conn, session.client_id, will.topic, will.payload, will.qos, will.retain)
            try:
                await self.hooks.on_disconnected(conn.principal, session.client_id, reason)
            except Exception:
                log.exception("on_disconnected hook failed for MQTT client %s", session.client_id)
        finally:
            conn.state = _DONE
            waiters, conn.waiters = conn.waiters, None
            for waiter in waiters or ():
                if not waiter.done():
                    waiter.set_result(None)

    async def _wait_done(self, conns: Iterable[_Connection]) -> None:
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        waits = []
        for conn in conns:
            if conn.state == _DONE or (current is not None and conn.task is current):
                continue
            waiter: asyncio.Future[None] = loop.create_future()
            conn.waiters = [*(conn.waiters or ()), waiter]
            waits.append(waiter)
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.limits.close_grace + 1):
                    await asyncio.gather(*waits)

    # --- packets ------------------------------------------------------------------------------

    def _handle_packets(self, conn: _Connection) -> Awaitable[None] | None:
        """Handle the whole packets in ``conn.buf``; an awaitable when one's hooks must be awaited
        (the rest of the buffer waits for it)."""
        buf = conn.buf
        n = len(buf)
        pos = 0
        limit = self.limits.max_packet_size
        try:
            while pos < n and conn.kick_reason is None:
                first = buf[pos]
                if conn.state == _CONNECTING and first >> 4 != codec.CONNECT:
                    raise MalformedPacket(f"expected packet type {codec.CONNECT}, got {first >> 4}")
                if pos + 1 >= n:
                    break
                length = buf[pos + 1]
                if length < 0x80:
                    start = pos + 2
                elif pos + 2 < n and 0 < buf[pos + 2] < 0x80:  # two bytes: a few hundred bytes of packet
                    length = (length & 0x7F) | buf[pos + 2] << 7
                    start = pos + 3
                else:
                    rl = codec.decode_remaining_length(buf, pos + 1)
                    if rl is None:
                        break
                    length, used = rl
                    start = pos + 1 + used
                if length > limit:
                    raise PacketTooLarge(f"packet of {length} bytes exceeds the limit of {limit}")
                end = start + length
                if end > n:
                    break
                later = self._packet(conn, first, buf, pos, start, end)
                pos = end
                if later is not None:
                    return later
            return None
        except UnsupportedProtocol:
            self.counts.refused += 1
            self._send(conn, codec.encode(Connack(codec.REFUSED_PROTOCOL_VERSION)))
            self._kick(conn, "lost")
            return None
        except MalformedPacket as exc:
            self.counts.protocol_errors += 1
            if conn.session is not None:
                log.info("closing MQTT client %s: %s", conn.session.client_id, exc)
            else:
                self._report.log(log, logging.INFO, "malformed", "MQTT connection from %s closed: %s",
                                 conn.peer(), exc)
            self._kick(conn, "protocol_error")
            return None
        finally:
            conn.buf = buf[pos:] if pos < n and not conn.closing else b""

    def _packet(self, conn: _Connection, first: int, buf: bytes, begin: int, start: int, end: int
                ) -> Awaitable[None] | None:
        """One packet, ``buf[begin:end]``, its body from ``start``."""
        kind = first >> 4
        if kind == codec.PUBLISH and conn.state == _ONLINE:
            topic, payload, qos, retain, _, pid = codec.parse_publish(first, buf, start, end)
            self.counts.messages_in += 1
            # a plain QoS 0 publish goes on to QoS 0 subscribers byte for byte
            raw = buf[begin:end] if first == 0x30 else None
            return self._client_publish(conn, topic, payload, qos, retain, pid, raw)
        if codec.PUBACK <= kind <= codec.PUBCOMP and conn.state == _ONLINE:
            pid = codec.parse_ack(first, buf, start, end)
            session = conn.session
            assert session is not None
            if kind == codec.PUBREL:
                if session.inbound_qos2 is not None:
                    session.inbound_qos2.discard(pid)
                self._send(conn, codec.encode_ack(codec.PUBCOMP, pid))
            else:
                self._on_ack(conn, session, pid, done=kind != codec.PUBREC)
            return None
        packet = codec.decode(first, bytes(buf[start:end]))
        if conn.state == _CONNECTING:
            assert isinstance(packet, Connect)  # the first byte was checked
            conn.state = _LOGIN
            return self._login(conn, packet)
        if isinstance(packet, codec.Pingreq):
            self._send(conn, _PINGRESP)
        elif isinstance(packet, Subscribe):
            return self._on_subscribe(conn, packet)
        elif isinstance(packet, Unsubscribe):
            self._on_unsubscribe(conn, packet)
        elif isinstance(packet, codec.Disconnect):
            conn.will = None
            self._kick(conn, "client")
        else:  # a second CONNECT, or a packet only a server sends
            raise MalformedPacket(f"unexpected {type(packet).__name__} from a client")
        return None

    def _run_later(self, conn: _Connection, first: Awaitable[None]) -> None:
        """Await ``first`` in a task, then go on with the client's buffered packets (if more arrive
        meanwhile, the client is not read until the task is done: :meth:`_feed`)."""
        conn.task = self._spawn(self._continue(conn, first))

    async def _continue(self, conn: _Connection, later: Awaitable[None] | None) -> None:
        try:
            while later is not None:
                try:
                    await later
                except Exception:
                    log.exception("handling a packet of MQTT client %s failed",
                                  conn.session.client_id if conn.session else "?")
                    self._kick(conn, "protocol_error")
                later = self._handle_packets(conn) if not conn.closing else None
        finally:
            conn.task = None
            if conn.closing:
                if conn.state < _ENDING:
                    conn.state = _ENDING
                    await self._finish(conn)
            else:
                self._pause(conn, 1, False)
                self._flush_later()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- login --------------------------------------------------------------------------------

    def _login(self, conn: _Connection, pkt: Connect) -> Awaitable[None] | None:
        """A CONNECT: decided at once when the quick hooks can (no task at all), else in a task."""
        client_id, assigned = pkt.client_id, False
        if not client_id:
            if not pkt.clean_session:
                self._refuse(conn, codec.REFUSED_IDENTIFIER_REJECTED, "(empty)")
                return None
            client_id, assigned = f"auto-{uuid.uuid4().hex}", True
        info = ConnectInfo(client_id, pkt.username, pkt.password, pkt.clean_session, pkt.keep_alive, conn.peer(),
                           conn.tls, pkt.will.topic if pkt.will else None, assigned,
                           conn.peer_cert() if conn.tls else None)
        if isinstance(conn, _SocketConnection):
            conn.addr = None  # an idle connection holds no more than it needs; peer() asks the socket
        result = None
        if self._authenticate_now is not None:
            try:
                result = self._authenticate_now(info)
            except Exception:
                log.exception("authenticate hook failed for MQTT client %s", client_id)
                result = AuthResult.refuse(codec.REFUSED_SERVER_UNAVAILABLE)
        if result is None:
            return self._authenticate(conn, pkt, info)
        return self._authenticated(conn, pkt, info, result)

    async def _authenticate(self, conn: _Connection, pkt: Connect, info: ConnectInfo) -> None:
        try:
            result = await self.hooks.authenticate(info)
        except Exception:
            log.exception("authenticate hook failed for MQTT client %s", info.client_id)
            result = AuthResult.refuse(codec.REFUSED_SERVER_UNAVAILABLE)
        later = self._authenticated(conn, pkt, info, result)
        if later is not None:
            await later

    def _authenticated(self, conn: _Connection, pkt: Connect, info: ConnectInfo, result: AuthResult
                       ) -> Awaitable[None] | None:
        if not result.accepted:
            if not conn.closing:
                self._refuse(conn, result.return_code, info.client_id)
            return None
        if conn.closing:
            return self._abandoned(result.principal, info.client_id)
        old = self._sessions.get(info.client_id)
        if old is not None and old.conn is not None:
            return self._take_over(conn, pkt, info, result)
        return self._establish(conn, pkt, info, result)

    async def _take_over(self, conn: _Connection, pkt: Connect, info: ConnectInfo, result: AuthResult) -> None:
        """Close any live connection with this client id, and wait for its cleanup to finish, first."""
        for _ in range(10):
            old = self._sessions.get(info.client_id)
            if old is None or old.conn is None:
                break
            self.counts.takeovers += 1
            self._kick(old.conn, "takeover")
            await self._wait_done([old.conn])
        else:
            self._refuse(conn, codec.REFUSED_SERVER_UNAVAILABLE, info.client_id)
            await self._abandoned(result.principal, info.client_id)
            return
        if conn.closing:
            await self._abandoned(result.principal, info.client_id)
            return
        later = self._establish(conn, pkt, info, result)
        if later is not None:
            await later

    def _establish(self, conn: _Connection, pkt: Connect, info: ConnectInfo, result: AuthResult
                   ) -> Awaitable[None] | None:
        """The accepted client's session, its CONNACK, and ``on_connected`` (at once when it can)."""
        client_id = info.client_id
        session = self._sessions.get(client_id)
        if session is not None and (pkt.clean_session or session.clean):
            self._discard_session(session)
            session = None
        session_present = session is not None
        if session is None:
            session = self._sessions[client_id] = _Session(client_id, pkt.clean_session)
        session.clean = pkt.clean_session
        session.conn = conn
        conn.session, conn.principal, conn.will, conn.keep_alive = session, result.principal, pkt.will, pkt.keep_alive
        conn.state = _ONLINE
        conn.connected_at = time.time()
        self.counts.connects += 1
        log.info("MQTT client %s connected from %s (clean=%s, keepalive=%ds)", client_id, info.peer,
                 pkt.clean_session, pkt.keep_alive)
        self._send(conn, codec.encode(Connack(codec.ACCEPTED, session_present)))
        if session_present:
            self._resend(session)
        if pkt.keep_alive:
            assert self._wheel is not None
            self._wheel.at(conn, conn.last_rx + pkt.keep_alive * 1.5)
        if self._connected_now is not None:
            try:
                if self._connected_now(result.principal, client_id):
                    return None
            except Exception:
                log.exception("on_connected hook failed for MQTT client %s", client_id)
                return None
        return self._on_connected(result.principal, client_id)

    async def _on_connected(self, principal: object, client_id: str) -> None:
        try:
            await self.hooks.on_connected(principal, client_id)
        except Exception:
            log.exception("on_connected hook failed for MQTT client %s", client_id)

    async def _abandoned(self, principal: object, client_id: str) -> None:
        self.counts.abandoned_logins += 1
        hook: Callable[[object, str], Awaitable[None]] | None = getattr(self.hooks, "on_abandoned", None)
        if hook is not None:
            try:
                await hook(principal, client_id)
            except Exception:
                log.exception("on_abandoned hook failed for MQTT client %s", client_id)

    def _refuse(self, conn: _Connection, code: int, client_id: str) -> None:
        self.counts.refused += 1
        self._report.log(log, logging.INFO, "refused", "MQTT client %s refused with CONNACK %d", client_id, code)
        self._send(conn, codec.encode(Connack(code)))
        self._kick(conn, "lost")

    # --- inbound ------------------------------------------------------------------------------

    def _client_publish(self, conn: _Connection, topic: str, payload: bytes, qos: int, retain: bool,
                        pid: int | None, raw: bytes | None) -> Awaitable[None] | None:
        session = conn.session
        assert session is not None
        if qos == 2:
            assert pid is not None
            seen = session.inbound_qos2
            if seen is not None and pid in seen:  # a resent one was routed already
                self._send(conn, codec.encode_ack(codec.PUBREC, pid))
                return None
            if seen is None:
                seen = session.inbound_qos2 = set()
            seen.add(pid)
        decided = self._decide_now(conn, session.client_id, topic, payload, qos)
        if decided is None:
            return self._client_publish_later(conn, session.client_id, topic, payload, qos, retain, pid)
        if decided:
            self._route(topic, payload, qos, retain, raw)
        if pid is not None:
            self._send(conn, codec.encode_ack(codec.PUBACK if qos == 1 else codec.PUBREC, pid))
        return None

    async def _client_publish_later(self, conn: _Connection, client_id: str, topic: str, payload: bytes, qos: int,
                                    retain: bool, pid: int | None) -> None:
        await self._publish_from(conn, client_id, topic, payload, qos, retain)
        if pid is not None:
            self._send(conn, codec.encode_ack(codec.PUBACK if qos == 1 else codec.PUBREC, pid))

    def _decide_now(self, conn: _Connection, client_id: str, topic: str, payload: bytes, qos: int) -> bool | None:
        """What the quick hooks say of a client's publish: route it (True), drop it or leave it to the
        platform (False), or None when the async hooks must be asked."""
        authorize_now, publish_now = self._authorize_now, self._publish_now
        if authorize_now is None or publish_now is None:
            return None
        try:
            allowed = authorize_now(conn.principal, topic, "publish")
            if not allowed:
                if allowed is not None:
                    log.debug("MQTT client %s may not publish to %s; dropped", client_id, topic)
                    return False
                return None
            handled = publish_now(conn.principal, client_id, topic, payload, qos)
        except Exception:
            log.exception("a quick hook failed for MQTT client %s on %s", client_id, topic)
            return False
        return None if handled is None else not handled

    async def _publish_from(self, conn: _Connection, client_id: str, topic: str, payload: bytes, qos: int,
                            retain: bool) -> None:
        """A client's publish (or will): ACL, then the platform, then the subscribers."""
        decided = self._decide_now(conn, client_id, topic, payload, qos)
        if decided is None:
            try:
                allowed = await self.hooks.authorize(conn.principal, topic, "publish")
            except Exception:
                log.exception("authorize hook failed for MQTT client %s", client_id)
                allowed = False
            if not allowed:
                log.debug("MQTT client %s may not publish to %s; dropped", client_id, topic)
                return
            try:
                handled = await self.hooks.on_publish(conn.principal, client_id, topic, payload, qos)
            except Exception:
                log.exception("on_publish hook failed for MQTT client %s on %s", client_id, topic)
                return
            decided = not handled
        if decided:
            self._route(topic, payload, qos, retain)

    async def _on_subscribe(self, conn: _Connection, pkt: Subscribe) -> None:
        session = conn.session
        assert session is not None
        codes: list[int] = []
        granted: list[tuple[str, int]] = []
        for topic_filter, qos in pkt.topics:
            try:
                validate_filter(topic_filter)
                allowed = self._authorize_now(conn.principal, topic_filter, "subscribe") \
                    if self._authorize_now is not None else None
                if allowed is None:
                    allowed = await self.hooks.authorize(conn.principal, topic_filter, "subscribe")
            except InvalidTopic:
                allowed = False
            except Exception:
                log.exception("authorize hook failed for MQTT client %s", session.client_id)
                allowed = False
            if not allowed:
                log.info("MQTT client %s may not subscribe to %s", session.client_id, topic_filter)
                codes.append(codec.SUBACK_FAILURE)
                continue
            if session.subscriptions is None:
                session.subscriptions = {}
            session.subscriptions[topic_filter] = qos
            self._subscriptions.add(topic_filter, session, qos)
            codes.append(qos)
            granted.append((topic_filter, qos))
        self._send(conn, codec.encode(Suback(pkt.packet_id, tuple(codes))))
        for topic_filter, qos in granted:
            group, plain = parse_shared(topic_filter)
            if group is not None:
                continue  # retained messages are not sent to shared subscriptions (MQTT 5 rule)
            for topic, msg in list(self._retained.match(plain)):
                self._deliver(session, topic, msg.payload, min(qos, msg.qos), True)

    def _on_unsubscribe(self, conn: _Connection, pkt: Unsubscribe) -> None:
        session = conn.session
        assert session is not None
        for topic_filter in pkt.topics:
            if session.subscriptions is not None and session.subscriptions.pop(topic_filter, None) is not None:
                self._subscriptions.remove(topic_filter, session)
        self._send(conn, codec.encode_ack(codec.UNSUBACK, pkt.packet_id))

    def _on_ack(self, conn: _Connection, session: _Session, packet_id: int, done: bool) -> None:
        inflight = session.inflight
        if inflight is None or packet_id not in inflight:
            return
        if done:
            del inflight[packet_id]
            if session.released:
                session.released.discard(packet_id)
            if session.pending:
                self._fill_window(session)
        else:
            if session.released is None:
                session.released = set()
            session.released.add(packet_id)
            self._send(conn, codec.encode_ack(codec.PUBREL, packet_id))

    # --- outbound -----------------------------------------------------------------------------

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool, raw: bytes | None = None) -> int:
        """To every subscriber, once each at the highest QoS its filters grant; ``raw``: the message
        as a plain QoS 0 PUBLISH, when the client sent it so."""
        if retain:
            if payload:
                self._retained.set(topic, _Message(topic, payload, qos, True))
            else:
                self._retained.delete(topic)
        matched = self._subscriptions.match(topic, self._is_online)
        if not matched:
            return 0
        targets: Iterable[tuple[_Session, int]] = matched
        if len(matched) > 1:
            merged: dict[_Session, int] = {}
            for session, granted in matched:
                if granted > merged.get(session, -1):
                    merged[session] = granted
            targets = merged.items()
        plain = raw  # the QoS 0 packet, the same bytes for every subscriber
        shared: list[_Message | None] = [None, None, None]  # the message at QoS 1 and 2, for every subscriber
        count = 0
        for session, granted in targets:
            count += 1
            q = qos if qos < granted else granted
            if q == 0:
                conn = session.conn
                if conn is not None and conn.kick_reason is None:
                    if plain is None:
                        plain = codec.encode_publish(topic, payload)
                    self._send(conn, plain)
                    self.counts.messages_out += 1
            else:
                msg = shared[q]
                if msg is None:
                    msg = shared[q] = _Message(topic, payload, q, False)
                self._give(session, msg)
        return count

    @staticmethod
    def _is_online(session: _Session) -> bool:
        return session.conn is not None and session.conn.kick_reason is None

    def _deliver(self, session: _Session, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if qos == 0:
            conn = session.conn
            if conn is not None and conn.kick_reason is None:
                self._send(conn, codec.encode_publish(topic, payload, 0, retain))
                self.counts.messages_out += 1
            return
        self._give(session, _Message(topic, payload, qos, retain))

    def _give(self, session: _Session, msg: _Message) -> None:
        """A QoS 1/2 message to a session: sent if it is online and its window has room, else queued."""
        conn = session.conn
        inflight = session.inflight
        if (conn is not None and conn.kick_reason is None and not session.pending
                and (inflight is None or len(inflight) < self.limits.max_inflight)):
            self._send_inflight(session, conn, msg)
            return
        pending = session.pending
        if pending is None:
            pending = session.pending = deque(maxlen=self.limits.max_queued)
        if len(pending) == pending.maxlen:
            self.counts.queue_drops += 1
            self._report.log(log, logging.WARNING, "queue_full",
                             "queue of MQTT client %s full; dropping its oldest message", session.client_id)
        pending.append(msg)

    def _send_inflight(self, session: _Session, conn: _Connection, msg: _Message) -> None:
        inflight = session.inflight
        if inflight is None:
            inflight = session.inflight = {}
        pid = session.next_packet_id(inflight)
        inflight[pid] = msg
        self._send(conn, msg.packet(pid))
        self.counts.messages_out += 1

    def _fill_window(self, session: _Session) -> None:
        conn, pending = session.conn, session.pending
        limit = self.limits.max_inflight
        while pending and (session.inflight is None or len(session.inflight) < limit):
            if conn is None or conn.closing:
                return
            self._send_inflight(session, conn, pending.popleft())

    def _resend(self, session: _Session) -> None:
        """On resuming a session: unacknowledged messages again (DUP set), then the queue."""
        conn = session.conn
        assert conn is not None
        released = session.released or ()
        for pid, m in (session.inflight or {}).items():
            if pid in released:
                self._send(conn, codec.encode_ack(codec.PUBREL, pid))
            else:
                self._send(conn, codec.encode_publish(m.topic, m.payload, m.qos, m.retain, True, pid))
        self._fill_window(session)

    def _discard_session(self, session: _Session) -> None:
        for topic_filter in session.subscriptions or ():
            self._subscriptions.remove(topic_filter, session)
        session.subscriptions = session.pending = session.inflight = session.inbound_qos2 = session.released = None
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]

    # --- writing ------------------------------------------------------------------------------

    def _send(self, conn: _Connection, data: bytes) -> None:
        """Queue bytes for the client; they go out together at the end of this turn of the loop."""
        if conn.kick_reason is not None:
            return
        out = conn.out
        if out is None:
            conn.out = data
            self._dirty.append(conn)
            if not self._flush_soon and (self._poll is None or not self._poll.handling):
                self._flush_later()
        elif isinstance(out, list):
            out.append(data)
        else:
            conn.out = [out, data]

    def _flush_later(self) -> None:
        if not self._flush_soon and self._dirty:
            self._flush_soon = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        dirty, self._dirty = self._dirty, []
        limit = self.limits.max_write_buffer
        for conn in dirty:
            out, conn.out = conn.out, None
            if out is None or conn.closing:
                continue
            conn.write(out)
            unsent = conn.unsent()
            if unsent > HIGH_WATER and isinstance(conn, _SocketConnection):
                self._backpressure(conn, True)
            if unsent > limit:
                self.counts.overflows += 1
                log.warning("MQTT client %s is not reading; disconnecting",
                            conn.session.client_id if conn.session else "?")
                self._kick(conn, "overflow")
