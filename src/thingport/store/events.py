"""The event outbox: events are written in the transaction that caused them.

Owns the ``events`` table, so a class (the store rule, ``store/__init__.py``); ``Core`` holds one.
A payload is stored as the JSON of its msgspec struct; which struct a row's kind reads back into
is the services' business (``services/events.decode``), so rows come back undecoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.store.driver import Driver, Row
from thingport.store.schema import events

#: Built once (append_many runs for every batch of logins).
_APPEND_MANY = insert(events).returning(events.c.id)
_COLUMNS = ("org_id", "kind", "asset_id", "payload", "create_time", "node_id")
_INSERT_HEAD = f"INSERT INTO {events.name} ({', '.join(_COLUMNS)}) VALUES"
_ROW = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
_ROWS_PER_INSERT = 1000  # 6,000 parameters, far below SQLite's 32,766


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    org_id: str
    kind: str
    asset_id: str | None
    payload: str
    create_time: int
    #: The node that wrote it; None: a process that is no node (a ``thingport`` command).
    node_id: str | None = None


class EventStore:
    def __init__(self, node_id: str | None = None) -> None:
        #: Written into every row: the node that wrote it (None for a process that is no node).
        self.node_id = node_id

    def row(self, org_id: str, kind: str, asset_id: str | None, payload: msgspec.Struct, now: int) -> Row:
        """An event's row, for :meth:`append` or for another store's statement to write with its own
        change (:class:`~thingport.store.driver.Row`)."""
        return Row(events.name, _COLUMNS, self._values(org_id, kind, asset_id, payload, now))

    def _values(self, org_id: str, kind: str, asset_id: str | None, payload: msgspec.Struct,
                now: int) -> tuple[Any, ...]:
        """An event's column values, in ``_COLUMNS``' order."""
        return org_id, kind, asset_id, msgspec.json.encode(payload).decode(), now, self.node_id

    async def append(self, conn: AsyncConnection, org_id: str, kind: str, asset_id: str | None,
                     payload: msgspec.Struct, now: int) -> int:
        # every change writes one: on the driver (store/driver.py)
        return await (await Driver.of(conn)).insert_row(self.row(org_id, kind, asset_id, payload, now))

    async def append_many(self, conn: AsyncConnection, rows: list[tuple[str, str, str | None, msgspec.Struct, int]]
                          ) -> list[int]:
        """Several events (org, kind, asset id, payload, time) in one statement; their ids, in order.

        The rows of one INSERT take increasing ids in the order given, so the returned ids are sorted
        rather than asking for parameter order, which SQLite can only give one row per statement.
        """
        if not rows:
            return []
        values = [self._values(*row) for row in rows]
        if conn.dialect.paramstyle != "qmark":
            res = await conn.execute(_APPEND_MANY, [dict(zip(_COLUMNS, v, strict=True)) for v in values])
            return sorted(int(r[0]) for r in res)
        # SQLite: the multi-row INSERT written out and handed to the driver as it is, as SQLAlchemy's
        # handling of each row's parameters would cost more than the row's own insert
        ids: list[int] = []
        for start in range(0, len(values), _ROWS_PER_INSERT):
            chunk = values[start:start + _ROWS_PER_INSERT]
            sql = f"{_INSERT_HEAD} {', '.join([_ROW] * len(chunk))} RETURNING id"
            res = await conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row))
            ids.extend(int(r[0]) for r in res)
        return sorted(ids)

    async def since(self, conn: AsyncConnection, after_id: int, limit: int = 500) -> list[EventRow]:
        q = select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
        return _rows(await conn.execute(q))

    async def with_ids(self, conn: AsyncConnection, ids: list[int]) -> list[EventRow]:
        """The rows of these ids that exist (committed) now, in id order."""
        if not ids:
            return []
        return _rows(await conn.execute(select(events).where(events.c.id.in_(ids)).order_by(events.c.id)))

    async def after(self, conn: AsyncConnection, after_id: int) -> tuple[int, int | None]:
        """How many events come after ``after_id``, and the create time of the first (None: none)."""
        q = select(func.count(), func.min(events.c.create_time)).where(events.c.id > after_id)
        row = (await conn.execute(q)).one()
        return int(row[0]), (int(row[1]) if row[1] is not None else None)

    async def recent_of(self, conn: AsyncConnection, org_id: str, asset_id: str, limit: int) -> list[EventRow]:
        """The newest ``limit`` events about one device of ``org_id``, newest first (the console's
        timeline): read backwards along the (org, id) index, so a busy organization stops early."""
        q = (select(events).where(events.c.org_id == org_id, events.c.asset_id == asset_id)
             .order_by(events.c.id.desc()).limit(limit))
        return [EventRow(r["id"], r["org_id"], r["kind"], r["asset_id"], r["payload"], r["create_time"])
                for r in (await conn.execute(q)).mappings()]

    async def last_id(self, conn: AsyncConnection) -> int:
        """The newest event's id, 0 for none: where a reader that skips the past starts."""
        return int((await conn.execute(select(func.coalesce(func.max(events.c.id), 0)))).scalar_one())


def _rows(result: Any) -> list[EventRow]:
    return [EventRow(r["id"], r["org_id"], r["kind"], r["asset_id"], r["payload"], r["create_time"], r["node_id"])
            for r in result.mappings()]
