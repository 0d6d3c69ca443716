"""The internal event stream.

Every event is first written to the ``events`` table in the transaction that caused it (so a
consumer that was down can catch up from the table), then handed to in-process subscribers once
that transaction has committed. The MQTT front door subscribes to close sessions; push delivery
of other dialects reads the table.

What an event says is one :class:`EventPayload` struct per kind, shared by the service that emits
it and every consumer. Its JSON is the row's ``payload`` column, and a running deployment keeps
its outbox across an upgrade: field names (camelCase) and values are a stored format, so a field
is renamed never, and added only with a default that reads the older rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Self

import msgspec

from thingport.domain.models import Device
from thingport.store.events import EventRow

log = logging.getLogger(__name__)

#: kind → the struct of its payload, filled as the structs below are defined (one each).
KINDS: dict[str, type[EventPayload]] = {}


class _Stored(msgspec.Struct, rename="camel", omit_defaults=True):
    """camelCase JSON, the keys the table has always held; a field at its default is left out."""


class EventPayload(_Stored):
    """What an event of kind ``KIND`` says. A subclass that sets ``KIND`` is that kind's one struct."""

    KIND: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("KIND")
        if kind is None:  # an abstract base of several kinds
            return
        if kind in KINDS:
            raise TypeError(f"event kind {kind} has two structs: {KINDS[kind].__name__} and {cls.__name__}")
        KINDS[kind] = cls


# --- devices --------------------------------------------------------------------------------------

class DeviceEvent(EventPayload):
    """About one device, named by the keys it logs in with: its session (and, behind an external
    broker, its user name) is found from them, and a push can describe a device deleted since."""

    product_key: str
    device_key: str


class PlainDeviceEvent(DeviceEvent):
    """A device event that carries nothing beyond the device's keys."""

    @classmethod
    def of(cls, device: Device) -> Self:
        return cls(product_key=device.product_key, device_key=device.device_key)


class DeviceCreated(PlainDeviceEvent):
    KIND = "device.created"


class DeviceUpdated(PlainDeviceEvent):
    KIND = "device.updated"


class DeviceEnabled(PlainDeviceEvent):
    KIND = "device.enabled"


class DeviceDisabled(PlainDeviceEvent):
    KIND = "device.disabled"


class DeviceConnected(PlainDeviceEvent):
    KIND = "device.connected"


class DeviceDisconnected(PlainDeviceEvent):
    KIND = "device.disconnected"


class DeviceReplaced(DeviceEvent):
    """The device got ``new_device_key`` and a new secret; the keys are the old ones, whose session ends."""

    KIND = "device.replaced"
    new_device_key: str
    #: A grace period (Thingport's ``grace``): the old credential logs in until then, and its session
    #: goes on until then; absent (the vendors' behaviour) it ends at once.
    grace_until: int | None = None


class DeviceDeleted(DeviceEvent, omit_defaults=False):
    """``gateway_id``: the gateway the device was under (OceanConnect's ``deviceDeleted`` names it);
    ``null`` for a directly connected one, missing in rows written before it was recorded."""

    KIND = "device.deleted"
    gateway_id: str | None = None


class DeviceDetached(DeviceEvent):
    """A sub-device left its gateway: its (gateway-proxied) session must end."""

    KIND = "device.detached"
    gateway_asset_id: str
    gateway_product_key: str
    gateway_device_key: str


class DeviceBound(DeviceEvent):
    """A device registered by verify code completed its bind (OceanConnect): it has its secret now."""

    KIND = "device.bound"
    node_id: str | None


class DeviceBindExpired(DeviceEvent):
    """A pending bind was not completed in time (OceanConnect): the registration lapsed, and a
    never-bound device was ``deleted`` with it (``name`` describes it in the push)."""

    KIND = "device.bind_expired"
    node_id: str | None
    name: str | None
    deleted: bool


class CertificateRevoked(DeviceEvent):
    """A device certificate stopped being valid: revoked, or superseded by a renewal (at once, or when
    the renewal's grace period ends). The session that logged in with it ends; logins with it are
    refused on every node (the revocation is in the database)."""

    KIND = "device.certificate_revoked"
    cert_sn: str


class DevicesImported(EventPayload):
    """``count`` devices were added to the product by one batch of a bulk import (services/bulk.py).

    One event per batch, not a ``device.created`` per device: a million of those would be a million
    rows for every node and consumer to read. Nothing a login reads is cached for a device that did
    not exist, so no cache has anything to forget; the event tells that the registry grew and is
    the audit trail's target.
    """

    KIND = "devices.imported"
    product_key: str
    count: int


# --- topology -------------------------------------------------------------------------------------

class SubDevice(_Stored):
    asset_id: str
    product_key: str
    device_key: str

    @classmethod
    def of(cls, device: Device) -> Self:
        return cls(asset_id=device.asset_id, product_key=device.product_key, device_key=device.device_key)


class TopologyChanged(EventPayload):
    """Sub-devices ``added`` to or ``removed`` from the gateway the event is about.

    ``origin`` is ``api`` or the asset id of the device that asked, so a gateway is told only of
    changes it did not make (absent in the oldest rows). A removal also names the gateway and the
    removed devices by key.
    """

    KIND = "topology.changed"
    added: list[str]
    removed: list[str]
    origin: str | None = None
    product_key: str | None = None
    device_key: str | None = None
    removed_devices: list[SubDevice] | None = None


class SubDevicesFound(EventPayload):
    """A gateway reported sub-devices it discovered (Alink ``thing/list/found``)."""

    KIND = "topology.found"
    sub_devices: list[SubDevice]


# --- products -------------------------------------------------------------------------------------

class ProductEvent(EventPayload):
    product_key: str


class ProductCreated(ProductEvent):
    KIND = "product.created"


class ProductUpdated(ProductEvent):
    """``living``: the Living Platform metadata changed, not the product itself."""

    KIND = "product.updated"
    living: bool = False


class ProductDeleted(ProductEvent):
    KIND = "product.deleted"


# --- Living Platform downlinks (docs/living.md) -----------------------------------------------------

class LivingDownlink(EventPayload):
    """A Living app's action that becomes a command to the device the event is about, named here
    by its organization and keys (``connect/living.py`` says the topic and body of each)."""

    org_id: str
    product_key: str
    device_key: str


class LivingBindNotify(LivingDownlink):
    """``awss.BindNotify``: a user bound (``Bind``) or unbound (``Unbind``) the device."""

    KIND = "living.bind_notify"
    iot_id: str
    identity_id: str
    owned: int
    operation: str


class JoinPermit(_Stored):
    """Which product may join a gateway (``""`` any) and for how long (0 always, 65535 closed)."""

    product_key: str
    time: int


class LivingGatewayPermit(LivingDownlink):
    KIND = "living.gateway_permit"
    permit: JoinPermit


class DeviceName(_Stored):
    """A device as the Living topics name it."""

    product_key: str
    device_name: str


class LivingTopoChange(LivingDownlink):
    """``status`` 1: the sub-devices in ``sub_list`` were deleted from the gateway."""

    KIND = "living.topo_change"
    status: int
    sub_list: list[DeviceName]


class CheckinEnrollee(DeviceName):
    timeout: int


class LivingEnrolleeCheckin(LivingDownlink):
    """The registrar may let ``enrollee`` (asset id ``enrollee_iot_id``) onto the network."""

    KIND = "living.enrollee_checkin"
    enrollee: CheckinEnrollee
    enrollee_iot_id: str


# --- device CAs ---------------------------------------------------------------------------------

class DeviceCaAdded(EventPayload):
    """An organization has a new device CA (made, rotated in or imported): TLS listeners trust it."""

    KIND = "device_ca.added"
    ca_id: str
    authority: str
    cert_pem: str


# --- applications -------------------------------------------------------------------------------

class ApplicationChanged(EventPayload):
    """An application was disabled or enabled, got other permissions or another public key, or its
    tokens were revoked: every node's cached lookups of applications and tokens are dropped."""

    KIND = "application.changed"
    app_key: str


# --- the keyring --------------------------------------------------------------------------------

class KeyringRotated(EventPayload):
    """The master key was rotated (``key_id`` is the new primary): what holds secrets read them again.

    ``wrapped``: the new key, encrypted under the previous primary key, so that other nodes take it
    without a restart (``services/keys.py``); removed from the stored row once they have.
    """

    KIND = "keyring.rotated"
    key_id: str
    wrapped: str | None = None


# --- this node's view of the cluster (published on its bus only, never stored) -------------------

class FeedLost(EventPayload):
    """This node cannot read other processes' events (the database is out of reach): whatever it
    keeps that another node could change is no longer known to be current."""

    KIND = "feed.lost"


class FeedResumed(EventPayload):
    """This node reads other processes' events again, having caught up with what it missed."""

    KIND = "feed.resumed"


#: Events after which a live device session must be closed at once.
SESSION_ENDING: Final = (DeviceReplaced, DeviceDeleted, DeviceDisabled, DeviceDetached)


@dataclass(frozen=True, slots=True)
class Event:
    """A payload in its envelope, the ``events`` row's columns: organization, device, id and time.

    ``node_id``: the node that wrote it (None: a ``thingport`` command); ``foreign``: it reached this
    node's bus from the table (:mod:`thingport.cluster.feed`), written by another process, which did
    what its own node does with it (a kick through an external broker, say) already.
    """

    payload: EventPayload
    org_id: str
    asset_id: str | None
    id: int = 0
    time: int = 0
    node_id: str | None = None
    foreign: bool = False

    @property
    def kind(self) -> str:
        return self.payload.KIND


def decode(row: EventRow) -> Event | None:
    """The stored row as an event, or None (logged) to skip it: a kind this node does not know (a
    newer or older node wrote it) or a payload it cannot read must not stop a reader of the table."""
    cls = KINDS.get(row.kind)
    if cls is None:
        log.info("skipping event %s of unknown kind %s", row.id, row.kind)
        return None
    try:
        payload = msgspec.json.decode(row.payload, type=cls)
    except msgspec.DecodeError as exc:
        log.warning("skipping event %s: unreadable %s payload: %s", row.id, row.kind, exc)
        return None
    return Event(payload, row.org_id, row.asset_id, row.id, row.create_time, row.node_id)


Subscriber = Callable[[Event], Awaitable[None]]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber, *, first: bool = False) -> Callable[[], None]:
        """``first``: before every subscriber so far (what the others' handling depends on, such as
        the keyring taking another node's new key before secrets are read again)."""
        if first:
            self._subscribers.insert(0, subscriber)
        else:
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
