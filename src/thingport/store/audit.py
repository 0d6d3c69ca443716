"""The audit trail's table: append a record, read a filtered page of them, purge old ones.

Owns ``audit_records``, so a class (the store rule, ``store/__init__.py``); ``Core`` holds one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.store.driver import Driver, Row
from thingport.store.schema import audit_records

_APPENDED = tuple(c.name for c in audit_records.c if c.name != "id")


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One change or attempted change; ``id`` is 0 until stored."""

    time: int
    org_id: str
    channel: str
    actor: str
    address: str
    request_id: str
    action: str
    target: str
    outcome: str
    status: int
    error: str
    id: int = 0


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which records a reader wants; an empty field does not filter. Times are epoch ms,
    ``since`` inclusive and ``until`` exclusive; ``before`` pages back from a record id."""

    org_id: str = ""
    target: str = ""
    actor: str = ""
    action: str = ""
    outcome: str = ""
    since: int | None = None
    until: int | None = None
    before: int | None = None


class AuditStore:
    @staticmethod
    def row(record: AuditRecord) -> Row:
        """A record's row, for :meth:`append` or for another store's statement to write with the change
        it records (:class:`~thingport.store.driver.Row`)."""
        return Row(audit_records.name, _APPENDED, tuple(getattr(record, c) for c in _APPENDED))

    async def append(self, conn: AsyncConnection, record: AuditRecord) -> int:
        # every audited change writes one: on the driver (store/driver.py)
        return await (await Driver.of(conn)).insert_row(self.row(record))

    async def update_outcome(self, conn: AsyncConnection, record_id: int, outcome: str, status: int,
                             error: str) -> None:
        await conn.execute(audit_records.update().where(audit_records.c.id == record_id)
                           .values(outcome=outcome, status=status, error=error))

    async def page(self, conn: AsyncConnection, where: AuditFilter, limit: int) -> list[AuditRecord]:
        """Newest first, at most ``limit`` records."""
        t = audit_records.c
        conds: list[ColumnElement[bool]] = []
        for column, value in ((t.org_id, where.org_id), (t.target, where.target), (t.actor, where.actor),
                              (t.action, where.action), (t.outcome, where.outcome)):
            if value:
                conds.append(column == value)
        if where.since is not None:
            conds.append(t.time >= where.since)
        if where.until is not None:
            conds.append(t.time < where.until)
        if where.before is not None:
            conds.append(t.id < where.before)
        query = select(audit_records).where(and_(True, *conds)).order_by(t.id.desc()).limit(limit)
        return [AuditRecord(**row._mapping) for row in await conn.execute(query)]

    async def purge(self, conn: AsyncConnection, older_than: int) -> int:
        """Delete the records made before ``older_than`` (epoch ms); how many went."""
        res = await conn.execute(delete(audit_records).where(audit_records.c.time < older_than))
        return int(res.rowcount or 0)
