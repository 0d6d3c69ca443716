"""An embedded MQTT 3.1.1 broker whose every decision is delegated to the embedding application.

Why our own: the platform must refuse a login with the right CONNACK code, check each topic a
device touches, answer some device requests itself, and close a device's session the moment its
key is replaced. amqtt makes the last hard and is slow; this core is small enough to read.

Choices worth knowing:

* **One reader task per connection.** Packets of one client are handled in order, hooks included,
  so a device's request is always seen before its next one. Writes go straight to the transport.
* **Backpressure.** The reader drains its own socket before reading more, so a client that does
  not read its acks stops being read. Messages routed *to* a client never wait: if its unsent
  bytes exceed ``max_write_buffer`` it is disconnected (reason ``overflow``) instead of letting
  memory grow.
* **Sessions.** ``clean_session=False`` keeps subscriptions and QoS 1/2 messages for the client id
  in memory (at most ``max_queued`` queued messages per client, oldest dropped first; at most
  ``max_inflight`` unacknowledged at once). QoS 0 messages for an offline client are dropped.
  Sessions live until the broker stops; nothing is written to disk.
* **Will messages** are published whenever a connection ends without DISCONNECT, as the spec says:
  on a lost connection, keep-alive expiry, takeover *and* when the platform kicks the client. The
  will goes through ``authorize`` and ``on_publish`` like any publish, so the platform can drop it.
* **Takeover.** A CONNECT with a live client id closes the older connection, and its
  ``on_disconnected`` completes before the newcomer's ``on_connected`` runs.
* **Disconnect reasons** given to hooks: ``client`` (DISCONNECT), ``lost``, ``keepalive``,
  ``kicked``, ``takeover``, plus ``protocol_error`` (malformed packet), ``overflow`` (slow reader)
  and ``shutdown`` (broker stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from thingport.connect.mqtt import codec
from thingport.connect.mqtt.codec import (
    Connack,
    Connect,
    Disconnect,
    MalformedPacket,
    Pingreq,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
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

log = logging.getLogger(__name__)

Action = Literal["publish", "subscribe"]
DisconnectReason = Literal["client", "lost", "keepalive", "kicked", "takeover", "protocol_error", "overflow",
                           "shutdown"]

_PINGRESP = codec.encode(codec.Pingresp())


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
    """What the embedding application decides. Hooks run in the client's reader task, in order."""

    async def authenticate(self, conn: ConnectInfo) -> AuthResult: ...

    async def authorize(self, principal: object, topic: str, action: Action) -> bool: ...

    async def on_publish(self, principal: object, client_id: str, topic: str, payload: bytes, qos: int) -> bool:
        """Return True when the platform handled the message, so it is not routed to subscribers."""
        ...

    async def on_connected(self, principal: object, client_id: str) -> None: ...

    async def on_disconnected(self, principal: object, client_id: str, reason: str) -> None: ...


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


@dataclass(slots=True)
class _Message:
    topic: str
    payload: bytes
    qos: int


@dataclass(slots=True)
class _Inflight:
    message: _Message
    released: bool = False  # QoS 2: PUBREC seen, PUBREL sent, waiting for PUBCOMP


class _Session:
    """What outlives a connection when clean_session is false."""

    __slots__ = ("_last_id", "clean", "client_id", "conn", "inbound_qos2", "inflight", "pending", "subscriptions")

    def __init__(self, client_id: str, clean: bool, max_queued: int) -> None:
        self.client_id = client_id
        self.clean = clean
        self.conn: _Connection | None = None
        self.subscriptions: dict[str, int] = {}
        self.inflight: dict[int, _Inflight] = {}
        self.pending: deque[_Message] = deque(maxlen=max_queued)
        self.inbound_qos2: set[int] = set()
        self._last_id = 0

    def next_packet_id(self) -> int:
        """The next id not in flight (the window is far below 65535, so this ends quickly)."""
        while True:
            self._last_id = self._last_id % 65535 + 1
            if self._last_id not in self.inflight:
                return self._last_id


class _Connection:
    __slots__ = ("connected_at", "done", "idle", "info", "kick_reason", "last_rx", "principal", "session",
                 "task", "timer", "will", "writer")

    def __init__(self, writer: asyncio.StreamWriter, task: asyncio.Task[None] | None) -> None:
        self.writer = writer
        self.task = task
        self.done = asyncio.Event()
        self.idle = True  # waiting on the socket, so cancelling loses nothing
        self.kick_reason: DisconnectReason | None = None
        self.last_rx = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None
        self.info: ConnectInfo | None = None
        self.principal: object = None
        self.session: _Session | None = None
        self.will: codec.Will | None = None
        self.connected_at = time.time()

    @property
    def closing(self) -> bool:
        return self.kick_reason is not None


class Broker:
    """An MQTT 3.1.1 broker; see the module docstring for its semantics."""

    def __init__(self, hooks: BrokerHooks | None = None, limits: BrokerLimits | None = None) -> None:
        self.hooks: BrokerHooks = hooks if hooks is not None else AllowAllHooks()
        self.limits = limits if limits is not None else BrokerLimits()
        self._servers: list[tuple[asyncio.Server, bool]] = []
        self._sessions: dict[str, _Session] = {}
        self._connections: set[_Connection] = set()
        self._subscriptions: SubscriptionTrie[str, int] = SubscriptionTrie()
        self._retained: TopicTree[_Message] = TopicTree()

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 1883, ssl_context: ssl.SSLContext | None = None) -> None:
        """Open a listener; call again for more (plain and TLS listeners share every session)."""
        server = await asyncio.start_server(self._handle, host, port, ssl=ssl_context)
        self._servers.append((server, ssl_context is not None))
        log.info("MQTT broker listening on %s:%d%s", host, self._port_of(server),
                 " (TLS)" if ssl_context is not None else "")

    @staticmethod
    def _port_of(server: asyncio.Server) -> int:
        return int(server.sockets[0].getsockname()[1])

    @property
    def port(self) -> int:
        """The first listener's port."""
        if not self._servers or not self._servers[0][0].sockets:
            raise RuntimeError("broker not started")
        return self._port_of(self._servers[0][0])

    @property
    def ports(self) -> list[int]:
        return [self._port_of(server) for server, _ in self._servers if server.sockets]

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        if not servers:
            return
        for server, _ in servers:
            server.close()
        conns = list(self._connections)
        for conn in conns:
            self._kick(conn, "shutdown")
        await self._wait_done(conns)
        for server, _ in servers:
            await server.wait_closed()
        self._sessions.clear()
        self._subscriptions = SubscriptionTrie()
        log.info("MQTT broker stopped")

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
        self._deliver(session, topic, bytes(payload), qos, retain=False)
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
        targets = [c.session.client_id for c in self._connections
                   if c.session is not None and not c.closing and predicate(c.principal)]
        results = await asyncio.gather(*(self.disconnect_client(cid, reason, discard_session=discard_session)
                                         for cid in targets))
        return sum(results)

    def connected_clients(self) -> list[ClientInfo]:
        out = []
        for c in self._connections:
            if c.session is not None and c.info is not None and not c.closing:
                out.append(ClientInfo(c.session.client_id, c.principal, c.info.peer, c.connected_at,
                                      c.info.clean_session, c.info.keep_alive))
        return out

    # --- connection handling ------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(writer, asyncio.current_task())
        self._connections.add(conn)
        reason: DisconnectReason = "lost"
        try:
            try:
                async with asyncio.timeout(self.limits.connect_timeout):
                    first = await codec.read_packet(reader, self.limits.max_packet_size, expect=codec.CONNECT)
            except UnsupportedProtocol:
                writer.write(codec.encode(Connack(codec.REFUSED_PROTOCOL_VERSION)))
                return
            if not isinstance(first, Connect):
                return
            if not await self._accept(conn, first, writer):
                return
            reason = await self._serve(conn, reader)
        except (MalformedPacket, TimeoutError, ConnectionError, OSError) as e:
            if conn.session is not None:
                log.info("closing MQTT client %s: %s", conn.session.client_id, e)
            reason = "protocol_error" if isinstance(e, MalformedPacket) else "lost"
        except asyncio.CancelledError:
            if conn.kick_reason is None:
                raise  # not ours: the loop is going away
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # our own wake-up call, so later timeouts in hooks behave
        except Exception:  # a bug of ours must cost one connection, never the broker
            log.exception("internal error serving MQTT client %s",
                          conn.session.client_id if conn.session else "(before CONNECT)")
            reason = "lost"
        finally:
            await self._finish(conn, conn.kick_reason or reason)

    async def _accept(self, conn: _Connection, pkt: Connect, writer: asyncio.StreamWriter) -> bool:
        client_id, assigned = pkt.client_id, False
        if not client_id:
            if not pkt.clean_session:
                writer.write(codec.encode(Connack(codec.REFUSED_IDENTIFIER_REJECTED)))
                return False
            client_id, assigned = f"auto-{uuid.uuid4().hex}", True
        peer = writer.get_extra_info("peername")
        info = ConnectInfo(client_id, pkt.username, pkt.password, pkt.clean_session, pkt.keep_alive,
                           (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None,
                           writer.get_extra_info("ssl_object") is not None,
                           pkt.will.topic if pkt.will else None, assigned)
        conn.idle = False
        try:
            result = await self.hooks.authenticate(info)
        except Exception:
            log.exception("authenticate hook failed for MQTT client %s", client_id)
            result = AuthResult(codec.REFUSED_SERVER_UNAVAILABLE)
        if conn.closing:
            return False
        if not result.accepted:
            log.info("MQTT client %s refused with CONNACK %d", client_id, result.return_code)
            writer.write(codec.encode(Connack(result.return_code)))
            return False

        # Take over: close any live connection with this id, and wait for its cleanup to finish.
        for _ in range(10):
            old = self._sessions.get(client_id)
            if old is None or old.conn is None:
                break
            self._kick(old.conn, "takeover")
            await self._wait_done([old.conn])
        else:
            writer.write(codec.encode(Connack(codec.REFUSED_SERVER_UNAVAILABLE)))
            return False
        if conn.closing:
            return False

        session = self._sessions.get(client_id)
        if session is not None and (pkt.clean_session or session.clean):
            self._discard_session(session)
            session = None
        session_present = session is not None
        if session is None:
            session = _Session(client_id, pkt.clean_session, self.limits.max_queued)
            self._sessions[client_id] = session
        session.clean = pkt.clean_session
        session.conn = conn
        conn.session, conn.info, conn.principal, conn.will = session, info, result.principal, pkt.will
        conn.connected_at = time.time()
        log.info("MQTT client %s connected from %s (clean=%s, keepalive=%ds)", client_id, info.peer,
                 pkt.clean_session, pkt.keep_alive)
        self._send(conn, codec.encode(Connack(codec.ACCEPTED, session_present)))
        if session_present:
            self._resend(session)
        self._arm_keepalive(conn)
        try:
            await self.hooks.on_connected(result.principal, client_id)
        except Exception:
            log.exception("on_connected hook failed for MQTT client %s", client_id)
        return True

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> DisconnectReason:
        writer, max_size = conn.writer, self.limits.max_packet_size
        while not conn.closing:
            conn.idle = True
            await writer.drain()
            if conn.closing:
                break
            packet = await codec.read_packet(reader, max_size)
            conn.idle = False
            if packet is None:
                return "lost"
            conn.last_rx = time.monotonic()
            if isinstance(packet, Publish):
                await self._on_client_publish(conn, packet)
            elif isinstance(packet, Puback):
                self._on_ack(conn, packet.packet_id, done=True)
            elif isinstance(packet, Pubrec):
                self._on_ack(conn, packet.packet_id, done=False)
            elif isinstance(packet, Pubcomp):
                self._on_ack(conn, packet.packet_id, done=True)
            elif isinstance(packet, Pubrel):
                assert conn.session is not None
                conn.session.inbound_qos2.discard(packet.packet_id)
                self._send(conn, codec.encode(Pubcomp(packet.packet_id)))
            elif isinstance(packet, Subscribe):
                await self._on_subscribe(conn, packet)
            elif isinstance(packet, Unsubscribe):
                self._on_unsubscribe(conn, packet)
            elif isinstance(packet, Pingreq):
                self._send(conn, _PINGRESP)
            elif isinstance(packet, Disconnect):
                conn.will = None
                return "client"
            else:  # a second CONNECT, or a packet only a server sends
                raise MalformedPacket(f"unexpected {type(packet).__name__} from a client")
        return conn.kick_reason or "kicked"

    async def _finish(self, conn: _Connection, reason: DisconnectReason) -> None:
        """Tear a connection down exactly once: timers, will, session, hooks."""
        conn.kick_reason = conn.kick_reason or reason
        conn.idle = False
        if conn.timer is not None:
            conn.timer.cancel()
        transport = conn.writer.transport
        if reason in ("overflow", "protocol_error"):
            transport.abort()
        else:
            conn.writer.close()
            asyncio.get_running_loop().call_later(self.limits.close_grace, transport.abort)
        session = conn.session
        try:
            if session is None:
                return
            if session.conn is conn:
                session.conn = None
                if session.clean:
                    self._discard_session(session)
            log.info("MQTT client %s disconnected (%s)", session.client_id, reason)
            will = conn.will
            conn.will = None
            if will is not None and reason != "shutdown":
                await self._publish_from(conn, session.client_id, will.topic, will.payload, will.qos, will.retain)
            try:
                await self.hooks.on_disconnected(conn.principal, session.client_id, reason)
            except Exception:
                log.exception("on_disconnected hook failed for MQTT client %s", session.client_id)
        finally:
            self._connections.discard(conn)
            conn.done.set()

    def _kick(self, conn: _Connection, reason: DisconnectReason) -> None:
        if conn.closing:
            return
        conn.kick_reason = reason
        if reason == "overflow":
            conn.writer.transport.abort()
        else:
            conn.writer.close()
        # Wake the reader if it is blocked on the socket; if it is busy in a hook it will see
        # ``closing`` when the hook returns, so hooks are never cancelled half-way.
        if conn.idle and conn.task is not None and conn.task is not asyncio.current_task():
            conn.task.cancel()

    async def _wait_done(self, conns: Iterable[_Connection]) -> None:
        current = asyncio.current_task()
        waits = [c.done.wait() for c in conns if c.task is not current]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.limits.close_grace + 1):
                    await asyncio.gather(*waits)

    def _arm_keepalive(self, conn: _Connection) -> None:
        assert conn.info is not None
        if not conn.info.keep_alive:
            return
        allowed = conn.info.keep_alive * 1.5
        loop = asyncio.get_running_loop()

        def check() -> None:
            if conn.closing:
                return
            late = time.monotonic() - conn.last_rx
            if late >= allowed:
                log.info("MQTT client %s keep-alive expired", conn.session.client_id if conn.session else "?")
                self._kick(conn, "keepalive")
            else:
                conn.timer = loop.call_later(allowed - late, check)

        conn.timer = loop.call_later(allowed, check)

    def _send(self, conn: _Connection, data: bytes) -> None:
        if conn.closing:
            return
        transport = conn.writer.transport
        conn.writer.write(data)
        if transport.get_write_buffer_size() > self.limits.max_write_buffer:
            log.warning("MQTT client %s is not reading; disconnecting",
                        conn.session.client_id if conn.session else "?")
            self._kick(conn, "overflow")

    # --- inbound ------------------------------------------------------------------------------

    async def _on_client_publish(self, conn: _Connection, pkt: Publish) -> None:
        session = conn.session
        assert session is not None
        if pkt.qos == 2:
            assert pkt.packet_id is not None
            if pkt.packet_id not in session.inbound_qos2:  # a resent one was routed already
                session.inbound_qos2.add(pkt.packet_id)
                await self._publish_from(conn, session.client_id, pkt.topic, pkt.payload, 2, pkt.retain)
            self._send(conn, codec.encode(Pubrec(pkt.packet_id)))
            return
        await self._publish_from(conn, session.client_id, pkt.topic, pkt.payload, pkt.qos, pkt.retain)
        if pkt.qos == 1:
            assert pkt.packet_id is not None
            self._send(conn, codec.encode(Puback(pkt.packet_id)))

    async def _publish_from(self, conn: _Connection, client_id: str, topic: str, payload: bytes, qos: int,
                            retain: bool) -> None:
        """A client's publish (or will): ACL, then the platform, then the subscribers."""
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
        if handled:
            return
        self._route(topic, payload, qos, retain)

    async def _on_subscribe(self, conn: _Connection, pkt: Subscribe) -> None:
        session = conn.session
        assert session is not None
        codes: list[int] = []
        granted: list[tuple[str, int]] = []
        for topic_filter, qos in pkt.topics:
            try:
                validate_filter(topic_filter)
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
            session.subscriptions[topic_filter] = qos
            self._subscriptions.add(topic_filter, session.client_id, qos)
            codes.append(qos)
            granted.append((topic_filter, qos))
        self._send(conn, codec.encode(Suback(pkt.packet_id, tuple(codes))))
        for topic_filter, qos in granted:
            group, plain = parse_shared(topic_filter)
            if group is not None:
                continue  # retained messages are not sent to shared subscriptions (MQTT 5 rule)
            for topic, msg in list(self._retained.match(plain)):
                self._deliver(session, topic, msg.payload, min(qos, msg.qos), retain=True)

    def _on_unsubscribe(self, conn: _Connection, pkt: Unsubscribe) -> None:
        session = conn.session
        assert session is not None
        for topic_filter in pkt.topics:
            if session.subscriptions.pop(topic_filter, None) is not None:
                self._subscriptions.remove(topic_filter, session.client_id)
        self._send(conn, codec.encode(Unsuback(pkt.packet_id)))

    def _on_ack(self, conn: _Connection, packet_id: int, done: bool) -> None:
        session = conn.session
        assert session is not None
        entry = session.inflight.get(packet_id)
        if entry is None:
            return
        if done:
            del session.inflight[packet_id]
            self._fill_window(session)
        else:
            entry.released = True
            self._send(conn, codec.encode(Pubrel(packet_id)))

    # --- outbound -----------------------------------------------------------------------------

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool) -> int:
        if retain:
            if payload:
                self._retained.set(topic, _Message(topic, payload, qos))
            else:
                self._retained.delete(topic)
        targets: dict[str, int] = {}
        for client_id, granted in self._subscriptions.match(topic, self._is_online):
            if granted > targets.get(client_id, -1):
                targets[client_id] = granted
        for client_id, granted in targets.items():
            session = self._sessions.get(client_id)
            if session is not None:
                self._deliver(session, topic, payload, min(qos, granted), retain=False)
        if targets:
            log.debug("routed %s to %d subscribers", topic, len(targets))
        return len(targets)

    def _is_online(self, client_id: str) -> bool:
        session = self._sessions.get(client_id)
        return session is not None and session.conn is not None and not session.conn.closing

    def _deliver(self, session: _Session, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        conn = session.conn
        online = conn is not None and not conn.closing
        if qos == 0:
            if online:
                assert conn is not None
                self._send(conn, codec.encode_publish(topic, payload, 0, retain))
            return
        msg = _Message(topic, payload, qos)
        if online and len(session.inflight) < self.limits.max_inflight and not session.pending:
            assert conn is not None
            pid = session.next_packet_id()
            session.inflight[pid] = _Inflight(msg)
            self._send(conn, codec.encode_publish(topic, payload, qos, retain, False, pid))
        else:
            if len(session.pending) == session.pending.maxlen:
                log.warning("queue of MQTT client %s full; dropping its oldest message", session.client_id)
            session.pending.append(msg)

    def _fill_window(self, session: _Session) -> None:
        conn = session.conn
        while session.pending and len(session.inflight) < self.limits.max_inflight:
            if conn is None or conn.closing:
                return
            msg = session.pending.popleft()
            pid = session.next_packet_id()
            session.inflight[pid] = _Inflight(msg)
            self._send(conn, codec.encode_publish(msg.topic, msg.payload, msg.qos, False, False, pid))

    def _resend(self, session: _Session) -> None:
        """On resuming a session: unacknowledged messages again (DUP set), then the queue."""
        conn = session.conn
        assert conn is not None
        for pid, entry in session.inflight.items():
            if entry.released:
                self._send(conn, codec.encode(Pubrel(pid)))
            else:
                m = entry.message
                self._send(conn, codec.encode_publish(m.topic, m.payload, m.qos, False, True, pid))
        self._fill_window(session)

    def _discard_session(self, session: _Session) -> None:
        for topic_filter in session.subscriptions:
            self._subscriptions.remove(topic_filter, session.client_id)
        session.subscriptions.clear()
        session.pending.clear()
        session.inflight.clear()
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]
