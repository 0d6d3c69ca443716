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


_c = devices.c
#: Built once: the statement's construction would cost more than the rows it reads.
_LOAD = select(_c.asset_id, _c.org_id, _c.product_key, _c.device_key, _c.enabled, _c.online, _c.active_time,
               _c.last_online_time, _c.last_offline_time).where(_c.asset_id.in_(bindparam("ids", expanding=True)))
_LOAD_FOR_UPDATE = _LOAD.order_by(_c.asset_id).with_for_update()


async def load(conn: AsyncConnection, asset_ids: list[str], *, for_update: bool = False) -> dict[str, PresenceRow]:
    q = _LOAD_FOR_UPDATE if for_update else _LOAD
    out: dict[str, PresenceRow] = {}
    for start in range(0, len(asset_ids), _CHUNK):
        for r in await conn.execute(q, {"ids": asset_ids[start:start + _CHUNK]}):
            out[r[0]] = PresenceRow(*r)
    return out


_SAVE = (update(devices).where(devices.c.asset_id == bindparam("b_asset_id"))
         .values(online=bindparam("b_online"), active_time=bindparam("b_active_time"),
                 last_online_time=bindparam("b_last_online_time"), last_offline_time=bindparam("b_last_offline_time"),
                 online_node=bindparam("b_online_node")))
_SAVE_ORDER = ["b_online", "b_active_time", "b_last_online_time", "b_last_offline_time", "b_online_node",
               "b_asset_id"]
#: _SAVE as each dialect's driver takes it, when it takes positional parameters in _SAVE_ORDER.
_SAVE_SQL: dict[str, str | None] = {}


async def save(conn: AsyncConnection, rows: list[PresenceRow], node_id: str | None = None) -> None:
    """Write the online state of ``rows`` in one executemany, handed to the driver as tuples where it
    takes them (SQLite, asyncpg): a row then costs a tuple, not SQLAlchemy's processing of a dict.
    A device online is recorded as held by ``node_id`` (whose broker has its session)."""
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name not in _SAVE_SQL:
        compiled = _SAVE.compile(dialect=dialect)
        _SAVE_SQL[dialect.name] = str(compiled) if compiled.positiontup == _SAVE_ORDER else None
    sql = _SAVE_SQL[dialect.name]
    if sql is None:
        await conn.execute(_SAVE, [dict(zip(_SAVE_ORDER, _values(r, node_id), strict=True)) for r in rows])
    else:
        await conn.exec_driver_sql(sql, [_values(r, node_id) for r in rows])


def _values(r: PresenceRow, node_id: str | None) -> tuple[bool, int | None, int | None, int | None, str | None, str]:
    return r.online, r.active_time, r.last_online_time, r.last_offline_time, node_id if r.online else None, r.asset_id
