"""The MQTT front door: device logins, topic rights, online state and downlinks, over any broker.

It implements the embedded broker's hooks (:class:`thingport.connect.mqtt.broker.BrokerHooks`)
and turns what happens there into service calls: a login checks the device's signature and
activates it, a connection marks it online, a lost connection offline. It subscribes to the
registry's events, so replacing, disabling or deleting a device tells the device (on the
documented topics) and closes its session at once.

One connection per device: a second login of the same device closes the first, as cloud brokers
do, and the device stays online throughout.

Behind an external broker (:mod:`thingport.connect.external`, :mod:`thingport.dialects.emqx`) the
node answering a hook or a request usually did not see the device's CONNECT: the ``*_remote``
methods and :meth:`FrontDoor.on_bridged_publish` derive the device's session from its user name or
its request topic and then take the very same paths as the embedded hooks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol, runtime_checkable

from thingport.connect import living, messages
from thingport.connect import login as logins
from thingport.connect.mqtt import codec
from thingport.connect.mqtt.broker import Action, AuthResult, ConnectInfo
from thingport.connect.requests import DeviceRequests, parse_topic
from thingport.connect.session import DeviceSession, Dialect, Purpose, oceanconnect_bind_topic
from thingport.connect.throttle import LoginThrottle
from thingport.crypto import oceanconnect
from thingport.domain.errors import DomainError, Unauthenticated
from thingport.services import events
from thingport.services.connectivity import Credential, DeviceLogin
from thingport.services.container import Services
from thingport.services.oceanconnect.registrations import DeviceCredential

log = logging.getLogger(__name__)

#: Time a registering client has to read its secret before the platform closes the session.
REGISTER_GRACE_S = 1.0
#: Disconnect reasons (EMQX) that mean a newer connection of the same client took over.
TAKEOVER_REASONS = frozenset({"takenover", "takeovered", "discarded"})


class Downlink(Protocol):
    """Where the front door sends messages and which sessions it can close (a broker)."""

    def send_to(self, client_id: str, topic: str, payload: bytes, qos: int = 0) -> bool: ...

    async def disconnect_client(self, client_id: str, reason: str = "", *,
                                discard_session: bool = False) -> bool: ...


@runtime_checkable
class TopicRoutedDownlink(Downlink, Protocol):
    """A broker this node is only a client of: messages are routed by topic, sessions closed by user name.

    The device may be connected through any node, so notifications go to its topics even when no
    session of this node knows it, and a session to close is found by the device's user name.
    """

    async def disconnect_user(self, username: str, reason: str = "") -> bool: ...


class FrontDoor:
    def __init__(self, services: Services, throttle: LoginThrottle | None = None) -> None:
        self.services = services
        self.throttle = throttle or LoginThrottle(services.core.settings.mqtt_login_failures,
                                                  services.core.settings.mqtt_login_failure_window_s)
        self.requests = DeviceRequests()
        living.register(self.requests)
        self.downlink: Downlink | None = None
        #: asset id → the session of its one live connection.
        self._live: dict[str, DeviceSession] = {}
        #: sub-device asset id → the gateway session it is logged in through.
        self._via: dict[str, DeviceSession] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Sessions derived for clients whose CONNECT another node (or the broker) saw:
        #: user name → (expiry on the monotonic clock, session or None for "no such device").
        self._derived: dict[str, tuple[float, DeviceSession | None]] = {}
        self._unsubscribe = services.core.bus.subscribe(self._on_event)

    def attach(self, downlink: Downlink) -> None:
        self.downlink = downlink

    def close(self) -> None:
        self._unsubscribe()

    # --- broker hooks ---------------------------------------------------------------------------
    async def authenticate(self, conn: ConnectInfo, *, remote: bool = False) -> AuthResult:
        """Check a CONNECT; ``remote``: an external broker asks (no downlink can follow the CONNACK)."""
        key = (conn.peer[0] if conn.peer else "", conn.username or "")
        if self.throttle.blocked(key):
            log.info("MQTT login of %r from %s throttled after repeated failures", conn.username, key[0])
            return AuthResult.refuse(codec.REFUSED_NOT_AUTHORIZED)
        try:
            request = logins.parse(conn)
        except logins.UnreadableLogin as exc:
            self.throttle.failed(key)
            log.info("MQTT login refused for client %r: %s", conn.client_id, exc)
            return AuthResult.refuse(codec.REFUSED_IDENTIFIER_REJECTED)
        try:
            session = await self._login(request, remote)
        except DomainError as err:
            self.throttle.failed(key)
            log.info("MQTT login refused for %r: %s", conn.username, err.message)
            return AuthResult.refuse(codec.REFUSED_BAD_USERNAME_PASSWORD)
        self.throttle.succeeded(key)
        if session.is_gateway:
            await self.refresh_subs(session)
        return AuthResult.accept(session)

    async def authorize(self, principal: object, topic: str, action: Action) -> bool:
        return isinstance(principal, DeviceSession) and principal.may(topic, action)

    async def on_publish(self, principal: object, client_id: str, topic: str, payload: bytes, qos: int) -> bool:
        if not isinstance(principal, DeviceSession):
            return False
        return await self.requests.handle(self, principal, topic, payload, qos)

    async def on_connected(self, principal: object, client_id: str) -> None:
        if not isinstance(principal, DeviceSession):
            return
        session = principal
        session.client_id = client_id
        if session.purpose == "register":
            registered = await self.services.connectivity.login_by_id(session.asset_id)
            if registered is not None:
                self.send(session, "/ext/register", messages.encode({"productKey": session.product_key,
                                                          "deviceName": session.device_key,
                                                          "deviceSecret": registered[0].secret}), 1)
            self._spawn(self._close_later(client_id, "dynamic registration done"))
            return
        older = self._live.get(session.asset_id)
        self._live[session.asset_id] = session
        if older is not None and older is not session and older.client_id != client_id and self.downlink is not None:
            await self.downlink.disconnect_client(older.client_id, "a newer connection of the same device")
        if session.purpose == "bind":
            await self._send_bind_result(session)
        if session.purpose == "activate":
            found = await self.services.connectivity.login_by_id(session.asset_id)
            if found is not None:
                device = found[0]
                self.send(session, f"/ext/session/{device.product_key}/{device.device_key}/thing/activate/info",
                          messages.command("thing.activate.info", {
                              "assetId": device.asset_id, "productKey": device.product_key,
                              "deviceKey": device.device_key, "deviceSecret": device.secret}), 1)
        await self.services.devices.mark_connected(session.asset_id)

    async def on_disconnected(self, principal: object, client_id: str, reason: str) -> None:
        if not isinstance(principal, DeviceSession) or principal.purpose == "register":
            return
        session = principal
        for asset_id in list(session.online_subs):
            await self._drop_sub(session, asset_id)
        if self._live.get(session.asset_id) is session:
            del self._live[session.asset_id]
            await self.services.devices.mark_disconnected(session.asset_id)

    # --- external broker: nodes that did not see the CONNECT --------------------------------------
    async def authenticate_remote(self, conn: ConnectInfo) -> AuthResult:
        """A login the external broker asks about: the embedded check, minus the secret pushes.

        Dynamic activation and registration hand the device its secret on a downlink right after
        CONNACK, which only works when the broker is ours; behind an external broker they are refused.
        """
        result = await self.authenticate(conn, remote=True)
        session = result.principal
        if isinstance(session, DeviceSession):
            if session.purpose != "device":
                log.info("MQTT login of %r refused: dynamic %s needs the embedded broker", conn.username,
                         "registration" if session.purpose == "register" else "activation")
                return AuthResult.refuse(codec.REFUSED_NOT_AUTHORIZED)
            self._derived[conn.username or ""] = (self._expiry(), session)
        return result

    async def session_for(self, username: str) -> DeviceSession | None:
        """The device a broker client's user name names (``dk&pk``, an OceanConnect deviceId or nodeId).

        Only the rights are derived, not the login: the broker asked the authentication hook first.
        Cached for ``auth_cache_ttl_s``; changes made through this node drop the cache at once.
        """
        hit = self._derived.get(username)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        device_key, amp, product_key = username.partition("&")
        if amp:
            session = await self._derive(product_key, device_key, None)
        else:
            session = await self._derive_by_id(username)
        self._derived[username] = (self._expiry(), session)
        return session

    async def authorize_remote(self, username: str, topic: str, action: Action) -> bool:
        session = await self.session_for(username)
        return session is not None and await self.authorize(session, topic, action)

    async def connected_remote(self, client_id: str, username: str) -> bool:
        """The broker reports a device connected: online, as :meth:`on_connected` does."""
        found = await self.session_for(username)
        if found is None:
            return False
        session = DeviceSession(found.asset_id, found.org_id, found.product_key, found.device_key, found.dialect,
                                is_gateway=found.is_gateway, subs=dict(found.subs))
        await self.on_connected(session, client_id)
        return True

    async def disconnected_remote(self, client_id: str, username: str, reason: str) -> bool:
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
        live = self._live.get(found.asset_id)
        if live is not None and live.client_id != client_id:
            return True  # a newer connection of the device is live here: the old one's end changes nothing
        if live is not None:
            await self.on_disconnected(live, client_id, reason)
        else:
            await self.services.devices.mark_disconnected(found.asset_id)
        if found.is_gateway:
            for sub in await self.services.connectivity.sub_devices(found.asset_id):
                if sub.online and sub.asset_id not in self._via:
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
        session = await self._bridged(target.product_key, target.device_key, payload)
        if session is None:
            log.info("bridged request on %s: no enabled device %s/%s", topic, target.product_key, target.device_key)
            return False
        return await self.requests.handle(self, session, topic, payload, qos)

    async def _bridged(self, product_key: str, device_key: str, payload: bytes) -> DeviceSession | None:
        """The session answering a device's bridged requests: its live one on this node, else one per
        device kept for ``auth_cache_ttl_s`` (so a gateway's sub-device logins are remembered)."""
        key = f"bridge:{device_key}&{product_key}"
        hit = self._derived.get(key)
        if hit is None or hit[1] is None or hit[0] <= time.monotonic():
            derived = await self._derive(product_key, device_key, payload)
            if derived is None:
                self._derived.pop(key, None)
                return None
            derived.client_id = f"{device_key}&{product_key}"
            if hit is not None and hit[1] is not None:
                derived.online_subs = hit[1].online_subs
            self._derived[key] = hit = (self._expiry(), derived)
        assert hit[1] is not None
        return self._live.get(hit[1].asset_id, hit[1])

    async def _derive(self, product_key: str, device_key: str, payload: bytes | None) -> DeviceSession | None:
        found = await self.services.connectivity.device_by_key(product_key, device_key)
        if found is None or not found[0].enabled:
            return None
        device, product = found
        dialect: Dialect = "alink" if payload is not None and b'"deviceName"' in payload else "enos"
        known = self._derived.get(f"{device_key}&{product_key}")
        if known is not None and known[1] is not None:
            dialect = known[1].dialect  # learnt from its signature at login on this node
        session = DeviceSession(device.asset_id, device.org_id, product_key, device_key, dialect,
                                is_gateway=product.is_gateway)
        if session.is_gateway:
            await self.refresh_subs(session)
        return session

    async def _derive_by_id(self, identifier: str) -> DeviceSession | None:
        """An OceanConnect user name: the deviceId, or the nodeId of a bound device (authType 2)."""
        oc = self.services.oceanconnect.registrations
        cred = (await oc.login_credential(identifier, oceanconnect.BY_DEVICE_ID)
                or await oc.login_credential(identifier, oceanconnect.BY_NODE_ID))
        if cred is None or cred.binding:
            return None
        return _oceanconnect_session(cred, "device")

    def _expiry(self) -> float:
        return time.monotonic() + self.services.core.settings.auth_cache_ttl_s

    # --- logins ---------------------------------------------------------------------------------
    async def _login(self, request: logins.SignedLogin | logins.OceanConnectLogin, remote: bool) -> DeviceSession:
        conn = self.services.connectivity
        if isinstance(request, logins.OceanConnectLogin):
            return await self._oceanconnect_login(request, remote)
        if request.auth_type == "register":
            reg = await conn.register(request.product_key, request.device_key, request.options.get("random", ""),
                                      request.sign_method, request.password)
            return DeviceSession(reg.device.asset_id, reg.device.org_id, reg.device.product_key,
                                 reg.device.device_key, "alink", purpose="register")
        if request.auth_type:
            raise Unauthenticated(f"authType: {request.auth_type} is not supported", field="authType")
        cred = Credential(request.product_key, request.device_key, request.signed_fields(), request.sign_method,
                          request.password, request.secure_mode or "2")
        login = await conn.login(cred, dynamic=True)
        return _session(login)

    async def _oceanconnect_login(self, request: logins.OceanConnectLogin, remote: bool) -> DeviceSession:
        """deviceId or nodeId with the device secret, or nodeId with the verify code of a pending bind.

        A bind is completed here, before CONNACK, so that two devices racing with one verify code
        cannot both be accepted; :meth:`on_connected` then hands the device its deviceId and secret.
        """
        if request.check_time and not oceanconnect.timestamp_is_current(request.timestamp):
            raise Unauthenticated("timestamp: not the current hour (UTC)", field="timestamp")
        oc = self.services.oceanconnect.registrations
        cred = await oc.login_credential(request.identifier, request.auth_type)
        if cred is None or not oceanconnect.verify_mqtt_password(cred.secret, request.timestamp, request.password):
            raise Unauthenticated("password: does not match", field="password")
        purpose: Purpose = "device"
        if cred.binding:
            if remote:  # the verify code must not be used up by a login that cannot get its answer
                raise Unauthenticated("verifyCode: binding needs the embedded broker", field="verifyCode")
            await oc.complete_bind(cred.asset_id)
            purpose = "bind"
        elif cred.first_login:
            await oc.confirm_first_login(cred.asset_id)
        return _oceanconnect_session(cred, purpose)

    # --- gateways -------------------------------------------------------------------------------
    async def refresh_subs(self, session: DeviceSession) -> None:
        """Reload a gateway's topology, which its topic rights follow."""
        subs = await self.services.connectivity.sub_devices(session.asset_id)
        session.subs = {d.asset_id: (d.product_key, d.device_key) for d in subs}
        for asset_id in list(session.online_subs):
            if asset_id not in session.subs:
                await self._drop_sub(session, asset_id)

    async def sub_login(self, gateway: DeviceSession, cred: Credential) -> DeviceLogin:
        login = await self.services.connectivity.sub_login(gateway.asset_id, cred)
        d = login.device
        gateway.online_subs[d.asset_id] = (d.product_key, d.device_key)
        gateway.subs[d.asset_id] = (d.product_key, d.device_key)
        other = self._via.get(d.asset_id)
        if other is not None and other is not gateway:
            other.online_subs.pop(d.asset_id, None)
        self._via[d.asset_id] = gateway
        return login

    async def sub_logout(self, gateway: DeviceSession, product_key: str, device_key: str) -> None:
        for asset_id, ref in list(gateway.online_subs.items()):
            if ref == (product_key, device_key):
                await self._drop_sub(gateway, asset_id)
                return
        # Logged in through another node (external broker): no session here knows it, the topology does.
        for asset_id, ref in gateway.subs.items():
            if ref == (product_key, device_key) and asset_id not in self._via:
                await self.services.devices.mark_disconnected(asset_id)
                return

    async def _drop_sub(self, gateway: DeviceSession, asset_id: str) -> None:
        gateway.online_subs.pop(asset_id, None)
        if self._via.get(asset_id) is gateway:
            del self._via[asset_id]
            await self.services.devices.mark_disconnected(asset_id)

    # --- downlinks --------------------------------------------------------------------------------
    def send(self, session: DeviceSession, topic: str, payload: bytes, qos: int = 0) -> None:
        if self.downlink is not None and session.client_id:
            self.downlink.send_to(session.client_id, topic, payload, min(qos, 1))

    def downlink_session(self, asset_id: str) -> DeviceSession | None:
        """The session a device's downlinks take on this node: its own, or the gateway it logged in through."""
        return self._live.get(asset_id) or self._via.get(asset_id)

    def send_by_topic(self, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Behind an external broker, publish to a device's topic: the broker finds the node holding it.

        Our own broker has no route to a device without a session here: nothing is sent (False).
        """
        return isinstance(self.downlink, TopicRoutedDownlink) and self.downlink.send_to("", topic, payload,
                                                                                        min(qos, 1))

    async def _on_event(self, ev: events.Event) -> None:
        if ev.asset_id is None:
            return
        if ev.kind in events.SESSION_ENDING or ev.kind in (events.DEVICE_ENABLED, events.TOPOLOGY_CHANGED):
            # rights changed: derive again (other nodes: after the cache time); bridged gateway
            # sessions stay, they hold the sub-device logins and re-read their topology on expiry
            # (except the device's own, once it is replaced, disabled or deleted)
            ending = ev.asset_id if ev.kind in events.SESSION_ENDING else None
            self._derived = {k: v for k, v in self._derived.items()
                             if k.startswith("bridge:") and (v[1] is None or v[1].asset_id != ending)}
        if ev.kind in events.SESSION_ENDING:
            await self._end_sessions(ev)
        elif ev.kind == events.DEVICE_ENABLED:
            await self._notify_via_gateway(ev.asset_id, "enable", ev.payload)
        elif ev.kind == events.TOPOLOGY_CHANGED:
            await self._topology_changed(ev)
        elif ev.kind in living.DOWNLINKS:
            await living.deliver(self, ev)

    async def _end_sessions(self, ev: events.Event) -> None:
        assert ev.asset_id is not None
        action = {events.DEVICE_DISABLED: "disable", events.DEVICE_DELETED: "delete"}.get(ev.kind)
        session = self._live.get(ev.asset_id)
        if session is not None:
            if action is not None and session.dialect != "oceanconnect":
                self.send(session, f"/sys/{session.product_key}/{session.device_key}/thing/{action}",
                          messages.command(f"thing.{action}", {}), 1)
            if self.downlink is not None:
                await self.downlink.disconnect_client(session.client_id, f"device {ev.kind}")
        elif isinstance(self.downlink, TopicRoutedDownlink):
            pk, dk = ev.payload.get("productKey"), ev.payload.get("deviceKey")
            if pk and dk:
                if action is not None:
                    self.downlink.send_to("", f"/sys/{pk}/{dk}/thing/{action}", messages.command(f"thing.{action}", {}),
                                          1)
                await self.downlink.disconnect_user(f"{dk}&{pk}", f"device {ev.kind}")
            await self.downlink.disconnect_user(ev.asset_id, f"device {ev.kind}")  # OceanConnect user name
        gateway = self._via.get(ev.asset_id)
        if gateway is not None:
            if action is not None:
                await self._notify_via_gateway(ev.asset_id, action, ev.payload)
            await self._drop_sub(gateway, ev.asset_id)
        elif action == "disable" and isinstance(self.downlink, TopicRoutedDownlink):
            await self._notify_via_gateway(ev.asset_id, action, ev.payload)

    async def _notify_via_gateway(self, asset_id: str, action: str, payload: dict[str, Any]) -> None:
        """Tell a sub-device's live gateway: EnOS ``combine/{action}``, Alink the sub's ``thing/{action}``.

        Behind an external broker the gateway may be connected through another node: it is found in
        the topology, and unless this node learnt its family both families' topics are used (the
        gateway listens on one of them, nobody on the other).
        """
        gateway = next((s for s in self._live.values() if asset_id in s.subs), None)
        families: set[Dialect] = {gateway.dialect} if gateway is not None else set()
        if gateway is None and isinstance(self.downlink, TopicRoutedDownlink):
            gateway, families = await self._gateway_of(asset_id)
        if gateway is None or asset_id not in gateway.subs:
            return
        pk, dk = gateway.subs[asset_id]
        if "alink" in families:
            self.send(gateway, f"/sys/{pk}/{dk}/thing/{action}", messages.command(f"thing.{action}", {}), 1)
        if "enos" in families:
            self.send(gateway, f"/ext/session/{gateway.product_key}/{gateway.device_key}/combine/{action}",
                      messages.command(f"combine.{action}", {"productKey": pk, "deviceKey": dk}), 1)

    async def _gateway_of(self, sub_asset_id: str) -> tuple[DeviceSession | None, set[Dialect]]:
        """A sub-device's gateway from the topology, and the families it may speak."""
        found = await self.services.connectivity.login_by_id(sub_asset_id)
        if found is None or found[0].gateway_asset_id is None:
            return None, set()
        gw = await self.services.connectivity.login_by_id(found[0].gateway_asset_id)
        if gw is None:
            return None, set()
        device, product = gw
        username = f"{device.device_key}&{device.product_key}"
        known = self._derived.get(username)
        families: set[Dialect] = {known[1].dialect} if known is not None and known[1] is not None else {"enos", "alink"}
        session = DeviceSession(device.asset_id, device.org_id, device.product_key, device.device_key,
                                min(families), is_gateway=product.is_gateway, client_id=username)
        await self.refresh_subs(session)
        return session, families

    async def _topology_changed(self, ev: events.Event) -> None:
        assert ev.asset_id is not None
        session = self._live.get(ev.asset_id)
        if session is None:
            return
        before = dict(session.subs)
        await self.refresh_subs(session)
        if session.dialect != "alink" or ev.payload.get("origin") == session.asset_id:
            return
        for status, ids, known in ((0, ev.payload.get("added", []), session.subs),
                                   (1, ev.payload.get("removed", []), before)):
            subs = [{"productKey": known[i][0], "deviceName": known[i][1]} for i in ids if i in known]
            if subs:
                self.send(session, f"/sys/{session.product_key}/{session.device_key}/thing/topo/change",
                          messages.command("thing.topo.change", {"status": status, "subList": subs}), 1)

    async def _send_bind_result(self, session: DeviceSession) -> None:
        """The bind answer, named after AgentLite's bind result (reference/oceanconnect.md §7.2)."""
        found = await self.services.connectivity.login_by_id(session.asset_id)
        if found is not None:
            device = found[0]
            self.send(session, oceanconnect_bind_topic(device.device_key), messages.encode({
                "result": 0, "deviceId": device.asset_id, "nodeId": device.device_key,
                "deviceSecret": device.secret}), 1)

    # --- helpers ----------------------------------------------------------------------------------
    async def _close_later(self, client_id: str, reason: str) -> None:
        await asyncio.sleep(REGISTER_GRACE_S)
        if self.downlink is not None:
            await self.downlink.disconnect_client(client_id, reason, discard_session=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _session(login: DeviceLogin) -> DeviceSession:
    d = login.device
    return DeviceSession(d.asset_id, d.org_id, d.product_key, d.device_key, login.family,
                         is_gateway=login.product.is_gateway, purpose="activate" if login.activating else "device")


def _oceanconnect_session(cred: DeviceCredential, purpose: Purpose) -> DeviceSession:
    return DeviceSession(cred.asset_id, cred.org_id, cred.product_key, cred.device_key, "oceanconnect",
                         is_gateway=cred.is_gateway, purpose=purpose)
