"""Living Platform provisioning rows: bind tokens, discovered enrollees and gateway permits.

What ``services/provisioning.py`` keeps of its own (the bindings it makes are account rows,
``store/living_accounts.py``). Owns these tables, so a class (the store rule,
``store/__init__.py``); bind tokens are kept as SHA-256 digests.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, FromClause, and_, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.domain.models import Page
from thingport.store.hashes import digest
from thingport.store.schema import devices, living_bind_tokens, living_enrollees, living_permits


@dataclass(slots=True)
class BindToken:
    asset_id: str
    report_time: int
    expire_time: int
    used_time: int | None


@dataclass(slots=True)
class Enrollee:
    registrar_id: str
    enrollee_id: str
    org_id: str
    ssid: str
    bssid: str
    rssi: str
    type: int
    status: int
    create_time: int
    update_time: int


@dataclass(slots=True)
class Permit:
    gateway_id: str
    product_key: str | None
    time: int
    open_time: int

    def allows(self, product_key: str, now: int) -> bool:
        """0 = always, 1–65534 s from open_time, 65535 = closed; a permit naming a product admits only it."""
        if self.product_key and self.product_key != product_key:
            return False
        if self.time == 0:
            return True
        return self.time < 65535 and now < self.open_time + self.time * 1000


class ProvisioningStore:
    # bind tokens ------------------------------------------------------------------------------
    async def put_bind_token(self, conn: AsyncConnection, asset_id: str, token: str, now: int, expire: int) -> None:
        """The device's latest token replaces any earlier one."""
        await conn.execute(delete(living_bind_tokens).where(living_bind_tokens.c.asset_id == asset_id))
        await conn.execute(insert(living_bind_tokens).values(asset_id=asset_id, token_hash=digest(token.upper()),
                                                             report_time=now, expire_time=expire, used_time=None))

    async def bind_token(self, conn: AsyncConnection, token: str) -> BindToken | None:
        q = select(living_bind_tokens).where(living_bind_tokens.c.token_hash == digest(token.upper()))
        row = (await conn.execute(q)).mappings().first()
        if row is None:
            return None
        return BindToken(row["asset_id"], row["report_time"], row["expire_time"], row["used_time"])

    async def use_bind_token(self, conn: AsyncConnection, asset_id: str, now: int) -> bool:
        q = (update(living_bind_tokens)
             .where(living_bind_tokens.c.asset_id == asset_id, living_bind_tokens.c.used_time.is_(None))
             .values(used_time=now))
        res = await conn.execute(q)
        return bool(res.rowcount)

    # enrollees --------------------------------------------------------------------------------
    @staticmethod
    def _enrollee(r: RowMapping) -> Enrollee:
        return Enrollee(r["registrar_id"], r["enrollee_id"], r["org_id"], r["ssid"], r["bssid"], r["rssi"], r["type"],
                        r["status"], r["create_time"], r["update_time"])

    async def put_enrollee(self, conn: AsyncConnection, e: Enrollee) -> None:
        """A repeated report refreshes the radio facts and keeps the status and first-seen time."""
        old = await self.get_enrollee(conn, e.registrar_id, e.enrollee_id)
        if old is None:
            await conn.execute(insert(living_enrollees).values(
                registrar_id=e.registrar_id, enrollee_id=e.enrollee_id, org_id=e.org_id, ssid=e.ssid, bssid=e.bssid,
                rssi=e.rssi, type=e.type, status=e.status, create_time=e.create_time, update_time=e.update_time))
            return
        await conn.execute(update(living_enrollees).where(
            living_enrollees.c.registrar_id == e.registrar_id, living_enrollees.c.enrollee_id == e.enrollee_id
        ).values(ssid=e.ssid, bssid=e.bssid, rssi=e.rssi, type=e.type, update_time=e.update_time))

    async def get_enrollee(self, conn: AsyncConnection, registrar_id: str, enrollee_id: str) -> Enrollee | None:
        q = select(living_enrollees).where(living_enrollees.c.registrar_id == registrar_id,
                                           living_enrollees.c.enrollee_id == enrollee_id)
        row = (await conn.execute(q)).mappings().first()
        return self._enrollee(row) if row else None

    async def enrollees_of_registrars(self, conn: AsyncConnection, registrar_ids: list[str], page: Page,
                                      enrollee_products: list[str] | None = None) -> tuple[list[Enrollee], int]:
        where: ColumnElement[bool] = living_enrollees.c.registrar_id.in_(registrar_ids)
        joined: FromClause = living_enrollees
        if enrollee_products is not None:
            joined = living_enrollees.join(devices, devices.c.asset_id == living_enrollees.c.enrollee_id)
            where = and_(where, devices.c.product_key.in_(enrollee_products))
        total = int((await conn.execute(select(func.count()).select_from(joined).where(where))).scalar_one())
        q = (select(living_enrollees).select_from(joined).where(where)
             .order_by(living_enrollees.c.update_time.desc(), living_enrollees.c.enrollee_id)
             .limit(page.size).offset(page.offset))
        return [self._enrollee(r) for r in (await conn.execute(q)).mappings()], total

    async def enrollee_rows(self, conn: AsyncConnection, enrollee_id: str) -> list[Enrollee]:
        q = select(living_enrollees).where(living_enrollees.c.enrollee_id == enrollee_id)
        return [self._enrollee(r) for r in (await conn.execute(q)).mappings()]

    async def set_enrollee_status(self, conn: AsyncConnection, registrar_id: str, enrollee_id: str, status: int,
                                  now: int) -> None:
        await conn.execute(update(living_enrollees).where(
            living_enrollees.c.registrar_id == registrar_id, living_enrollees.c.enrollee_id == enrollee_id
        ).values(status=status, update_time=now))

    async def forget_enrollee(self, conn: AsyncConnection, enrollee_id: str) -> None:
        """A bound device is provisioned: it is no longer waiting to be discovered."""
        await conn.execute(delete(living_enrollees).where(living_enrollees.c.enrollee_id == enrollee_id))

    # permits ----------------------------------------------------------------------------------
    async def put_permit(self, conn: AsyncConnection, p: Permit) -> None:
        await conn.execute(delete(living_permits).where(living_permits.c.gateway_id == p.gateway_id))
        await conn.execute(insert(living_permits).values(gateway_id=p.gateway_id, product_key=p.product_key,
                                                         time=p.time, open_time=p.open_time))

    async def get_permit(self, conn: AsyncConnection, gateway_id: str) -> Permit | None:
        row = (await conn.execute(select(living_permits).where(living_permits.c.gateway_id == gateway_id))
               ).mappings().first()
        return Permit(row["gateway_id"], row["product_key"], row["time"], row["open_time"]) if row else None
