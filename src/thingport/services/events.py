"""The internal event stream.

Every event is first written to the ``events`` table in the transaction that caused it (so a
consumer that was down can catch up from the table), then handed to in-process subscribers once
that transaction has committed. The MQTT front door subscribes to close sessions; push delivery
of other dialects reads the table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DEVICE_CREATED = "device.created"
DEVICE_UPDATED = "device.updated"
DEVICE_REPLACED = "device.replaced"
DEVICE_DELETED = "device.deleted"
DEVICE_ENABLED = "device.enabled"
DEVICE_DISABLED = "device.disabled"
DEVICE_CONNECTED = "device.connected"
DEVICE_DISCONNECTED = "device.disconnected"
TOPOLOGY_CHANGED = "topology.changed"
#: A gateway reported sub-devices it discovered (Alink ``thing/list/found``).
SUB_DEVICES_FOUND = "topology.found"
#: A device registered by verify code completed its bind (OceanConnect): it has its secret now.
DEVICE_BOUND = "device.bound"
#: A pending bind was not completed in time (OceanConnect): the registration lapsed.
DEVICE_BIND_EXPIRED = "device.bind_expired"
PRODUCT_CREATED = "product.created"
PRODUCT_UPDATED = "product.updated"
PRODUCT_DELETED = "product.deleted"
#: A sub-device left its gateway: its (gateway-proxied) session must end. Payload: productKey, deviceKey,
#: gatewayAssetId, gatewayProductKey, gatewayDeviceKey.
DEVICE_DETACHED = "device.detached"

# Living Platform downlinks: the asset id is the device the message goes to; every payload carries
# orgId, productKey and deviceKey of that device plus the message fields (docs/living.md).
#: ``/sys/{pk}/{dn}/_thing/event/notify`` identifier ``awss.BindNotify``; payload adds iotId, identityId,
#: owned (0/1), operation ("Bind" | "Unbind").
LIVING_BIND_NOTIFY = "living.bind_notify"
#: ``/sys/{pk}/{dn}/thing/gateway/permit``; payload adds permit = {productKey, time}.
LIVING_GATEWAY_PERMIT = "living.gateway_permit"
#: ``/sys/{pk}/{dn}/thing/topo/change``; payload adds status (1 = deleted) and subList [{productKey, deviceName}].
LIVING_TOPO_CHANGE = "living.topo_change"
#: ``/sys/{pk}/{dn}/thing/awss/enrollee/checkin`` to the registrar; payload adds enrollee =
#: {productKey, deviceName, timeout}.
LIVING_ENROLLEE_CHECKIN = "living.enrollee_checkin"

#: Events after which a live device session must be closed at once.
SESSION_ENDING = frozenset({DEVICE_REPLACED, DEVICE_DELETED, DEVICE_DISABLED, DEVICE_DETACHED})


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    org_id: str
    asset_id: str | None
    payload: dict[str, Any] = field(default_factory=dict)
    id: int = 0
    time: int = 0


Subscriber = Callable[[Event], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def publish(self, events: list[Event]) -> None:
        """Deliver in order; a failing subscriber is logged and does not stop the others."""
        for ev in events:
            for sub in list(self._subscribers):
                try:
                    await sub(ev)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("event subscriber failed on %s", ev.kind)
