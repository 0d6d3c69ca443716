"""The embedded MQTT broker of ``thingport serve``: the broker core behind the front door.

The login credentials are read into memory before the listeners open, so the first logins after a
start read nothing either; online state still queued is written before :meth:`EmbeddedBroker.stop`
returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import ssl
from dataclasses import dataclass

from thingport.connect.frontdoor import FrontDoor
from thingport.connect.mqtt.broker import Broker, BrokerLimits
from thingport.domain.models import now_ms
from thingport.services import events
from thingport.services.container import Services
from thingport.settings import Settings

log = logging.getLogger(__name__)
#: How often renewals' grace periods are looked for, to end the sessions of certificates they supersede.
SWEEP_S = 1.0
#: How often (in sweeps) the device CAs are read for ones made elsewhere (another node, a ``thingport`` command).
CA_REFRESH_SWEEPS = 5


@dataclass(slots=True)
class EmbeddedBroker:
    broker: Broker
    door: FrontDoor
    cas: CaFollower | None = None

    @property
    def listening(self) -> bool:
        """Whether a listener is open (``/ready``)."""
        return bool(self.broker.ports)

    async def stop(self) -> None:
        if self.cas is not None:
            self.cas.close()
        await self.broker.stop()
        self.door.close()
        self.door.connectivity.credentials.stop()
        await self.door.connectivity.presence.flush()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not (settings.mqtt_tls_cert and settings.mqtt_tls_key):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.mqtt_tls_cert, settings.mqtt_tls_key)
    if settings.mqtt_tls_client_certs:
        # Asked for, not required: password logins on TLS go on working; a certificate presented must
        # end in a device CA (docs/certificates.md), and the X.509 scheme checks which device it is.
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def trust(ctx: ssl.SSLContext, pems: list[str]) -> None:
    """Add device CAs to what client certificates may end in (a context only ever gains CAs: a
    rotated CA still vouches for what it signed)."""
    if ctx.verify_mode != ssl.CERT_NONE:
        for pem in pems:
            ctx.load_verify_locations(cadata=pem)


async def start(services: Services) -> EmbeddedBroker | None:
    """Open the configured listeners; None when both are off."""
    settings = services.core.settings
    tls = tls_context(settings)
    if settings.mqtt_port <= 0 and tls is None:
        return None
    loaded = await services.connectivity.credentials.load()
    log.info("login credentials of %d devices in memory", loaded)
    # What start-up made (modules, the schema, those credentials) lives as long as the process: out
    # of the collector's way, so a full collection during a login storm does not walk it each time.
    gc.freeze()
    cas = None
    if tls is not None and tls.verify_mode != ssl.CERT_NONE:
        cas = CaFollower(services, tls)
        await cas.refresh()
        cas.start()
    door = FrontDoor(services)
    broker = Broker(door, BrokerLimits(listen_backlog=settings.mqtt_listen_backlog))
    door.attach(broker)
    try:
        if settings.mqtt_port > 0:
            await broker.start(settings.host, settings.mqtt_port)
        if tls is not None:
            await broker.start(settings.host, settings.mqtt_tls_port, tls)
    except BaseException:
        if cas is not None:
            cas.close()
        await broker.stop()
        door.close()
        raise
    return EmbeddedBroker(broker, door, cas)


class CaFollower:
    """Keeps the TLS listener trusting every device CA: this process's new ones as their event comes,
    another node's or a ``thingport ca`` command's within ``CA_REFRESH_SWEEPS`` seconds (the table is
    read). Every ``SWEEP_S`` it also publishes, to this node only, the revocations whose time came (a
    renewal's grace period ending), so the session of a superseded certificate ends here as well."""

    def __init__(self, services: Services, ctx: ssl.SSLContext) -> None:
        self.services = services
        self.ctx = ctx
        self.known: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = services.core.bus.subscribe(self._on_event)

    async def _on_event(self, ev: events.Event) -> None:
        if isinstance(ev.payload, events.DeviceCaAdded):
            self._add([ev.payload.cert_pem])

    def _add(self, pems: list[str]) -> None:
        new = [p for p in pems if p not in self.known]
        trust(self.ctx, new)
        self.known.update(new)

    async def refresh(self) -> None:
        self._add(await self.services.certificates.all_trusted())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        swept, ticks = now_ms(), 0
        while True:
            await asyncio.sleep(SWEEP_S)
            ticks += 1
            try:
                until = now_ms()
                due = await self.services.certificates.due(swept, until)
                swept = until
                await self.services.core.bus.publish(due)
                if ticks % CA_REFRESH_SWEEPS == 0:
                    await self.refresh()
            except Exception as exc:  # a busy or lost database: next time
                log.debug("reading device certificates and CAs failed: %s", exc)

    def close(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
