"""Registry events → what devices are told and which sessions close.

Replacing, disabling or deleting a device tells it (on the documented topics) and closes its
session at once; its gateway, if it logged in through one, hears of it too, and of its enabling.
An online gateway whose family hears of topology changes is told those it did not make, and a
Living app's action (a ``living.*`` event) becomes its device's command (:func:`thingport.connect.living.downlink`).

Behind an external broker (a :class:`TopicRoutedDownlink`) the device may be connected through any
node: what no session of this node knows goes to the device's topics, and sessions are closed by
user name.

Every node's bus carries every writer's events (:mod:`thingport.cluster.feed`), so a device whose
session is on this node's embedded broker is kicked and told here whichever node made the change.
Behind an external broker, what goes by topic or user name is done by the node that wrote the event
(not once per node); an event of a ``thingport`` command, which has no broker, by every node.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import Counter
from typing import Protocol, runtime_checkable

from thingport.connect import family, living, messages
from thingport.connect.family import TopicFamily
from thingport.connect.session import DeviceSession
from thingport.domain.models import now_ms
from thingport.services import events
from thingport.services.connectivity import ConnectivityService

log = logging.getLogger(__name__)

#: How often the sessions on a credential in a rotation's grace period are looked at (as the
#: certificate renewals' sweep, ``connect/embedded.py``): one ends at most this late.
GRACE_SWEEP_S = 1.0


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


class SessionTable(Protocol):
    """What routing needs of the front door: its live sessions, their gateways and its way out."""

    @property
    def connectivity(self) -> ConnectivityService: ...

    @property
    def downlink(self) -> Downlink | None: ...

    def live(self, asset_id: str) -> DeviceSession | None: ...

    def via(self, asset_id: str) -> DeviceSession | None: ...

    def live_gateway(self, sub_asset_id: str) -> DeviceSession | None: ...

    def send(self, session: DeviceSession, topic: str, payload: bytes, qos: int = 0) -> None: ...

    async def refresh_subs(self, session: DeviceSession) -> None: ...

    async def drop_sub(self, gateway: DeviceSession, asset_id: str) -> None: ...


class DownlinkRouter:
    def __init__(self, sessions: SessionTable, bus: events.EventBus) -> None:
        self.sessions = sessions
        #: Sessions this node closed, by the event that ended them (``/metrics``).
        self.kicks: Counter[str] = Counter()
        #: Sessions on a credential in a rotation's grace period, by asset id, until it ends.
        self._graced: dict[str, DeviceSession] = {}
        self._sweeping: asyncio.Task[None] | None = None
        self._unsubscribe = bus.subscribe(self.on_event)

    def close(self) -> None:
        self._unsubscribe()
        if self._sweeping is not None:
            self._sweeping.cancel()

    # --- rotations with a grace period ------------------------------------------------------------

    def watch(self, session: DeviceSession) -> None:
        """End ``session`` when its credential's grace period does (a sweep runs while any is watched)."""
        if session.grace_end is None:
            return
        self._graced[session.asset_id] = session
        if self._sweeping is None or self._sweeping.done():
            self._sweeping = asyncio.get_running_loop().create_task(self._sweep_loop(), context=contextvars.Context())

    async def _sweep_loop(self) -> None:
        while self._graced:
            await asyncio.sleep(GRACE_SWEEP_S)
            try:
                await self.sweep(now_ms())
            except Exception:  # a broker that went away: the next sweep tries again
                log.warning("ending sessions whose grace period ended failed", exc_info=True)

    async def sweep(self, now: int) -> int:
        """End the watched sessions whose grace period ended by ``now``; how many were ended."""
        ended = 0
        for asset_id, session in list(self._graced.items()):
            if self.sessions.live(asset_id) is not session:
                del self._graced[asset_id]  # gone, or replaced by a newer login
            elif session.grace_end is not None and session.grace_end <= now:
                del self._graced[asset_id]
                ended += await self._end_graced(session, "grace period of the replaced credential ended")
        return ended

    async def _end_graced(self, session: DeviceSession, reason: str) -> int:
        downlink = self.sessions.downlink
        if downlink is None:
            return 0
        self.kicks["device.grace_ended"] += 1
        await downlink.disconnect_client(session.client_id, reason)
        return 1

    async def _overlap(self, ev: events.Event, p: events.DeviceReplaced) -> None:
        """A rotation with a grace period: a session older than it (on the credential it replaced)
        goes on until ``grace_until``; one on a credential an earlier rotation replaced ends now (a
        rotation ends the grace period before it). Behind an external broker, whose sessions this
        node does not hold, nothing is closed (docs/credentials.md)."""
        assert ev.asset_id is not None and p.grace_until is not None
        session = self.sessions.live(ev.asset_id)
        if session is None:
            return
        if session.grace_end is not None:
            self._graced.pop(ev.asset_id, None)
            await self._end_graced(session, "a newer rotation ended the grace period of its credential")
        elif session.since <= ev.time:
            session.grace_end = p.grace_until
            self.watch(session)

    async def on_event(self, ev: events.Event) -> None:
        p = ev.payload
        if ev.asset_id is None:
            return
        routes = not (ev.foreign and ev.node_id is not None)  # that node routed it by topic already
        if isinstance(p, events.DeviceReplaced) and p.grace_until is not None:
            await self._overlap(ev, p)
        elif isinstance(p, events.SESSION_ENDING):
            await self._end_sessions(ev.asset_id, p, routes)
        elif isinstance(p, events.CertificateRevoked):
            await self._end_certified(ev.asset_id, p)
        elif isinstance(p, events.DeviceEnabled):
            await self._notify_via_gateway(ev.asset_id, "enable", routes)
        elif isinstance(p, events.TopologyChanged):
            await self._topology_changed(ev.asset_id, p)
        elif isinstance(p, events.LivingDownlink):
            await self._living(ev.asset_id, p, routes)

    def _routed(self, routes: bool = True) -> TopicRoutedDownlink | None:
        """The external broker, when this node sends by topic (``routes``: the event is for it to route)."""
        downlink = self.sessions.downlink
        return downlink if routes and isinstance(downlink, TopicRoutedDownlink) else None

    async def _end_sessions(self, asset_id: str, p: events.DeviceEvent, routes: bool) -> None:
        action = {events.DeviceDisabled: "disable", events.DeviceDeleted: "delete"}.get(type(p))
        reason = f"device {p.KIND}"
        session = self.sessions.live(asset_id)
        routed = self._routed(routes)
        external = isinstance(self.sessions.downlink, TopicRoutedDownlink)
        if session is not None and (routes or not external):  # else the writer closed it by user name
            if action is not None and session.family.sys_tree:
                self.sessions.send(session, f"/sys/{session.product_key}/{session.device_key}/thing/{action}",
                                   messages.command(f"thing.{action}", {}), 1)
            downlink = self.sessions.downlink
            if downlink is not None:
                self.kicks[p.KIND] += 1
                await downlink.disconnect_client(session.client_id, reason)
        elif routed is not None:
            pk, dk = p.product_key, p.device_key
            if action is not None:
                routed.send_to("", f"/sys/{pk}/{dk}/thing/{action}", messages.command(f"thing.{action}", {}), 1)
            await routed.disconnect_user(f"{dk}&{pk}", reason)
            await routed.disconnect_user(asset_id, reason)  # OceanConnect user name
        gateway = self.sessions.via(asset_id)
        if gateway is not None:
            if action is not None:
                await self._notify_via_gateway(asset_id, action, routes)
            await self.sessions.drop_sub(gateway, asset_id)
        elif action == "disable" and routed is not None:
            await self._notify_via_gateway(asset_id, action, routes)

    async def _end_certified(self, asset_id: str, p: events.CertificateRevoked) -> None:
        """The session that logged in with the certificate ends (one with another certificate stays).
        Certificate logins exist on the embedded broker only, so there is nothing to route."""
        session = self.sessions.live(asset_id)
        downlink = self.sessions.downlink
        if session is not None and session.cert_sn == p.cert_sn and downlink is not None:
            await downlink.disconnect_client(session.client_id, f"certificate {p.cert_sn} revoked")

    async def _notify_via_gateway(self, asset_id: str, action: str, routes: bool = True) -> None:
        """Tell a sub-device's live gateway, on the topics its family hears sub-device notices on.

        Behind an external broker the gateway may be connected through another node: it is found in
        the topology, and as this node cannot know its family, the topics of both signed families
        are used (the gateway listens on one of them, nobody on the other).
        """
        gateway = self.sessions.live_gateway(asset_id)
        families: tuple[TopicFamily, ...] = (gateway.family,) if gateway is not None else ()
        if gateway is None and self._routed(routes) is not None:
            gateway, families = await self._gateway_of(asset_id), family.SIGNED
        if gateway is None or asset_id not in gateway.subs:
            return
        pk, dk = gateway.subs[asset_id]
        for fam in families:
            if not fam.sys_tree:
                continue
            if fam.sub_notices_via_combine:
                self.sessions.send(gateway, f"/ext/session/{gateway.product_key}/{gateway.device_key}/combine/{action}",
                                   messages.command(f"combine.{action}", {"productKey": pk, "deviceKey": dk}), 1)
            else:
                self.sessions.send(gateway, f"/sys/{pk}/{dk}/thing/{action}", messages.command(f"thing.{action}", {}),
                                   1)

    async def _gateway_of(self, sub_asset_id: str) -> DeviceSession | None:
        """A session standing for a sub-device's gateway as the topology names it (sent to by topic)."""
        found = await self.sessions.connectivity.login_by_id(sub_asset_id)
        if found is None or found[0].gateway_asset_id is None:
            return None
        gw = await self.sessions.connectivity.login_by_id(found[0].gateway_asset_id)
        if gw is None:
            return None
        device, product = gw
        session = DeviceSession(device.asset_id, device.org_id, device.product_key, device.device_key,
                                family.SIGNED[0], is_gateway=product.is_gateway,
                                client_id=f"{device.device_key}&{device.product_key}")
        await self.sessions.refresh_subs(session)
        return session

    async def _topology_changed(self, asset_id: str, p: events.TopologyChanged) -> None:
        session = self.sessions.live(asset_id)
        if session is None:
            return
        before = dict(session.subs)
        await self.sessions.refresh_subs(session)
        if not session.family.hears_topology_changes or p.origin == session.asset_id:
            return
        for status, ids, known in ((0, p.added, session.subs), (1, p.removed, before)):
            subs = [{"productKey": known[i][0], "deviceName": known[i][1]} for i in ids if i in known]
            if subs:
                self.sessions.send(session, f"/sys/{session.product_key}/{session.device_key}/thing/topo/change",
                                   messages.command("thing.topo.change", {"status": status, "subList": subs}), 1)

    async def _living(self, asset_id: str, p: events.LivingDownlink, routes: bool) -> None:
        """A Living app's command: to the device's session on this node (its own or its gateway's),
        else by topic behind an external broker.

        Only families on the shared topic tree get it. A live gateway that hears of topology changes
        is not sent ``thing/topo/change`` here: :meth:`_topology_changed`, which runs first for the
        same removal, told it already, so it gets exactly one.
        """
        topic, body = living.downlink(p)
        session = self.sessions.live(asset_id) or self.sessions.via(asset_id)
        if session is None:
            routed = self._routed(routes)
            if routed is not None:
                routed.send_to("", topic, body, 1)
        elif session.family.sys_tree and not (isinstance(p, events.LivingTopoChange)
                                              and session.family.hears_topology_changes):
            self.sessions.send(session, topic, body, 1)
