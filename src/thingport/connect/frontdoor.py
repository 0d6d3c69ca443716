"""The MQTT front door: device logins and the life of their sessions, over any broker.

It implements the embedded broker's hooks (:class:`thingport.connect.mqtt.broker.BrokerHooks`, and
the quick ones of :class:`~thingport.connect.mqtt.broker.QuickHooks`: topic rights and the topics it
does not handle are answered without a task). A CONNECT goes through the login schemes
(:mod:`thingport.connect.schemes`), whose session says what follows the CONNACK (its handoff); a
connection marks the device online, a lost connection offline (written in batches,
:mod:`thingport.services.presence`); a device's requests go to :mod:`thingport.connect.requests`,
which sees the door only as a :class:`~thingport.connect.requests.DeviceContext`.

One connection per device: a second login of the same device closes the first, as cloud brokers
do, and the device stays online throughout. Sub-devices log in through their gateway's session.

Two parts hang off it: :mod:`thingport.connect.downlinks` turns the registry's events into what
devices are told and sessions closed, and :mod:`thingport.connect.remote` derives sessions for the
clients of an external broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from thingport.connect import living
from thingport.connect.downlinks import Downlink, DownlinkRouter
from thingport.connect.mqtt.broker import Action, AuthResult, ConnectInfo
from thingport.connect.remote import RemoteSessions
from thingport.connect.requests import DeviceRequests
from thingport.connect.schemes import SCHEMES
from thingport.connect.schemes.base import LoginRefused, LoginScheme, connack
from thingport.connect.schemes.chain import LoginChain
from thingport.connect.session import DeviceSession
from thingport.connect.throttle import LoginThrottle
from thingport.services.connectivity import ConnectivityService, Credential, DeviceLogin
from thingport.services.container import Services
from thingport.services.provisioning import ProvisioningService

log = logging.getLogger(__name__)
#: One line per MQTT connect and disconnect (docs/operations.md, "Logs").
access = logging.getLogger("thingport.access")


class FrontDoor:
    def __init__(self, services: Services, throttle: LoginThrottle | None = None, *,
                 schemes: Sequence[LoginScheme[Any]] = SCHEMES) -> None:
        self.services = services
        self.throttle = throttle or LoginThrottle.of(services.core)
        self.logins = LoginChain(schemes, services, self.throttle)
        self.requests = DeviceRequests()
        living.register(self.requests)
        self.downlink: Downlink | None = None
        #: asset id → the session of its one live connection.
        self._live: dict[str, DeviceSession] = {}
        #: sub-device asset id → the gateway session it is logged in through.
        self._via: dict[str, DeviceSession] = {}
        #: asset id → accepted logins that wrote the device online with its activation, not yet
        #: connected or abandoned: if the device is set offline meanwhile, they must set it online again.
        self._announcing: dict[str, list[DeviceSession]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: What ``/metrics`` shows of the logins: (``accepted``, family) and (``refused``, reason).
        self.counts: Counter[tuple[str, str]] = Counter()
        # Both follow the registry's events, the remote cache first: its rights are stale by then.
        self.remote = RemoteSessions(self, self.logins, services)
        self.downlinks = DownlinkRouter(self, services.core.bus)

    def attach(self, downlink: Downlink) -> None:
        self.downlink = downlink

    def close(self) -> None:
        self.remote.close()
        self.downlinks.close()

    @property
    def connectivity(self) -> ConnectivityService:
        return self.services.connectivity

    @property
    def provisioning(self) -> ProvisioningService:
        return self.services.provisioning

    # --- broker hooks ---------------------------------------------------------------------------
    async def authenticate(self, conn: ConnectInfo, *, remote: bool = False) -> AuthResult:
        """Check a CONNECT; ``remote``: an external broker asks (no downlink can follow the CONNACK)."""
        try:
            session = await self.logins.authenticate(conn, remote=remote)
        except LoginRefused as refused:
            return self._refused(conn, refused)
        self._accepted(conn, session)
        if session.is_gateway:
            await self.refresh_subs(session)
        if session.announced:
            self._announcing.setdefault(session.asset_id, []).append(session)
        return AuthResult.accept(session)

    def authenticate_now(self, conn: ConnectInfo) -> AuthResult | None:
        """What :meth:`authenticate` says, when a login needs no read or write (an active device in
        memory, not a gateway, whose topology is read); None otherwise."""
        try:
            session = self.logins.authenticate_now(conn)
        except LoginRefused as refused:
            return self._refused(conn, refused)
        if session is None or session.is_gateway:
            return None
        self._accepted(conn, session)
        return AuthResult.accept(session)

    def _refused(self, conn: ConnectInfo, refused: LoginRefused) -> AuthResult:
        reason = refused.reason
        self.counts[("refused", reason)] += 1
        self.services.activity.refused(reason)
        log.info("%s", refused.log_line(conn))
        if access.isEnabledFor(logging.INFO):
            access.info("mqtt connect refused", extra={"fields": {
                "connection": conn.client_id, "channel": "mqtt", "user": conn.username or "",
                "address": conn.peer[0] if conn.peer else "", "status": connack(refused), "reason": reason}})
        return AuthResult.refuse(connack(refused))

    def _accepted(self, conn: ConnectInfo, session: DeviceSession) -> None:
        self.counts[("accepted", session.family.name)] += 1
        if session.grace_end is not None:
            self.downlinks.watch(session)
        self.services.activity.accepted()
        if access.isEnabledFor(logging.INFO):
            access.info("mqtt connect", extra={"fields": {
                "connection": conn.client_id, "channel": "mqtt", "caller": f"device:{session.asset_id}",
                "family": session.family.name, "address": conn.peer[0] if conn.peer else "", "status": 0}})

    def authorize_now(self, principal: object, topic: str, action: Action) -> bool:
        return isinstance(principal, DeviceSession) and principal.may(topic, action)

    async def authorize(self, principal: object, topic: str, action: Action) -> bool:
        return self.authorize_now(principal, topic, action)

    def on_publish_now(self, principal: object, client_id: str, topic: str, payload: bytes, qos: int) -> bool | None:
        """What :meth:`on_publish` says when no request handler has to run (None when one has)."""
        return isinstance(principal, DeviceSession) and self.requests.takes(topic)

    async def on_publish(self, principal: object, client_id: str, topic: str, payload: bytes, qos: int) -> bool:
        if not isinstance(principal, DeviceSession):
            return False
        return await self.requests.handle(self, principal, topic, payload, qos)

    def on_connected_now(self, principal: object, client_id: str) -> bool:
        """:meth:`on_connected` when it has nothing to wait for (no handoff, no older connection of the
        device to close); False, having done nothing, when it has."""
        if not isinstance(principal, DeviceSession):
            return True
        older = self._live.get(principal.asset_id)
        if principal.handoff is not None or (older is not None and older is not principal
                                             and older.client_id != client_id):
            return False
        self._arrived(principal, client_id)
        return True

    async def on_connected(self, principal: object, client_id: str) -> None:
        if not isinstance(principal, DeviceSession):
            return
        session = principal
        if session.handoff is not None and session.handoff_only:
            session.client_id = client_id
            self._settled(session)
            await session.handoff.deliver(session, self)
            return
        older = self._live.get(session.asset_id)
        self._arrived(session, client_id)
        if older is not None and older is not session and older.client_id != client_id and self.downlink is not None:
            await self.downlink.disconnect_client(older.client_id, "a newer connection of the same device")
        if session.handoff is not None:
            await session.handoff.deliver(session, self)

    def _arrived(self, session: DeviceSession, client_id: str) -> None:
        """The session is the device's live one, and the device online (unless its login wrote that)."""
        session.client_id = client_id
        self._settled(session)
        self._live[session.asset_id] = session
        if not session.announced:  # a first login wrote it online with its activation
            self.connectivity.connected(session.asset_id)

    async def on_abandoned(self, principal: object, client_id: str) -> None:
        """A login accepted but never answered (the client left first): undo its going online."""
        if not isinstance(principal, DeviceSession):
            return
        self._settled(principal)
        if principal.announced and self._live.get(principal.asset_id) is None:
            self._offline(principal.asset_id)

    def _settled(self, session: DeviceSession) -> None:
        pending = self._announcing.get(session.asset_id)
        if pending is not None and session in pending:
            pending.remove(session)
            if not pending:
                del self._announcing[session.asset_id]

    def _offline(self, asset_id: str) -> None:
        """Set the device offline; a login of it that wrote it online and is still on its way to its
        CONNACK (a takeover of the connection going now) must then write it online itself."""
        self.connectivity.disconnected(asset_id)
        for pending in self._announcing.get(asset_id, ()):
            pending.announced = False

    async def on_disconnected(self, principal: object, client_id: str, reason: str) -> None:
        if not isinstance(principal, DeviceSession) or principal.handoff_only:
            return
        session = principal
        if access.isEnabledFor(logging.INFO):
            access.info("mqtt disconnect", extra={"fields": {
                "connection": client_id, "channel": "mqtt", "caller": f"device:{session.asset_id}",
                "reason": reason}})
        for asset_id in list(session.online_subs):
            await self.drop_sub(session, asset_id)
        if self._live.get(session.asset_id) is session:
            del self._live[session.asset_id]
            self._offline(session.asset_id)

    # --- sessions -------------------------------------------------------------------------------
    def live(self, asset_id: str) -> DeviceSession | None:
        """The session of the device's live connection to this node."""
        return self._live.get(asset_id)

    def via(self, asset_id: str) -> DeviceSession | None:
        """The gateway session a sub-device is logged in through on this node."""
        return self._via.get(asset_id)

    def live_gateway(self, sub_asset_id: str) -> DeviceSession | None:
        """A live session whose topology holds the sub-device, logged in or not."""
        return next((s for s in self._live.values() if sub_asset_id in s.subs), None)

    # --- gateways -------------------------------------------------------------------------------
    async def refresh_subs(self, session: DeviceSession) -> None:
        """Reload a gateway's topology, which its topic rights follow."""
        subs = await self.services.connectivity.sub_devices(session.asset_id)
        session.subs = {d.asset_id: (d.product_key, d.device_key) for d in subs}
        for asset_id in list(session.online_subs):
            if asset_id not in session.subs:
                await self.drop_sub(session, asset_id)

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
                await self.drop_sub(gateway, asset_id)
                return
        # Logged in through another node (external broker): no session here knows it, the topology does.
        for asset_id, ref in gateway.subs.items():
            if ref == (product_key, device_key) and asset_id not in self._via:
                self._offline(asset_id)
                return

    async def drop_sub(self, gateway: DeviceSession, asset_id: str) -> None:
        gateway.online_subs.pop(asset_id, None)
        if self._via.get(asset_id) is gateway:
            del self._via[asset_id]
            self._offline(asset_id)

    # --- downlinks --------------------------------------------------------------------------------
    def send(self, session: DeviceSession, topic: str, payload: bytes, qos: int = 0) -> None:
        if self.downlink is not None and session.client_id:
            self.counts[("downlink", session.family.name)] += 1
            self.downlink.send_to(session.client_id, topic, payload, min(qos, 1))

    def close_after(self, session: DeviceSession, delay_s: float, reason: str) -> None:
        """Close the session (and discard it) once the device had ``delay_s`` to read what it was sent."""
        self._spawn(self._close_later(session.client_id, delay_s, reason))

    async def _close_later(self, client_id: str, delay_s: float, reason: str) -> None:
        await asyncio.sleep(delay_s)
        if self.downlink is not None:
            await self.downlink.disconnect_client(client_id, reason, discard_session=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
