"""Sessions for an external broker's clients, whose CONNECT another node (or the broker) saw.

Behind an external broker (:mod:`thingport.connect.external`, :mod:`thingport.dialects.emqx`) the
node answering a hook or a request usually did not see the device's CONNECT. These methods derive
the device's session from its user name (through the login schemes) or its request topic, and then
take the very same paths as the embedded broker's hooks on the front door. Derived sessions are
cached for ``auth_cache_ttl_s``; changes made through this node drop the cache at once.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from thingport.connect import family
from thingport.connect.mqtt.broker import Action, AuthResult, ConnectInfo
from thingport.connect.requests import parse_topic
from thingport.connect.schemes.chain import LoginChain
from thingport.connect.session import DeviceSession
from thingport.services import events
from thingport.services.container import Services

log = logging.getLogger(__name__)

#: Disconnect reasons (EMQX) that mean a newer connection of the same client took over.
TAKEOVER_REASONS = frozenset({"takenover", "takeovered", "discarded"})


class Host(Protocol):
    """What remote sessions need of the front door: its hooks, and its sessions and gateways."""

    async def authenticate(self, conn: ConnectInfo, *, remote: bool = False) -> AuthResult: ...

    async def on_publish(self, principal: object, client_id: str, topic: str, payload: bytes, qos: int) -> bool: ...

    async def on_connected(self, principal: object, client_id: str) -> None: ...

    async def on_disconnected(self, principal: object, client_id: str, reason: str) -> None: ...

    def live(self, asset_id: str) -> DeviceSession | None: ...

    def via(self, asset_id: str) -> DeviceSession | None: ...

    async def refresh_subs(self, session: DeviceSession) -> None: ...


class RemoteSessions:
    def __init__(self, door: Host, logins: LoginChain, services: Services) -> None:
        self.door = door
        self.logins = logins
        self.services = services
        #: broker user name → (expiry on the monotonic clock, session or None for "no such device").
        self._by_user: dict[str, tuple[float, DeviceSession | None]] = {}
        #: broker user name → the family of the signature that matched when this node checked the
        #: device's login (:func:`family.of_remote_device`). Only a login check proves a family; kept
        #: apart from the rights, as a change to a device's rights does not change how it speaks.
        self._families: dict[str, family.TopicFamily] = {}
        #: ``dk&pk`` → (expiry, the session answering that device's bridged requests).
        self._bridged: dict[str, tuple[float, DeviceSession]] = {}
        self._unsubscribe = services.core.bus.subscribe(self._forget)

    def close(self) -> None:
        self._unsubscribe()

    async def authenticate(self, conn: ConnectInfo) -> AuthResult:
        """A login the external broker asks about: the embedded check, minus the handoffs.

        A login that hands the device something right after CONNACK (a secret, a bind answer) only
        works when the broker is ours; behind an external broker it is refused.
        """
        result = await self.door.authenticate(conn, remote=True)
        if isinstance(result.principal, DeviceSession):
            self._by_user[conn.username or ""] = (self._expiry(), result.principal)
            self._families[conn.username or ""] = result.principal.family
        return result

    async def session_for(self, username: str) -> DeviceSession | None:
        """The device a broker client's user name names (``dk&pk``, an OceanConnect deviceId or nodeId).

        Only the rights are derived, not the login: the broker asked the authentication hook first.
        """
        hit = self._by_user.get(username)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        session = await self.logins.session_for(username, self._by_key)
        self._by_user[username] = (self._expiry(), session)
        return session

    async def authorize(self, username: str, topic: str, action: Action) -> bool:
        session = await self.session_for(username)
        return session is not None and session.may(topic, action)

    async def connected(self, client_id: str, username: str) -> bool:
        """The broker reports a device connected: online, as the front door's ``on_connected`` does."""
        found = await self.session_for(username)
        if found is None:
            return False
        session = DeviceSession(found.asset_id, found.org_id, found.product_key, found.device_key, found.family,
                                is_gateway=found.is_gateway, subs=dict(found.subs))
        await self.door.on_connected(session, client_id)
        return True

    async def disconnected(self, client_id: str, username: str, reason: str) -> bool:
        """The broker reports a device gone: offline, with the sub-devices it had logged in.

        A takeover (the same client connected again) leaves the device online. The node that saw the
        connect may not be this one, so the device and its online sub-devices are marked offline from
        the database's view, not only from this node's sessions.
        """
        if reason in TAKEOVER_REASONS:
            return True
        found = await self.session_for(username)
        if found is None:
            return False
        live = self.door.live(found.asset_id)
        if live is not None and live.client_id != client_id:
            return True  # a newer connection of the device is live here: the old one's end changes nothing
        if live is not None:
            await self.door.on_disconnected(live, client_id, reason)
        else:
            await self.services.devices.mark_disconnected(found.asset_id)
        if found.is_gateway:
            for sub in await self.services.connectivity.sub_devices(found.asset_id):
                if sub.online and self.door.via(sub.asset_id) is None:
                    await self.services.devices.mark_disconnected(sub.asset_id)
        return True

    async def on_bridged_publish(self, topic: str, payload: bytes, qos: int = 1) -> bool:
        """A device request the privileged client received: answered as if the gateway were connected here.

        The session is the one of the device the topic names (the broker checked with the ACL hook
        that the publisher may use that topic); a live session of this node is reused when present.
        """
        target = parse_topic(topic)
        if target is None:
            return False
        session = await self._bridged_session(target.product_key, target.device_key, payload)
        if session is None:
            log.info("bridged request on %s: no enabled device %s/%s", topic, target.product_key, target.device_key)
            return False
        return await self.door.on_publish(session, session.client_id, topic, payload, qos)

    async def _bridged_session(self, product_key: str, device_key: str, payload: bytes) -> DeviceSession | None:
        """The session answering a device's bridged requests: its live one on this node, else one per
        device kept for ``auth_cache_ttl_s`` (so a gateway's sub-device logins are remembered). Either
        speaks the family :func:`family.of_remote_device` gives, unless this node checked the login."""
        key = f"{device_key}&{product_key}"
        hit = self._bridged.get(key)
        if hit is None or hit[0] <= time.monotonic():
            derived = await self._derive(product_key, device_key, payload)
            if derived is None:
                self._bridged.pop(key, None)
                return None
            derived.client_id = key
            if hit is not None:
                derived.online_subs = hit[1].online_subs
            self._bridged[key] = hit = (self._expiry(), derived)
        live = self.door.live(hit[1].asset_id)
        if live is None:
            return hit[1]
        if key not in self._families:
            # the live session came from a connect event, which proves no family: the rule's answer here
            live.family = hit[1].family
        return live

    async def _by_key(self, product_key: str, device_key: str) -> DeviceSession | None:
        return await self._derive(product_key, device_key, None)

    async def _derive(self, product_key: str, device_key: str, payload: bytes | None) -> DeviceSession | None:
        """The enabled device of this product and key, in the family :func:`family.of_remote_device` gives."""
        found = await self.services.connectivity.device_by_key(product_key, device_key)
        if found is None or not found[0].enabled:
            return None
        device, product = found
        on_record = self._families.get(f"{device_key}&{product_key}")
        session = DeviceSession(device.asset_id, device.org_id, product_key, device_key,
                                family.of_remote_device(on_record, payload), is_gateway=product.is_gateway)
        if session.is_gateway:
            await self.door.refresh_subs(session)
        return session

    async def _forget(self, ev: events.Event) -> None:
        """Rights changed: derive again what the change concerns (other nodes: after the cache time).

        That is the device's own entries (by its ``dk&pk`` or OceanConnect user name, or by a session
        of it) and those of gateways whose topology holds it; every other device's stay, with the
        family on record. A device whose session ends (replaced, disabled, deleted, detached) loses
        its family record and its bridged session too; other bridged gateway sessions stay, they hold
        the sub-device logins and re-read their topology on expiry.
        """
        p = ev.payload
        asset_id = ev.asset_id
        ends = isinstance(p, events.SESSION_ENDING)
        if asset_id is None or not (ends or isinstance(p, (events.DeviceEnabled, events.TopologyChanged))):
            return
        names = {asset_id}
        if isinstance(p, events.DeviceEvent):
            names.add(f"{p.device_key}&{p.product_key}")
        for user, (_, session) in list(self._by_user.items()):
            if user in names or (session is not None and (session.asset_id == asset_id or asset_id in session.subs)):
                del self._by_user[user]
        if ends:
            for user in names:
                self._families.pop(user, None)
            self._bridged = {k: v for k, v in self._bridged.items() if v[1].asset_id != asset_id}

    def _expiry(self) -> float:
        return time.monotonic() + self.services.core.settings.auth_cache_ttl_s
