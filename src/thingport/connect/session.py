"""Who is on an MQTT connection, and which topics that device may use.

A device publishes and subscribes only under its own topics: those whose first segments after
the root name its product and key (``/sys/{pk}/{dk}/…``, ``/ext/session/{pk}/{dk}/…``,
``/ext/ntp/{pk}/{dk}/…``, ``/{pk}/{dk}/user/…``), or, for OceanConnect devices, its device id
(``/huawei/v1/devices/{deviceId}/…``, ``$oc/devices/{deviceId}/…``, and subscribing to its
bind answer ``/huawei/v1/bind/{nodeId}``). A gateway may also use the
topics of its sub-devices. Wildcards are allowed only after the part that names the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from thingport.connect.mqtt.broker import Action

Dialect = Literal["enos", "alink", "oceanconnect"]
Purpose = Literal["device", "activate", "register", "bind"]


def oceanconnect_bind_topic(node_id: str) -> str:
    """Where an OceanConnect device that logged in with its verify code gets its deviceId and secret.

    Named by the nodeId, the one name the device knows before its bind (docs/oceanconnect.md).
    """
    return f"/huawei/v1/bind/{node_id}"

#: Where the device's own (productKey, deviceKey) pair may start among a topic's segments.
_PAIR_AT = (1, 2, 3)
_WILDCARDS = {"+", "#"}


@dataclass(eq=False, slots=True)
class DeviceSession:
    asset_id: str
    org_id: str
    product_key: str
    device_key: str
    dialect: Dialect
    is_gateway: bool = False
    #: ``activate``: EnOS dynamic activation, the secret is pushed once connected; ``register``:
    #: Alink dynamic registration, the secret goes to ``/ext/register`` and the session ends;
    #: ``bind``: an OceanConnect device bound by its verify code, its deviceId and secret go to
    #: :func:`oceanconnect_bind_topic` and the session goes on as the bound device's.
    purpose: Purpose = "device"
    client_id: str = ""
    #: Sub-devices in the gateway's topology: asset id → (productKey, deviceKey).
    subs: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Sub-devices the gateway has logged in (combine/login): asset id → (productKey, deviceKey).
    online_subs: dict[str, tuple[str, str]] = field(default_factory=dict)

    def owns(self, product_key: str, device_key: str) -> bool:
        return (product_key, device_key) == (self.product_key, self.device_key)

    def speaks_for(self, product_key: str, device_key: str) -> bool:
        return self.owns(product_key, device_key) or (product_key, device_key) in self.subs.values()

    def may(self, topic: str, action: Action) -> bool:
        if self.purpose == "register":
            return action == "subscribe" and topic == "/ext/register"
        segs = topic.split("/")
        if self.dialect == "oceanconnect":
            if topic == oceanconnect_bind_topic(self.device_key):
                return action == "subscribe"
            prefixes = (["", "huawei", "v1", "devices", self.asset_id], ["$oc", "devices", self.asset_id])
            return any(segs[: len(p)] == p and len(segs) > len(p) for p in prefixes)
        if segs[0] != "":
            return False
        for i in _PAIR_AT:
            head = segs[: i + 2]
            if len(segs) <= i + 2 or any(s in _WILDCARDS for s in head):
                continue
            if self.speaks_for(segs[i], segs[i + 1]):
                return True
        return False
