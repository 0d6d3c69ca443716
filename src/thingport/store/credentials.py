"""Each device's credential history: issued when and by whom, last used, ended when and why.

Owns ``device_credentials``, so a class (the store rule, ``store/__init__.py``). No secret is ever
stored here (the current one is on the device's row, a previous one in its grace period too): a
row names the key its secret went with. ``issue_time`` None: the credential predates the history.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.store.schema import device_credentials

#: Why a credential ended.
REPLACED = "replaced"  # a rotation gave the device a new one (at once, or when its grace period ended)
SUPERSEDED = "superseded"  # another rotation came during its grace period, which ended then


@dataclass(frozen=True, slots=True)
class CredentialRow:
    id: int
    asset_id: str
    device_key: str
    issue_time: int | None
    issued_by: str | None
    last_used: int | None
    end_time: int | None
    end_reason: str | None


class CredentialStore:
    async def rotate(self, conn: AsyncConnection, org_id: str, asset_id: str, old_key: str, new_key: str, now: int,
                     until: int, by: str) -> None:
        """Record a rotation at ``now``: a credential still in a grace period ends now, the current one
        at ``until`` (``now`` without a grace period), and the new one is issued by ``by``. A device
        with no history yet gets a row for the credential it had (issued before history was kept)."""
        t = device_credentials.c
        await conn.execute(update(device_credentials)
                           .where(t.asset_id == asset_id, t.end_time > now)
                           .values(end_time=now, end_reason=SUPERSEDED))
        ended = await conn.execute(update(device_credentials)
                                   .where(t.asset_id == asset_id, t.end_time.is_(None))
                                   .values(end_time=until, end_reason=REPLACED))
        if not ended.rowcount:
            await conn.execute(insert(device_credentials).values(
                org_id=org_id, asset_id=asset_id, device_key=old_key, issue_time=None, issued_by=None,
                end_time=until, end_reason=REPLACED))
        await conn.execute(insert(device_credentials).values(
            org_id=org_id, asset_id=asset_id, device_key=new_key, issue_time=now, issued_by=by[:160]))

    async def used(self, conn: AsyncConnection, uses: dict[tuple[str, bool], int]) -> None:
        """Note the last successful logins: (asset id, with the previous credential) → when. The
        current credential is the open row; the previous one the row whose grace period is running.
        One statement per kind for the whole batch (a device never rotated has no row: nothing)."""
        t = device_credentials.c
        for previous in (False, True):
            params = [{"a": a, "w": w} for (a, p), w in uses.items() if p is previous]
            if not params:
                continue
            which = and_(t.end_time.is_not(None), t.end_time > bindparam("w")) if previous else t.end_time.is_(None)
            await conn.execute(update(device_credentials)
                               .where(t.asset_id == bindparam("a"), which,
                                      or_(t.last_used.is_(None), t.last_used < bindparam("w")))
                               .values(last_used=bindparam("w")), params)

    async def list(self, conn: AsyncConnection, org_id: str, asset_id: str) -> list[CredentialRow]:
        """Oldest first."""
        t = device_credentials.c
        q = (select(t.id, t.asset_id, t.device_key, t.issue_time, t.issued_by, t.last_used, t.end_time, t.end_reason)
             .where(t.org_id == org_id, t.asset_id == asset_id).order_by(t.id))
        return [CredentialRow(*r) for r in await conn.execute(q)]
