"""The broker as devices see it: the real paho-mqtt client, plus raw sockets for what paho won't send.

paho runs its network loop in its own thread, so every wait on it goes through ``asyncio.to_thread``
and the broker keeps running on the test's event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.mqtt_client import HOST, WAIT, Device
from tests.support.tls import self_signed
from thingport.connect.mqtt import codec
from thingport.connect.mqtt.broker import AllowAllHooks, AuthResult, Broker, BrokerLimits, ConnectInfo
from thingport.connect.mqtt.codec import Connack, Connect, Publish, Suback, Subscribe, Will
from thingport.connect.mqtt.topics import InvalidTopic


class Hooks(AllowAllHooks):
    """Allow-all, plus whatever a test switches on, recording what the broker told us."""

    def __init__(self) -> None:
        self.passwords: dict[str, bytes] = {}
        self.blocked: set[str] = set()
        self.deny_subscribe: set[str] = set()
        self.deny_publish_prefix: str | None = None
        self.handler: Callable[[str, str, bytes], Any] | None = None
        self.fail_auth = False
        self.events: list[tuple[str, ...]] = []
        self.changed = asyncio.Event()

    async def authenticate(self, conn: ConnectInfo) -> AuthResult:
        if self.fail_auth:
            raise RuntimeError("store down")
        if conn.username in self.blocked:
            return AuthResult.refuse(5)
        if conn.username in self.passwords and self.passwords[conn.username] != conn.password:
            return AuthResult.refuse(4)
        return await super().authenticate(conn)

    async def authorize(self, principal: object, topic: str, action: str) -> bool:  # type: ignore[override]
        if action == "subscribe":
            return topic not in self.deny_subscribe
        return not (self.deny_publish_prefix and topic.startswith(self.deny_publish_prefix))

    async def on_publish(self, principal: object, client_id: str, topic: str, payload: bytes, qos: int) -> bool:
        if self.handler is not None:
            return bool(await self.handler(client_id, topic, payload))
        return False

    async def on_connected(self, principal: object, client_id: str) -> None:
        self.events.append(("connected", client_id))
        self.changed.set()

    async def on_disconnected(self, principal: object, client_id: str, reason: str) -> None:
        self.events.append(("disconnected", client_id, reason))
        self.changed.set()

    async def wait_for(self, event: tuple[str, ...]) -> None:
        async with asyncio.timeout(WAIT):
            while event not in self.events:
                self.changed.clear()
                await self.changed.wait()


class Raw:
    """A bare TCP client for bytes paho would never send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, rcvbuf: int | None = None) -> Raw:
        if rcvbuf is None:
            return cls(*await asyncio.open_connection(HOST, port))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
        return cls(*await asyncio.open_connection(sock=sock, limit=rcvbuf))

    def send(self, data: bytes | codec.Packet) -> None:
        self.writer.write(data if isinstance(data, bytes) else codec.encode(data))

    async def recv(self) -> codec.Packet | None:
        async with asyncio.timeout(WAIT):
            return await codec.read_packet(self.reader)

    async def connect(self, client_id: str, clean: bool = True, keep_alive: int = 60, will: Will | None = None,
                      level: int = 4) -> Connack:
        self.send(Connect(client_id, clean, keep_alive, will, protocol_name="MQTT" if level == 4 else "MQIsdp",
                          protocol_level=level))
        ack = await self.recv()
        assert isinstance(ack, Connack)
        return ack

    async def closed_by_server(self) -> bool:
        try:
            async with asyncio.timeout(WAIT):
                while await self.reader.read(65536):
                    pass
            return True
        except (ConnectionError, TimeoutError):
            return False

    def close(self) -> None:
        self.writer.transport.abort()


@pytest.fixture
async def hooks() -> Hooks:
    return Hooks()


@pytest.fixture(params=[True, False], ids=["epoll", "transports"])
def own_poll(request: pytest.FixtureRequest) -> bool:
    """Every broker test runs on both ways of watching clients: the broker's epoll set, asyncio transports."""
    return bool(request.param)


@pytest.fixture
async def broker(hooks: Hooks, own_poll: bool) -> AsyncIterator[Broker]:
    b = Broker(hooks, BrokerLimits(close_grace=1.0), own_poll=own_poll)
    await b.start(HOST, 0)
    yield b
    await b.stop()


@pytest.fixture
async def devices(broker: Broker) -> AsyncIterator[Callable[..., Device]]:
    made: list[Device] = []

    def make(**kw: Any) -> Device:
        d = Device(broker.port, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        await d.close()


# --- connecting -------------------------------------------------------------------------------

async def test_connect_refusals_carry_the_platforms_return_code(hooks: Hooks, devices: Callable[..., Device]) -> None:
    hooks.passwords["dev"] = b"right"
    hooks.blocked.add("banned")
    assert await devices(client_id="a", username="dev", password="right").connect() == 0
    assert await devices(client_id="b", username="dev", password="wrong").connect() == 4
    assert await devices(client_id="c", username="banned", password="x").connect() == 5
    hooks.fail_auth = True
    assert await devices(client_id="d").connect() == 3
    assert [e for e in hooks.events if e[0] == "connected"] == [("connected", "a")]


async def test_protocol_levels_and_client_ids(broker: Broker, devices: Callable[..., Device]) -> None:
    raw = await Raw.open(broker.port)
    raw.send(Connect("x", protocol_level=5))
    assert await raw.recv() == Connack(codec.REFUSED_PROTOCOL_VERSION)
    assert await raw.closed_by_server()

    old = await Raw.open(broker.port)
    assert (await old.connect("mqtt31", level=3)).return_code == 0  # MQIsdp still welcome

    anon = await Raw.open(broker.port)
    assert (await anon.connect("", clean=False)).return_code == codec.REFUSED_IDENTIFIER_REJECTED

    d = devices(client_id="", clean=True)
    assert await d.connect() == 0
    assert any(c.client_id.startswith("auto-") for c in broker.connected_clients())
    old.close()


# --- routing ----------------------------------------------------------------------------------

async def test_wildcard_routing_and_dollar_topics(broker: Broker, devices: Callable[..., Device]) -> None:
    temp, everything, pub = devices(client_id="temp"), devices(client_id="all"), devices(client_id="pub")
    for d in (temp, everything, pub):
        await d.connect()
    assert await temp.subscribe(("s/+/temp", 0)) == [0]
    assert await everything.subscribe(("#", 1)) == [1]
    await pub.publish("s/1/temp", b"21")
    await pub.publish("s/1/hum", b"40")
    await broker.publish("$SYS/uptime", b"1")
    assert (await temp.receive()).topic == "s/1/temp"
    assert [(await everything.receive()).topic for _ in range(2)] == ["s/1/temp", "s/1/hum"]
    await temp.nothing_more(0.1)
    await everything.nothing_more(0.1)


async def test_overlapping_subscriptions_deliver_once_at_the_highest_qos(broker: Broker,
                                                                         devices: Callable[..., Device]) -> None:
    d = devices(client_id="d")
    await d.connect()
    await d.subscribe(("a/#", 0), ("a/b", 1))
    assert await broker.publish("a/b", b"x", qos=1) == 1
    m = await d.receive()
    assert (m.topic, m.qos) == ("a/b", 1)
    await d.nothing_more(0.1)


async def test_retained_messages(broker: Broker, devices: Callable[..., Device]) -> None:
    pub = devices(client_id="pub")
    await pub.connect()
    await pub.publish("cfg/a", b"v1", qos=1, retain=True)
    await pub.publish("cfg/b", b"v2", retain=True)
    late = devices(client_id="late")
    await late.connect()
    await late.subscribe(("cfg/+", 1))
    got = {(m.topic, m.payload, m.retain) for m in [await late.receive(), await late.receive()]}
    assert got == {("cfg/a", b"v1", True), ("cfg/b", b"v2", True)}
    await pub.publish("cfg/a", b"v3", retain=True)  # to an existing subscriber: retain flag off
    m = await late.receive()
    assert (m.payload, m.retain) == (b"v3", False)
    await pub.publish("cfg/a", b"", retain=True)  # clears
    assert (await late.receive()).payload == b""
    later = devices(client_id="later")
    await later.connect()
    await later.subscribe(("cfg/#", 0))
    assert [(m.topic, m.payload) for m in [await later.receive()]] == [("cfg/b", b"v2")]
    await later.nothing_more(0.2)


async def test_qos_1_and_2_round_trips_with_downgrade(broker: Broker, devices: Callable[..., Device]) -> None:
    q2, q1, pub = devices(client_id="q2"), devices(client_id="q1"), devices(client_id="pub")
    for d in (q2, q1, pub):
        await d.connect()
    await q2.subscribe(("t", 2))
    await q1.subscribe(("t", 1))
    for i in range(5):
        await pub.publish("t", bytes([i]), qos=2)  # waits for PUBCOMP
    assert [(m.payload, m.qos) for m in [await q2.receive() for _ in range(5)]] == [(bytes([i]), 2) for i in range(5)]
    assert [(m.payload, m.qos) for m in [await q1.receive() for _ in range(5)]] == [(bytes([i]), 1) for i in range(5)]
    await pub.publish("t", b"one", qos=1)
    assert (await q2.receive()).qos == 1


async def test_inbound_qos2_is_routed_exactly_once(broker: Broker, devices: Callable[..., Device]) -> None:
    sub = devices(client_id="sub")
    await sub.connect()
    await sub.subscribe(("x", 2))
    raw = await Raw.open(broker.port)
    await raw.connect("raw")
    raw.send(Publish("x", b"once", 2, packet_id=7))
    assert await raw.recv() == codec.Pubrec(7)
    raw.send(Publish("x", b"once", 2, dup=True, packet_id=7))  # resent before PUBREL
    assert await raw.recv() == codec.Pubrec(7)
    raw.send(codec.Pubrel(7))
    assert await raw.recv() == codec.Pubcomp(7)
    assert (await sub.receive()).payload == b"once"
    await sub.nothing_more(0.2)
    raw.close()


# --- sessions ---------------------------------------------------------------------------------

async def test_persistent_session_keeps_subscriptions_and_qos1_messages(broker: Broker,
                                                                        devices: Callable[..., Device]) -> None:
    d = devices(client_id="p", clean=False)
    assert await d.connect() == 0 and d.session_present is False
    await d.subscribe(("cmd/#", 1))
    await d.close()
    for i in range(3):
        await broker.publish("cmd/x", f"m{i}".encode(), qos=1)
    await broker.publish("cmd/x", b"qos0 is not kept", qos=0)
    again = devices(client_id="p", clean=False)
    await again.connect()
    assert again.session_present is True
    assert [(await again.receive()).payload for _ in range(3)] == [b"m0", b"m1", b"m2"]
    await again.nothing_more(0.1)
    await again.close()
    fresh = devices(client_id="p", clean=True)
    await fresh.connect()
    assert fresh.session_present is False
    assert await broker.publish("cmd/x", b"gone", qos=1) == 0


async def test_unacknowledged_qos1_is_redelivered_with_dup_on_resume(broker: Broker) -> None:
    raw = await Raw.open(broker.port)
    await raw.connect("r", clean=False)
    raw.send(Subscribe(1, (("d", 1),)))
    assert await raw.recv() == Suback(1, (1,))
    await broker.publish("d", b"important", qos=1)
    first = await raw.recv()
    assert isinstance(first, Publish) and not first.dup
    raw.close()  # never acknowledged
    raw = await Raw.open(broker.port)
    assert (await raw.connect("r", clean=False)).session_present
    again = await raw.recv()
    assert isinstance(again, Publish)
    assert (again.payload, again.dup, again.packet_id) == (b"important", True, first.packet_id)
    assert again.packet_id is not None
    raw.send(codec.Puback(again.packet_id))
    raw.close()


async def test_offline_queue_is_bounded_dropping_the_oldest(hooks: Hooks, own_poll: bool) -> None:
    b = Broker(hooks, BrokerLimits(max_queued=3), own_poll=own_poll)
    await b.start(HOST, 0)
    try:
        raw = await Raw.open(b.port)
        await raw.connect("q", clean=False)
        raw.send(Subscribe(1, (("q", 1),)))
        await raw.recv()
        raw.close()
        await hooks.wait_for(("disconnected", "q", "lost"))
        for i in range(5):
            await b.publish("q", bytes([i]), qos=1)
        raw = await Raw.open(b.port)
        await raw.connect("q", clean=False)
        got = [await raw.recv() for _ in range(3)]
        assert [p.payload for p in got if isinstance(p, Publish)] == [b"\x02", b"\x03", b"\x04"]
        raw.close()
    finally:
        await b.stop()


async def test_takeover_closes_the_first_connection_before_the_second_is_announced(
        hooks: Hooks, devices: Callable[..., Device]) -> None:
    first, second = devices(client_id="same"), devices(client_id="same")
    await first.connect()
    await second.connect()
    assert await first.wait_disconnected()
    assert hooks.events == [("connected", "same"), ("disconnected", "same", "takeover"), ("connected", "same")]


# --- liveness and kicking ---------------------------------------------------------------------

@pytest.mark.slow
async def test_keepalive_expiry_closes_and_publishes_the_will(broker: Broker, hooks: Hooks,
                                                              devices: Callable[..., Device]) -> None:
    watcher = devices(client_id="w")
    await watcher.connect()
    await watcher.subscribe(("wills/#", 0))
    raw = await Raw.open(broker.port)
    await raw.connect("sleepy", keep_alive=1, will=Will("wills/sleepy", b"offline"))
    started = asyncio.get_running_loop().time()
    assert await raw.closed_by_server()
    assert 1.4 <= asyncio.get_running_loop().time() - started < 3
    assert ("disconnected", "sleepy", "keepalive") in hooks.events
    assert (await watcher.receive()).payload == b"offline"


@pytest.mark.slow
async def test_pings_keep_a_connection_alive(broker: Broker, hooks: Hooks) -> None:
    raw = await Raw.open(broker.port)
    await raw.connect("pinger", keep_alive=1)
    for _ in range(4):
        await asyncio.sleep(0.5)
        raw.send(codec.Pingreq())
        assert await raw.recv() == codec.Pingresp()
    assert [c.client_id for c in broker.connected_clients()] == ["pinger"]
    raw.close()


async def test_will_is_sent_on_a_lost_connection_but_not_after_disconnect(broker: Broker,
                                                                          devices: Callable[..., Device]) -> None:
    watcher = devices(client_id="w")
    await watcher.connect()
    await watcher.subscribe(("wills/#", 0))
    polite = devices(client_id="polite", will=("wills/polite", b"bye", 0))
    await polite.connect()
    await polite.close()
    raw = await Raw.open(broker.port)
    await raw.connect("rude", will=Will("wills/rude", b"lost"))
    raw.close()
    m = await watcher.receive()
    assert (m.topic, m.payload) == ("wills/rude", b"lost")
    await watcher.nothing_more(0.2)


async def test_kicked_client_sees_its_downlink_then_the_close(broker: Broker, hooks: Hooks,
                                                              devices: Callable[..., Device]) -> None:
    d = devices(client_id="dev-1")
    await d.connect()
    await d.subscribe(("notify/dev-1", 1))
    await broker.publish("notify/dev-1", b"disabled", qos=1)
    assert await broker.disconnect_client("dev-1", "key replaced")
    assert ("disconnected", "dev-1", "kicked") in hooks.events  # done by the time the call returns
    assert (await d.receive()).payload == b"disabled"
    assert await d.wait_disconnected()
    assert broker.connected_clients() == []
    assert not await broker.disconnect_client("dev-1")


async def test_disconnect_where_kicks_by_principal(broker: Broker, devices: Callable[..., Device]) -> None:
    ds = [devices(client_id=f"c{i}", username=f"org{i % 2}") for i in range(4)]
    for d in ds:
        await d.connect()
    assert await broker.disconnect_where(lambda p: p == "org1") == 2
    assert sorted(c.client_id for c in broker.connected_clients()) == ["c0", "c2"]
    assert await ds[1].wait_disconnected() and await ds[3].wait_disconnected()
    assert not ds[0].disconnected.is_set()


async def test_stop_closes_every_client(hooks: Hooks, devices: Callable[..., Device], broker: Broker) -> None:
    d = devices(client_id="s")
    await d.connect()
    await broker.stop()
    assert await d.wait_disconnected()
    assert ("disconnected", "s", "shutdown") in hooks.events


# --- the platform's decisions -----------------------------------------------------------------

async def test_acl_denials(hooks: Hooks, devices: Callable[..., Device]) -> None:
    hooks.deny_subscribe.add("secret/#")
    hooks.deny_publish_prefix = "secret/"
    d, spy = devices(client_id="d"), devices(client_id="spy")
    await d.connect()
    await spy.connect()
    assert await spy.subscribe(("secret/#", 1), ("open/#", 1)) == [0x80, 1]
    hooks.deny_subscribe.clear()
    await spy.subscribe(("#", 1))
    await d.publish("secret/x", b"no", qos=1)  # acknowledged, but dropped
    await d.publish("open/x", b"yes", qos=1)
    assert (await spy.receive()).topic == "open/x"
    await spy.nothing_more(0.2)


async def test_invalid_filters_get_a_suback_failure(broker: Broker) -> None:
    raw = await Raw.open(broker.port)
    await raw.connect("r")
    raw.send(Subscribe(3, (("bad/#/x", 0), ("ok/+", 2), ("$share/g", 1), ("a+", 1))))
    assert await raw.recv() == Suback(3, (0x80, 2, 0x80, 0x80))
    raw.close()


async def test_platform_handles_a_request_and_replies(broker: Broker, hooks: Hooks,
                                                      devices: Callable[..., Device]) -> None:
    async def handle(client_id: str, topic: str, payload: bytes) -> bool:
        if not topic.startswith("sys/"):
            return False
        await broker.publish(topic + "_reply", b'{"code":200,"for":"' + client_id.encode() + b'"}', qos=1)
        return True

    hooks.handler = handle
    dev, spy = devices(client_id="gw"), devices(client_id="spy")
    await dev.connect()
    await spy.connect()
    await dev.subscribe(("sys/gw/#", 1))
    await spy.subscribe(("sys/gw/topo/add", 0))
    await dev.publish("sys/gw/topo/add", b"{}", qos=1)
    m = await dev.receive()
    assert (m.topic, m.payload) == ("sys/gw/topo/add_reply", b'{"code":200,"for":"gw"}')
    await spy.nothing_more(0.2)  # handled requests are not routed
    await dev.nothing_more(0.01)


async def test_shared_subscription_balances_across_members(broker: Broker, devices: Callable[..., Device]) -> None:
    members = [devices(client_id=f"m{i}") for i in range(3)]
    plain = devices(client_id="plain")
    for d in [*members, plain]:
        await d.connect()
    for d in members:
        await d.subscribe(("$share/workers/up/#", 1))
    await plain.subscribe(("up/#", 0))
    for i in range(9):
        await broker.publish(f"up/{i}", b"x", qos=1)
    for d in members:
        got = [await d.receive() for _ in range(3)]
        assert all(m.topic.startswith("up/") for m in got)
        await d.nothing_more(0.05)
    assert len([await plain.receive() for _ in range(9)]) == 9


async def test_platform_publish_validates_the_topic(broker: Broker) -> None:
    with pytest.raises(InvalidTopic):
        await broker.publish("a/+", b"")
    with pytest.raises(ValueError):
        await broker.publish("a", b"", qos=3)


async def test_tls_listener(hooks: Hooks, tmp_path: Path) -> None:
    self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    b = Broker(hooks)
    await b.start(HOST, 0, ssl_context=ctx)
    d = Device(b.port, client_id="tls")
    d.client.tls_set(ca_certs=str(tmp_path / "c.pem"))
    d.client.tls_insecure_set(True)  # the certificate names localhost, we dial 127.0.0.1
    try:
        assert await d.connect() == 0
        await d.subscribe(("t", 1))
        await b.publish("t", b"over tls", qos=1)
        assert (await d.receive()).payload == b"over tls"
    finally:
        await d.close()
        await b.stop()


# --- hostile input ----------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [
    b"\x30\x03\x00\x01+",             # wildcard in a topic
    b"\x10\x02\x00\x00",              # a second CONNECT (truncated, at that)
    b"\xf0\x00",                      # reserved packet type
    b"\x30\xff\xff\xff\xff\x01",      # remaining length too long
    b"\x20\x02\x00\x00",              # a CONNACK from a client
])
async def test_malformed_packet_closes_only_that_connection(broker: Broker, hooks: Hooks, garbage: bytes,
                                                            devices: Callable[..., Device]) -> None:
    good = devices(client_id="good")
    await good.connect()
    await good.subscribe(("t", 0))
    bad = await Raw.open(broker.port)
    await bad.connect("bad", will=Will("t", b"bad's will"))
    bad.send(garbage)
    assert await bad.closed_by_server()
    await hooks.wait_for(("disconnected", "bad", "protocol_error"))
    assert (await good.receive()).payload == b"bad's will"
    await broker.publish("t", b"still fine")
    assert (await good.receive()).payload == b"still fine"


async def test_junk_before_connect_and_oversized_packets_are_closed(hooks: Hooks, own_poll: bool) -> None:
    b = Broker(hooks, BrokerLimits(max_packet_size=1024), own_poll=own_poll)
    await b.start(HOST, 0)
    try:
        junk = await Raw.open(b.port)
        junk.send(b"GET / HTTP/1.1\r\n\r\n")
        assert await junk.closed_by_server()
        big = await Raw.open(b.port)
        await big.connect("big")
        big.send(Publish("t", b"x" * 2000))
        assert await big.closed_by_server()
        assert ("disconnected", "big", "protocol_error") in hooks.events
    finally:
        await b.stop()


async def test_a_subscriber_that_stops_reading_is_dropped_not_buffered(hooks: Hooks, own_poll: bool) -> None:
    b = Broker(hooks, BrokerLimits(max_write_buffer=256 * 1024), own_poll=own_poll)
    await b.start(HOST, 0)
    try:
        slow = await Raw.open(b.port, rcvbuf=4096)
        await slow.connect("slow")
        slow.send(Subscribe(1, (("firehose", 0),)))
        assert await slow.recv() == Suback(1, (0,))
        slow.writer.transport.pause_reading()
        chunk = b"x" * 65536
        for _ in range(400):  # 25 MiB, far more than the socket buffers hold
            if await b.publish("firehose", chunk) == 0:
                break
            await asyncio.sleep(0)
        await hooks.wait_for(("disconnected", "slow", "overflow"))
        slow.close()
    finally:
        await b.stop()


# --- retained messages beyond the in-flight window ([MQTT-3.3.1-8]) -----------------------------

async def test_retained_messages_queued_beyond_the_window_keep_their_retain_flag(hooks: Hooks, own_poll: bool) -> None:
    """More retained messages than the window: those queued, and those resent on resume, stay retained."""
    b = Broker(hooks, BrokerLimits(max_inflight=2), own_poll=own_poll)
    await b.start(HOST, 0)
    try:
        for i in range(5):
            await b.publish(f"cfg/{i}", f"v{i}".encode(), qos=1, retain=True)
        raw = await Raw.open(b.port)
        await raw.connect("late", clean=False)
        raw.send(Subscribe(1, (("cfg/+", 1),)))
        assert await raw.recv() == Suback(1, (1,))
        first = [await raw.recv() for _ in range(2)]  # the window; the other three wait in the queue
        assert all(isinstance(p, Publish) and p.retain and p.qos == 1 for p in first)
        raw.close()  # never acknowledged: on resume they come again with DUP, then the queue
        raw = await Raw.open(b.port)
        assert (await raw.connect("late", clean=False)).session_present
        got: list[Publish] = []
        while len(got) < 5:
            p = await raw.recv()
            assert isinstance(p, Publish) and p.packet_id is not None
            got.append(p)
            raw.send(codec.Puback(p.packet_id))
        assert sorted(p.payload for p in got) == [f"v{i}".encode() for i in range(5)]
        assert all(p.retain for p in got), [(p.topic, p.retain, p.dup) for p in got]
        assert [p.dup for p in got[:2]] == [True, True]
        raw.close()
    finally:
        await b.stop()


# --- counting and logging what goes wrong ---------------------------------------------------------

async def test_a_silent_connection_is_closed_counted_and_logged(hooks: Hooks, own_poll: bool,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    b = Broker(hooks, BrokerLimits(connect_timeout=0.3), own_poll=own_poll)
    await b.start(HOST, 0)
    try:
        silent = [await Raw.open(b.port) for _ in range(3)]
        with caplog.at_level("WARNING", logger="thingport.connect.mqtt.broker"):
            for raw in silent:
                assert await raw.closed_by_server()
        stats = b.stats()
        assert (stats.accepted, stats.connect_timeouts, stats.connections) == (3, 3, 0)
        lines = [r.getMessage() for r in caplog.records if "no CONNECT" in r.getMessage()]
        assert len(lines) == 1, lines  # one line per interval, however many
    finally:
        await b.stop()


async def test_stats_count_logins_refusals_and_protocol_errors(broker: Broker, hooks: Hooks,
                                                               devices: Callable[..., Device]) -> None:
    hooks.passwords["dev"] = b"right"
    assert await devices(client_id="a", username="dev", password="right").connect() == 0
    assert await devices(client_id="b", username="dev", password="wrong").connect() == 4
    bad = await Raw.open(broker.port)
    await bad.connect("bad")
    bad.send(b"\xf0\x00")
    assert await bad.closed_by_server()
    stats = broker.stats()
    assert (stats.connects, stats.refused, stats.protocol_errors) == (2, 1, 1)
    assert stats.sessions == 1 and stats.connections == 1
    assert broker.stats() is not broker.stats()  # a snapshot, not the live counters


async def test_an_idle_connection_holds_no_task_and_no_buffer(broker: Broker, devices: Callable[..., Device]) -> None:
    d = devices(client_id="idle")
    await d.connect()
    await d.subscribe(("t", 1))
    await asyncio.sleep(0.05)
    conns = [c for c in broker._connections() if c.session is not None]
    assert len(conns) == 1
    conn = conns[0]
    assert (conn.task, conn.buf, conn.out) == (None, b"", None)
    assert not hasattr(conn, "__dict__")
    assert not broker._tasks


async def test_packets_after_a_slow_hook_wait_for_it(broker: Broker, hooks: Hooks,
                                                     devices: Callable[..., Device]) -> None:
    """A request whose hook takes a while is handled before the client's next publish is routed."""
    seen: list[str] = []

    async def slow(client_id: str, topic: str, payload: bytes) -> bool:
        if topic == "req":
            await asyncio.sleep(0.2)
        seen.append(topic)
        return False

    hooks.handler = slow
    spy, dev = devices(client_id="spy"), devices(client_id="dev")
    await spy.connect()
    await dev.connect()
    await spy.subscribe(("#", 0))
    dev.client.publish("req", b"1", 0)
    dev.client.publish("next", b"2", 0)
    assert [(await spy.receive()).topic for _ in range(2)] == ["req", "next"]
    assert seen == ["req", "next"]


async def test_quick_hooks_answer_without_the_async_ones(own_poll: bool) -> None:
    class Quick(Hooks):
        def __init__(self) -> None:
            super().__init__()
            self.asked: list[str] = []

        def authorize_now(self, principal: object, topic: str, action: str) -> bool | None:
            self.asked.append(f"now:{action}:{topic}")
            return None if topic.startswith("ask/") else not topic.startswith("deny/")

        def on_publish_now(self, principal: object, client_id: str, topic: str, payload: bytes,
                           qos: int) -> bool | None:
            return topic == "mine"

        async def authorize(self, principal: object, topic: str, action: str) -> bool:  # type: ignore[override]
            self.asked.append(f"async:{action}:{topic}")
            return True

    hooks = Quick()
    b = Broker(hooks, own_poll=own_poll)
    await b.start(HOST, 0)
    sub, pub = Device(b.port, client_id="sub"), Device(b.port, client_id="pub")
    try:
        await sub.connect()
        await pub.connect()
        assert await sub.subscribe(("#", 1)) == [1]
        for topic in ("deny/x", "mine", "ask/x", "ok"):
            await pub.publish(topic, b".", qos=1)
        assert [(await sub.receive()).topic for _ in range(2)] == ["ask/x", "ok"]
        await sub.nothing_more(0.1)
        assert "async:publish:ask/x" in hooks.asked and "async:publish:ok" not in hooks.asked
    finally:
        await sub.close()
        await pub.close()
        await b.stop()
