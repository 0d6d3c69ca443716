"""Devices' online state read and written for many devices at once (``services/presence.py``).

Statements over the devices' table, owning none, so functions (the store rule, ``store/__init__.py``):
one query reads the state of a batch of devices, one statement writes the changed ones, however many.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.store.schema import devices

#: Ids per ``IN`` list, far below every backend's bound on parameters.
_CHUNK = 500


@dataclass(slots=True)
class PresenceRow:
    asset_id: str
    org_id: str
    product_key: str
    device_key: str
    enabled: bool
    online: bool
    active_time: int | None
    last_online_time: int | None
    last_offline_time: int | None


async def load(conn: AsyncConnection, asset_ids: list[str], *, for_update: bool = False) -> dict[str, PresenceRow]:
    c = devices.c
    out: dict[str, PresenceRow] = {}
    for start in range(0, len(asset_ids), _CHUNK):
        q = select(c.asset_id, c.org_id, c.product_key, c.device_key, c.enabled, c.online, c.active_time,
                   c.last_online_time, c.last_offline_time).where(c.asset_id.in_(asset_ids[start:start + _CHUNK]))
        if for_update:
            q = q.order_by(c.asset_id).with_for_update()
        for r in await conn.execute(q):
            out[r.asset_id] = PresenceRow(r.asset_id, r.org_id, r.product_key, r.device_key, bool(r.enabled),
                                          bool(r.online), r.active_time, r.last_online_time, r.last_offline_time)
    return out


_SAVE = (update(devices).where(devices.c.asset_id == bindparam("b_asset_id"))
         .values(online=bindparam("b_online"), active_time=bindparam("b_active_time"),
                 last_online_time=bindparam("b_last_online_time"), last_offline_time=bindparam("b_last_offline_time")))


async def save(conn: AsyncConnection, rows: list[PresenceRow]) -> None:
    """Write the online state of ``rows`` (one executemany)."""
    if rows:
        await conn.execute(_SAVE, [{"b_asset_id": r.asset_id, "b_online": r.online, "b_active_time": r.active_time,
                                    "b_last_online_time": r.last_online_time,
                                    "b_last_offline_time": r.last_offline_time} for r in rows])
