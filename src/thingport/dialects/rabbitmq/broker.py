"""A Thingport node behind RabbitMQ: device requests off an AMQP queue, replies and notices to ``amq.topic``.

* **Requests.** One durable queue, ``{mqtt_external_group}.requests``, is bound to ``amq.topic`` with
  the routing key of every request topic the front door answers (``.sys.*.*.thing.topo.add`` …). Every
  node consumes it: RabbitMQ hands each message to one of them (competing consumers, on whichever
  RabbitMQ node the device is connected to), and a node acknowledges a request once answered, so the
  requests a killed node held are delivered again to the others.
* **Replies and notices** are published over the same AMQP connection to ``amq.topic`` with the
  topic's routing key; the MQTT plugin delivers them to the device's subscription on any node.
* **Online state.** RabbitMQ has no connect/disconnect hook; its event exchange (plugin
  ``rabbitmq_event_exchange``) publishes ``connection.created`` (naming the user) and
  ``connection.closed`` (naming only the connection). Every node reads all of them on a queue of its
  own and keeps connection → user, and marks the device online or offline through its remote
  sessions (the writes are idempotent: the other nodes' are no-ops). The session's client id is the
  connection's name: what the management API closes, and what tells a takeover by a newer connection
  from the end of the device's.
* **Kicks** go to the management API, which closes a connection on any RabbitMQ node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import httpx
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from thingport.connect.external import Deliver, ExternalBroker
from thingport.connect.frontdoor import FrontDoor
from thingport.connect.remote import RemoteSessions
from thingport.dialects.rabbitmq import topics
from thingport.settings import Settings

log = logging.getLogger(__name__)

#: Requests a node takes ahead of the one it answers; a killed node's are delivered to the others.
PREFETCH = 16
#: A request nobody consumed for this long is dropped: the device gave up waiting for its answer.
REQUEST_TTL_MS = 60_000
EVENT_EXCHANGE = "amq.rabbitmq.event"
CONNECTION_EVENTS = ("connection.created", "connection.closed")
#: The management API lists a connection once its first statistics are in (``collect_statistics_interval``).
STATS_LAG_S = 6.0


class ManagementApi:
    """RabbitMQ's management HTTP API, as Thingport's administrator user: closing and listing connections."""

    def __init__(self, api_url: str, user: str, password: str,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.api_url = api_url.rstrip("/")
        self._auth = (user, password)
        self._transport = transport
        #: The user of a connection, by name, as the connection events told (None: unknown).
        self.user_of: Callable[[str], str | None] = lambda _name: None

    async def client(self, client_id: str, reason: str = "") -> bool:
        """Close the connection of this name.

        The API finds a connection by name only once its first statistics are in (seconds after it
        opened), but a user's connections at once: when the connection is its user's only one, it
        is closed by user name. A name the connection events no longer know is closed already.
        """
        user = self.user_of(client_id)
        if user is None:
            return False
        try:
            async with self._http() as http:
                r = await http.get(f"{self.api_url}/api/connections/username/{quote(user, safe='')}")
                if r.status_code == 200 and [c.get("name") for c in r.json()] == [client_id]:
                    return await self._close_user(http, user, reason)
                r = await http.delete(f"{self.api_url}/api/connections/{quote(client_id, safe='')}",
                                      headers={"X-Reason": reason or "closed by Thingport"})
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("RabbitMQ kick of %r failed: %s", client_id, exc)
            return False
        if r.status_code not in (204, 404):
            log.warning("RabbitMQ kick of %r answered HTTP %s", client_id, r.status_code)
        return r.status_code == 204

    async def user(self, username: str, reason: str = "") -> bool:
        """Close every connection of a user."""
        try:
            async with self._http() as http:
                return await self._close_user(http, username, reason)
        except httpx.HTTPError as exc:
            log.warning("RabbitMQ kick of user %r failed: %s", username, exc)
            return False

    async def _close_user(self, http: httpx.AsyncClient, username: str, reason: str) -> bool:
        r = await http.delete(f"{self.api_url}/api/connections/username/{quote(username, safe='')}",
                              headers={"X-Reason": reason or "closed by Thingport"})
        if r.status_code != 204:
            log.warning("RabbitMQ kick of user %r answered HTTP %s", username, r.status_code)
        return r.status_code == 204

    async def mqtt_connections(self) -> dict[str, str] | None:
        """Connection name → user of every MQTT connection the API lists; None when it cannot be asked."""
        try:
            async with self._http() as http:
                r = await http.get(f"{self.api_url}/api/connections", params={"columns": "name,user,protocol"})
                r.raise_for_status()
                rows = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("RabbitMQ connection listing failed: %s", exc)
            return None
        return {str(c["name"]): str(c["user"]) for c in rows
                if isinstance(c, dict) and "MQTT" in str(c.get("protocol")) and c.get("name") and c.get("user")}

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=5.0, auth=self._auth, transport=self._transport)


class ConnectionEvents:
    """``connection.created`` / ``connection.closed`` → the device online / offline, through remote sessions."""

    def __init__(self, remote: RemoteSessions, api: ManagementApi | None) -> None:
        self.remote = remote
        self.api = api
        #: Connection name → (user, when this node learnt of it, monotonic).
        self._users: dict[str, tuple[str, float]] = {}

    def user_of(self, name: str) -> str | None:
        known = self._users.get(name)
        return known[0] if known is not None else None

    async def created(self, name: str, user: str) -> None:
        self._users[name] = (user, time.monotonic())
        await self.remote.connected(name, user)

    async def closed(self, name: str) -> None:
        known = self._users.pop(name, None)
        if known is not None:
            await self.remote.disconnected(name, known[0], "connection closed")

    async def on_event(self, key: str, headers: dict[str, Any]) -> None:
        name = text(headers.get("name"))
        if key == "connection.created" and "MQTT" in text(headers.get("protocol")):
            await self.created(name, text(headers.get("user")))
        elif key == "connection.closed":
            await self.closed(name)

    async def seed(self) -> None:
        """What happened while this node was not listening: the connections the API lists are online;
        those this node knew that it no longer lists (and are old enough to be listed) are closed."""
        if self.api is None:
            return
        listed = await self.api.mqtt_connections()
        if listed is None:
            return
        settled = time.monotonic() - STATS_LAG_S
        for name in [n for n, (_, seen) in self._users.items() if n not in listed and seen < settled]:
            await self.closed(name)
        for name, user in listed.items():
            if name not in self._users:
                await self.created(name, user)


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


class AmqpLink:
    """A node's AMQP connection: the request queue, its own connection-event queue, and publishing."""

    def __init__(self, url: str, group: str, events: ConnectionEvents, queue_type: str = "classic") -> None:
        self.url = url
        self.group = group
        self.events = events
        self.queue_type = queue_type
        self.name = f"thingport-{socket.gethostname()}-{os.getpid()}"
        self._closed = asyncio.Event()
        self._closed.set()
        self._conn: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[asyncio.Task[None]] = []

    @property
    def closed(self) -> asyncio.Event:
        return self._closed

    @property
    def request_queue(self) -> str:
        return f"{self.group}.requests"

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"RabbitMQ {parts.hostname}:{parts.port or 5672} (queue {self.request_queue})"

    async def open(self, filters: Sequence[str], deliver: Deliver) -> None:
        conn = await aio_pika.connect(self.url, client_properties={"connection_name": self.name})
        try:
            requests_ch = await conn.channel(publisher_confirms=False)
            await requests_ch.set_qos(prefetch_count=PREFETCH)
            requests = await requests_ch.declare_queue(self.request_queue, durable=True, arguments={
                "x-queue-type": self.queue_type, "x-message-ttl": REQUEST_TTL_MS})
            for f in filters:
                await requests.bind(topics.EXCHANGE, routing_key=topics.routing_key(f))
            events_ch = await conn.channel(publisher_confirms=False)
            events = await events_ch.declare_queue("", exclusive=True, auto_delete=True)
            try:
                for key in CONNECTION_EVENTS:
                    await events.bind(EVENT_EXCHANGE, routing_key=key)
            except aio_pika.exceptions.ChannelNotFoundEntity as exc:
                raise ConnectionError(f"RabbitMQ has no {EVENT_EXCHANGE} exchange: enable the rabbitmq_event_exchange "
                                      "plugin (deploy/rabbitmq/enabled_plugins)") from exc
            publish_ch: AbstractChannel = await conn.channel(publisher_confirms=False)
            self._exchange = await publish_ch.get_exchange(topics.EXCHANGE, ensure=False)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        self._closed.clear()
        conn.close_callbacks.add(lambda *_: self._closed.set())
        self._consumers = [asyncio.get_running_loop().create_task(c) for c in (
            self._consume(events, self._on_event), self._consume(requests, self._request_handler(deliver)))]
        await self.events.seed()

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        if not topics.survives(topic):
            log.warning("not published on %s: RabbitMQ would deliver it on another topic ('.' in a segment)", topic)
            return
        if self._exchange is None or self._closed.is_set():
            raise ConnectionError("not connected to RabbitMQ")
        message = aio_pika.Message(payload, headers={"x-mqtt-publish-qos": qos},
                                   delivery_mode=aio_pika.DeliveryMode.PERSISTENT if qos else None)
        try:
            # not mandatory: a device that is offline or has not subscribed just misses it, as over MQTT
            await self._exchange.publish(message, routing_key=topics.routing_key(topic), mandatory=False)
        except aio_pika.exceptions.ChannelInvalidStateError as exc:  # the channel closed under us
            raise ConnectionError(str(exc)) from exc

    async def close(self) -> None:
        for task in self._consumers:
            task.cancel()
        for task in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._conn is not None:
            await self._conn.close()
        self._closed.set()

    def _request_handler(self, deliver: Deliver) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def handle(message: AbstractIncomingMessage) -> None:
            qos = message.headers.get("x-mqtt-publish-qos", 1)
            await deliver(topics.topic(message.routing_key or ""), message.body, qos if isinstance(qos, int) else 1)
        return handle

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        await self.events.on_event(message.routing_key or "", dict(message.headers))

    async def _consume(self, queue: AbstractQueue,
                       handle: Callable[[AbstractIncomingMessage], Awaitable[None]]) -> None:
        """One message at a time, in order; acknowledged once handled (a failure is logged, not retried)."""
        try:
            async with queue.iterator() as messages:
                async for message in messages:
                    try:
                        await handle(message)
                    except Exception:
                        log.exception("RabbitMQ message on %s failed", message.routing_key)
                    await message.ack()
        except (aio_pika.exceptions.AMQPError, ConnectionError) as exc:
            log.warning("RabbitMQ consumer of %s stopped: %s", queue.name, exc)


def rabbitmq_broker(door: FrontDoor, settings: Settings) -> ExternalBroker:
    """The node's link to RabbitMQ (``rabbitmq_amqp_url``), kicking through ``rabbitmq_api_url`` when set."""
    parts = urlsplit(settings.rabbitmq_amqp_url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ValueError("rabbitmq_amqp_url: must be amqp://user:password@host:5672/ (amqps:// for TLS)")
    api = ManagementApi(settings.rabbitmq_api_url, unquote(parts.username or ""), unquote(parts.password or "")) \
        if settings.rabbitmq_api_url else None
    events = ConnectionEvents(door.remote, api)
    if api is not None:
        api.user_of = events.user_of
    link = AmqpLink(settings.rabbitmq_amqp_url, settings.mqtt_external_group, events, settings.rabbitmq_queue_type)
    return ExternalBroker(door, link, api)
