"""Who is on an MQTT connection, which topics that device may use, and what its login hands it.

A device publishes and subscribes only under its own topics: those its family's grammar
(:mod:`thingport.connect.grammar`) reads as naming it, at the place the topic's root names a
device (``/sys/{pk}/{dk}/…``, ``/ext/session/{pk}/{dk}/…``, ``/ext/ntp/{pk}/{dk}/…``,
``/{pk}/{dk}/user/…``; for OceanConnect devices ``/huawei/v1/devices/{deviceId}/…``,
``$oc/devices/{deviceId}/…``, and subscribing to its bind answer ``/huawei/v1/bind/{nodeId}``).
A gateway may also use the topics of its sub-devices. Wildcards are allowed only after the names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from thingport.connect.family import TopicFamily
from thingport.connect.mqtt.broker import Action
from thingport.domain.models import Device, now_ms
from thingport.services.connectivity import ConnectivityService


def oceanconnect_bind_topic(node_id: str) -> str:
    """Where an OceanConnect device that logged in with its verify code gets its deviceId and secret.

    Named by the nodeId, the one name the device knows before its bind (docs/oceanconnect.md).
    """
    return f"/huawei/v1/bind/{node_id}"


class HandoffLink(Protocol):
    """What a handoff may use: the device's record, its session's downlink, closing that session."""

    @property
    def connectivity(self) -> ConnectivityService: ...

    def send(self, session: DeviceSession, topic: str, payload: bytes, qos: int = 0) -> None: ...

    def close_after(self, session: DeviceSession, delay_s: float, reason: str) -> None: ...


class Handoff(Protocol):
    """What a login hands the device right after CONNACK (a secret, a bind answer).

    Only a broker of ours can send it before the device's first request, so behind an external
    broker a login with a handoff is refused (:class:`thingport.connect.schemes.base.NeedsEmbeddedBroker`).
    """

    @property
    def name(self) -> str:
        """What the login is, for the log: ``dynamic activation`` …"""
        ...

    @property
    def sole_topic(self) -> str | None:
        """Set when the session exists only for the handoff: it never puts the device online, may
        subscribe to this topic alone, and is closed by the handoff. None: it goes on as the device's."""
        ...

    async def deliver(self, session: DeviceSession, link: HandoffLink) -> None: ...


async def device_now(session: DeviceSession, link: HandoffLink) -> Device | None:
    """The session's device as it is now: a handoff reads the secret it hands over after CONNACK."""
    found = await link.connectivity.login_by_id(session.asset_id)
    return found[0] if found is not None else None


@dataclass(eq=False, slots=True)
class DeviceSession:
    asset_id: str
    org_id: str
    product_key: str
    device_key: str
    family: TopicFamily
    is_gateway: bool = False
    #: What the login hands the device once connected, if anything (its scheme's choice).
    handoff: Handoff | None = None
    client_id: str = ""
    #: The login wrote the device online already (the one that activated it, in the same write).
    announced: bool = False
    #: The certificate the device logged in with (X.509 scheme): its revocation ends this session.
    cert_sn: str | None = None
    #: The session is on a credential a rotation replaced: when its grace period ends (ms), and the
    #: session with it (:class:`thingport.connect.downlinks.DownlinkRouter` sweeps).
    grace_end: int | None = None
    #: When the login was accepted (ms): a rotation's event tells a session older than itself (on
    #: the credential it replaced) from one that logged in with the new credential meanwhile.
    since: int = field(default_factory=now_ms)
    #: Sub-devices in the gateway's topology: asset id → (productKey, deviceKey).
    subs: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Sub-devices the gateway has logged in (combine/login): asset id → (productKey, deviceKey).
    online_subs: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def handoff_only(self) -> bool:
        """The session exists only to receive its handoff, not as the device going online."""
        return self.handoff is not None and self.handoff.sole_topic is not None

    def owns(self, product_key: str, device_key: str) -> bool:
        return (product_key, device_key) == (self.product_key, self.device_key)

    def speaks_for(self, product_key: str, device_key: str) -> bool:
        return self.owns(product_key, device_key) or (product_key, device_key) in self.subs.values()

    def may(self, topic: str, action: Action) -> bool:
        sole = self.handoff.sole_topic if self.handoff is not None else None
        if sole is not None:
            return action == "subscribe" and topic == sole
        named = self.family.topics.parse(topic)
        if named is None or action not in named.root.actions:
            return False
        match named.root.names:
            case "pair":
                return self.speaks_for(*named.names)
            case "device_id":
                return named.names == (self.asset_id,)
            case "node_id":
                return named.names == (self.device_key,)
