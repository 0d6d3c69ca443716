"""The nodes serving one database (``cluster_nodes``) and the devices each holds online.

Owns ``cluster_nodes``, so a class (the store rule, ``store/__init__.py``); ``Core`` holds one. It
also writes the devices' ``online``/``online_node`` columns for a whole node at once (a node that
starts again, or one found dead), which no device-by-device store does.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.store.schema import cluster_nodes, devices

_n = cluster_nodes.c


class ClusterStore:
    async def beat(self, conn: AsyncConnection, node_id: str, now: int, cursor: int, *, start: bool = False) -> None:
        """Record that ``node_id`` is alive at ``now`` and has read the events up to ``cursor``."""
        values = {"heartbeat_time": now, "event_cursor": cursor}
        if start:
            values["start_time"] = now
        res = await conn.execute(update(cluster_nodes).where(_n.node_id == node_id).values(**values))
        if not res.rowcount:
            await conn.execute(insert(cluster_nodes).values(node_id=node_id, start_time=now, heartbeat_time=now,
                                                            event_cursor=cursor))

    async def cursor(self, conn: AsyncConnection, node_id: str) -> int | None:
        """Where ``node_id`` stopped reading the events, None for a node never seen."""
        value = (await conn.execute(select(_n.event_cursor).where(_n.node_id == node_id))).scalar_one_or_none()
        return None if value is None else int(value)

    async def others(self, conn: AsyncConnection, node_id: str, *, alive_since: int) -> tuple[list[str], list[str]]:
        """The other nodes, as (alive: heard from since ``alive_since``, dead: silent since before)."""
        alive: list[str] = []
        dead: list[str] = []
        for nid, beat in await conn.execute(select(_n.node_id, _n.heartbeat_time).where(_n.node_id != node_id)):
            (alive if beat >= alive_since else dead).append(nid)
        return alive, dead

    async def behind(self, conn: AsyncConnection, event_id: int, node_id: str | None, *, alive_since: int
                     ) -> list[str]:
        """The live nodes (but ``node_id``) that have not read the events up to ``event_id`` yet."""
        q = select(_n.node_id).where(_n.heartbeat_time >= alive_since, _n.event_cursor < event_id)
        if node_id is not None:
            q = q.where(_n.node_id != node_id)
        return [r[0] for r in await conn.execute(q)]

    async def forget(self, conn: AsyncConnection, node_id: str) -> None:
        await conn.execute(delete(cluster_nodes).where(_n.node_id == node_id))

    async def mark_offline(self, conn: AsyncConnection, node_ids: list[str], now: int, *,
                           unowned: bool = False) -> int:
        """Devices held online by these nodes (and, with ``unowned``, by no node) become offline."""
        held = devices.c.online_node.in_(node_ids)
        who = or_(held, devices.c.online_node.is_(None)) if unowned else held
        res = await conn.execute(update(devices).where(devices.c.online, who)
                                 .values(online=False, online_node=None, last_offline_time=now))
        return int(res.rowcount or 0)
