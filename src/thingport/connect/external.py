"""External-broker mode: Thingport as a privileged client of a broker cluster (EMQX, Mosquitto, RabbitMQ).

The broker authenticates devices and checks their topic rights by calling Thingport over HTTP
(:mod:`thingport.dialects.emqx`, :mod:`thingport.dialects.rabbitmq`). Every Thingport node holds one
:class:`BrokerLink` to the broker, which hands it a share of the device requests (each request reaches
exactly one node), and on which the node publishes replies and notices by topic. The node answers
with the front door's handlers, through its remote sessions (:mod:`thingport.connect.remote`).

Two links exist: :class:`MqttLink`, an MQTT client on shared subscriptions (``$share/{group}/…``, EMQX
and Mosquitto), and the RabbitMQ AMQP consumer (:mod:`thingport.dialects.rabbitmq.broker`). The rest
(reconnecting, the downlink, kicks) is :class:`ExternalBroker`'s, the same for both.

Plain MQTT cannot close another client's connection: kicks go to the broker's API (:class:`Kicks`) —
EMQX's REST API when ``emqx_api_url`` is set, RabbitMQ's management API; without one a closed session
is only refused at the device's next login or topic-rights check (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import httpx

from thingport.connect.frontdoor import FrontDoor
from thingport.connect.mqtt.client import MqttClient
from thingport.settings import Settings

log = logging.getLogger(__name__)

#: Seconds between reconnection attempts after the broker connection is lost (doubling up to the max).
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0
KEEP_ALIVE_S = 30


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """``mqtt://[user[:pass]@]host[:port]``; ``mqtts://`` for TLS (ports 1883 / 8883 by default)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"mqtt_external_url: scheme must be mqtt:// or mqtts://, got {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("mqtt_external_url: no host")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError("mqtt_external_url: port is not a number") from None
        return cls(parts.hostname, port, tls, unquote(parts.username) if parts.username is not None else None,
                   unquote(parts.password) if parts.password is not None else None)


class EmqxKick:
    """Closes clients through the EMQX 5 REST API (API key and secret as HTTP basic auth).

    ``DELETE /api/v5/clients/{clientid}`` kicks one client; ``GET /api/v5/clients?username=…`` finds
    the clients of a device whose connection no session of this node knows.
    """

    def __init__(self, api_url: str, key: str, secret: str,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self._auth = (key, secret)
        self._transport = transport

    async def client(self, client_id: str, reason: str = "") -> bool:
        try:
            async with self._http() as http:
                return await self._delete(http, client_id)
        except httpx.HTTPError as exc:
            log.warning("EMQX kick of %r failed: %s", client_id, exc)
            return False

    async def user(self, username: str, reason: str = "") -> bool:
        try:
            async with self._http() as http:
                r = await http.get(f"{self.api_url}/api/v5/clients", params={"username": username, "limit": 100})
                if r.status_code != 200:
                    log.warning("EMQX client lookup of user %r answered HTTP %s", username, r.status_code)
                    return False
                clients = [c.get("clientid") for c in r.json().get("data", []) if isinstance(c, dict)]
                kicked = [await self._delete(http, c) for c in clients if isinstance(c, str)]
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("EMQX kick of user %r failed: %s", username, exc)
            return False
        return any(kicked)

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=5.0, auth=self._auth, transport=self._transport)

    async def _delete(self, http: httpx.AsyncClient, client_id: str) -> bool:
        r = await http.delete(f"{self.api_url}/api/v5/clients/{quote(client_id, safe='')}")
        if r.status_code == 204:
            return True
        if r.status_code != 404:  # 404: already gone
            log.warning("EMQX kick of %r answered HTTP %s", client_id, r.status_code)
        return False


#: A request the link took off the broker: topic, payload, QoS.
Deliver = Callable[[str, bytes, int], Awaitable[None]]


class BrokerLink(Protocol):
    """One node's connection to the broker: consumes its share of the device requests, publishes by topic.

    :meth:`open` may be called again after the connection was lost (``closed`` set).
    """

    @property
    def closed(self) -> asyncio.Event: ...

    def describe(self) -> str:
        """Where it connects, for the log."""
        ...

    async def open(self, filters: Sequence[str], deliver: Deliver) -> None:
        """Connect and consume the requests on these MQTT topic filters; fails when refused."""
        ...

    async def publish(self, topic: str, payload: bytes, qos: int) -> None: ...

    async def close(self) -> None: ...


class Kicks(Protocol):
    """A broker's API closing other clients' connections."""

    async def client(self, client_id: str, reason: str = "") -> bool:
        """Close one connection (as the broker's connected event named it)."""
        ...

    async def user(self, username: str, reason: str = "") -> bool:
        """Close every connection of a broker user (a device no session of this node knows)."""
        ...


class MqttLink:
    """An MQTT client of the broker, on one shared subscription per request topic (EMQX, Mosquitto)."""

    def __init__(self, url: BrokerUrl, group: str, client_id: str | None = None) -> None:
        self.url = url
        self.group = group
        self.client_id = client_id or f"thingport-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.client: MqttClient | None = None

    @property
    def closed(self) -> asyncio.Event:
        return self.client.closed if self.client is not None else _CLOSED

    def describe(self) -> str:
        return f"MQTT broker {self.url.host}:{self.url.port} as {self.client_id}"

    def filters(self, topics: Sequence[str]) -> list[str]:
        """The shared subscriptions: one per request topic the front door answers."""
        return [f"$share/{self.group}/{f}" for f in topics]

    async def open(self, filters: Sequence[str], deliver: Deliver) -> None:
        async def on_message(topic: str, payload: bytes) -> None:
            await deliver(topic, payload, 1)

        client = MqttClient(self.client_id, username=self.url.username, password=self.url.password,
                            keep_alive=KEEP_ALIVE_S, on_message=on_message)
        ctx = ssl.create_default_context() if self.url.tls else None
        await client.connect(self.url.host, self.url.port, ssl_context=ctx)
        shared = self.filters(filters)
        codes = await client.subscribe(*[(f, 1) for f in shared])
        if any(code == 0x80 for code in codes):
            await client.close()
            raise ConnectionError(f"external broker refused the subscriptions {shared} ({codes})")
        self.client = client

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        client = self.client
        if client is None or client.closed.is_set():
            raise ConnectionError("not connected to the external broker")
        await client.publish(topic, payload, qos)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


#: What a link that never connected reports as its state.
_CLOSED = asyncio.Event()
_CLOSED.set()


class ExternalBroker:
    """The front door's downlink over a :class:`BrokerLink`, and the loop keeping that link connected."""

    def __init__(self, door: FrontDoor, link: BrokerLink, kick: Kicks | None = None) -> None:
        self.door = door
        self.link = link
        self.kick = kick
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        door.attach(self)

    @property
    def listening(self) -> bool:
        """Whether the link to the broker is up, so device requests reach this node (``/ready``)."""
        return not self.link.closed.is_set()

    async def start(self) -> None:
        """Connect once (a wrong URL or refused login fails ``serve`` at once), then supervise."""
        await self._connect()
        self._runner = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self._drain()
        await self.link.close()
        self.door.close()

    # --- Downlink ---------------------------------------------------------------------------------
    def send_to(self, client_id: str, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Publish to the device's topic (the broker routes it; ``client_id`` is not needed)."""
        if self.link.closed.is_set():
            log.warning("downlink to %s dropped: not connected to the external broker", topic)
            return False
        task = asyncio.get_running_loop().create_task(self._publish(topic, payload, qos))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def disconnect_client(self, client_id: str, reason: str = "", *, discard_session: bool = False) -> bool:
        if self.kick is None:
            log.info("cannot close %r (%s) without the broker's API: refused at its next login or rights check",
                     client_id, reason)
            return False
        await self._drain()  # the notification on its way to the device goes first
        return await self.kick.client(client_id, reason)

    async def disconnect_user(self, username: str, reason: str = "") -> bool:
        if self.kick is None:
            return False
        await self._drain()
        return await self.kick.user(username, reason)

    # --- internals --------------------------------------------------------------------------------
    async def _drain(self, timeout: float = 2.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def _publish(self, topic: str, payload: bytes, qos: int) -> None:
        try:
            await self.link.publish(topic, payload, qos)
        except (ConnectionError, OSError, TimeoutError) as exc:
            log.warning("downlink to %s failed: %s", topic, exc)

    async def _connect(self) -> None:
        await self.link.open(self.door.requests.filters(), self._on_request)
        log.info("connected to external %s", self.link.describe())

    async def _supervise(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._stopping:
            await self.link.closed.wait()
            log.warning("lost the external broker connection; reconnecting")
            while not self._stopping:
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                    delay = RECONNECT_MIN_S
                    break
                except (ConnectionError, OSError, TimeoutError) as exc:
                    delay = min(delay * 2, RECONNECT_MAX_S)
                    log.warning("external broker unreachable (%s); next try in %.1fs", exc, delay)

    async def _on_request(self, topic: str, payload: bytes, qos: int) -> None:
        try:
            await self.door.remote.on_bridged_publish(topic, payload, qos)
        except Exception:  # one bad request must not stop the consumer
            log.exception("bridged request on %s failed", topic)


def kick_for(settings: Settings) -> EmqxKick | None:
    if not settings.emqx_api_url:
        return None
    return EmqxKick(settings.emqx_api_url, settings.emqx_api_key, settings.emqx_api_secret)


def mqtt_broker(door: FrontDoor, settings: Settings) -> ExternalBroker:
    """The node's link to ``mqtt_external_url`` (EMQX, Mosquitto), kicking through EMQX's API when set."""
    link = MqttLink(BrokerUrl.parse(settings.mqtt_external_url), settings.mqtt_external_group)
    return ExternalBroker(door, link, kick_for(settings))
