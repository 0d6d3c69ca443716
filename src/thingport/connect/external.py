"""External-broker mode: Thingport as a privileged client of an MQTT broker cluster (EMQX, Mosquitto).

The broker authenticates devices and checks their topic rights by calling the HTTP hooks of
:mod:`thingport.dialects.emqx`; this module consumes the platform's request topics through a shared
subscription (``$share/{group}/…``), so each request reaches exactly one of the Thingport nodes,
which answers it with the front door's handlers (through its remote sessions,
:mod:`thingport.connect.remote`) and publishes the reply and any downlink.

Plain MQTT cannot close another client's connection. With EMQX the front door's kicks go to its
REST API (``DELETE /api/v5/clients/{clientid}``) when ``emqx_api_url`` is set; otherwise a closed
session is only refused at the device's next login or topic-rights check (docs/mqtt.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from thingport.connect.frontdoor import FrontDoor
from thingport.connect.mqtt.client import MqttClient
from thingport.services.container import Services
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

    async def __call__(self, client_id: str) -> bool:
        try:
            async with self._http() as http:
                return await self._delete(http, client_id)
        except httpx.HTTPError as exc:
            log.warning("EMQX kick of %r failed: %s", client_id, exc)
            return False

    async def by_username(self, username: str) -> bool:
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


class ExternalBroker:
    """The front door's downlink over a privileged client, and the loop keeping that client connected."""

    def __init__(self, door: FrontDoor, url: BrokerUrl, group: str, kick: EmqxKick | None = None,
                 client_id: str | None = None) -> None:
        self.door = door
        self.url = url
        self.group = group
        self.kick = kick
        self.client_id = client_id or f"thingport-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.client: MqttClient | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        door.attach(self)

    @property
    def filters(self) -> list[str]:
        """The shared subscriptions: one per request topic the front door answers."""
        return [f"$share/{self.group}/{f}" for f in self.door.requests.filters()]

    async def start(self) -> None:
        """Connect and subscribe once (a wrong URL or refused login fails ``serve`` at once), then supervise."""
        await self._connect()
        self._runner = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self._drain()
        if self.client is not None:
            await self.client.close()
        self.door.close()

    # --- Downlink ---------------------------------------------------------------------------------
    def send_to(self, client_id: str, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Publish to the device's topic (the broker routes it; ``client_id`` is not needed)."""
        client = self.client
        if client is None or client.closed.is_set():
            log.warning("downlink to %s dropped: not connected to the external broker", topic)
            return False
        task = asyncio.get_running_loop().create_task(self._publish(client, topic, payload, qos))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def disconnect_client(self, client_id: str, reason: str = "", *, discard_session: bool = False) -> bool:
        if self.kick is None:
            log.info("cannot close %r (%s) over plain MQTT: refused at its next login or rights check",
                     client_id, reason)
            return False
        await self._drain()  # the notification on its way to the device goes first
        return await self.kick(client_id)

    async def disconnect_user(self, username: str, reason: str = "") -> bool:
        if self.kick is None:
            return False
        await self._drain()
        return await self.kick.by_username(username)

    # --- internals --------------------------------------------------------------------------------
    async def _drain(self, timeout: float = 2.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def _publish(self, client: MqttClient, topic: str, payload: bytes, qos: int) -> None:
        try:
            await client.publish(topic, payload, qos)
        except (ConnectionError, OSError, TimeoutError) as exc:
            log.warning("downlink to %s failed: %s", topic, exc)

    async def _connect(self) -> None:
        client = MqttClient(self.client_id, username=self.url.username, password=self.url.password,
                            keep_alive=KEEP_ALIVE_S, on_message=self._on_message)
        ctx = ssl.create_default_context() if self.url.tls else None
        await client.connect(self.url.host, self.url.port, ssl_context=ctx)
        codes = await client.subscribe(*[(f, 1) for f in self.filters])
        if any(code == 0x80 for code in codes):
            await client.close()
            raise ConnectionError(f"external broker refused the subscriptions {self.filters} ({codes})")
        self.client = client
        log.info("connected to external MQTT broker %s:%s as %s", self.url.host, self.url.port, self.client_id)

    async def _supervise(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._stopping:
            assert self.client is not None
            await self.client.closed.wait()
            log.warning("lost the external MQTT broker connection; reconnecting")
            while not self._stopping:
                await asyncio.sleep(delay)
                try:
                    await self._connect()
                    delay = RECONNECT_MIN_S
                    break
                except (ConnectionError, OSError, TimeoutError) as exc:
                    delay = min(delay * 2, RECONNECT_MAX_S)
                    log.warning("external MQTT broker unreachable (%s); next try in %.1fs", exc, delay)

    async def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            await self.door.remote.on_bridged_publish(topic, payload, 1)
        except Exception:  # one bad request must not stop the consumer
            log.exception("bridged request on %s failed", topic)


def kick_for(settings: Settings) -> EmqxKick | None:
    if not settings.emqx_api_url:
        return None
    return EmqxKick(settings.emqx_api_url, settings.emqx_api_key, settings.emqx_api_secret)


async def start(services: Services) -> ExternalBroker | None:
    """The privileged client of ``mqtt_external_url``; None when that setting is empty."""
    settings = services.core.settings
    if not settings.mqtt_external_url:
        return None
    url = BrokerUrl.parse(settings.mqtt_external_url)
    door = FrontDoor(services)
    external = ExternalBroker(door, url, settings.mqtt_external_group, kick_for(settings))
    try:
        await external.start()
    except BaseException:
        door.close()
        raise
    return external
