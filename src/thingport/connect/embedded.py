"""The embedded MQTT broker of ``thingport serve``: the broker core behind the front door.

The login credentials are read into memory before the listeners open, so the first logins after a
start read nothing either; online state still queued is written before :meth:`EmbeddedBroker.stop`
returns.
"""

from __future__ import annotations

import gc
import logging
import ssl
from dataclasses import dataclass

from thingport.connect.frontdoor import FrontDoor
from thingport.connect.mqtt.broker import Broker, BrokerLimits
from thingport.services.container import Services
from thingport.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EmbeddedBroker:
    broker: Broker
    door: FrontDoor

    @property
    def listening(self) -> bool:
        """Whether a listener is open (``/ready``)."""
        return bool(self.broker.ports)

    async def stop(self) -> None:
        await self.broker.stop()
        self.door.close()
        self.door.connectivity.credentials.stop()
        await self.door.connectivity.presence.flush()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not (settings.mqtt_tls_cert and settings.mqtt_tls_key):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.mqtt_tls_cert, settings.mqtt_tls_key)
    return ctx


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
    door = FrontDoor(services)
    broker = Broker(door, BrokerLimits(listen_backlog=settings.mqtt_listen_backlog))
    door.attach(broker)
    try:
        if settings.mqtt_port > 0:
            await broker.start(settings.host, settings.mqtt_port)
        if tls is not None:
            await broker.start(settings.host, settings.mqtt_tls_port, tls)
    except BaseException:
        await broker.stop()
        door.close()
        raise
    return EmbeddedBroker(broker, door)
