"""OceanConnect tables: registrations beside ``devices``, tokens, subscriptions and the push queue.

Owns these tables, so a class (the store rule, ``store/__init__.py``): one for the OceanConnect
services (``services/oceanconnect/``), which share the vendor's tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, false, func, insert, or_, select, true, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto.keyring import Keyring
from thingport.store.hashes import digest
from thingport.store.schema import (
    devices,
    oc_default_products,
    oc_devices,
    oc_push_cursor,
    oc_pushes,
    oc_subscriptions,
    oc_tokens,
    products,
)


def verify_code_digest(code: str) -> str:
    """Verify codes are case-insensitive (libiocm), so they are unique and found case-folded."""
    return digest(code.casefold())


@dataclass(slots=True)
class Registration:
    """What OceanConnect keeps about a device beside its ``devices`` row."""

    asset_id: str
    org_id: str
    app_key: str | None
    node_id: str | None
    mode: str | None  # "verifyCode", "password", or None for a device registered by another dialect
    pending: bool  # waiting for its (re-)bind with verify_code
    verify_code: str | None
    expire_time: int | None
    activated: bool
    psk: str | None
    device_type: str | None
    location: str | None
    info: dict[str, Any] = field(default_factory=dict)
    create_time: int = 0


@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: str
    org_id: str
    app_key: str
    notify_type: str
    callback_url: str
    channel: str
    create_time: int


@dataclass(frozen=True, slots=True)
class PushBacklog:
    """The pushes still queued for one subscription."""

    subscription_id: str
    waiting: int
    oldest_time: int
    max_attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Push:
    id: int
    subscription_id: str
    callback_url: str
    body: str
    attempts: int


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """The batch-query filters; None means no filter."""

    gateway_id: str | None = None
    node_type: str | None = None  # ENDPOINT | GATEWAY
    device_type: str | None = None
    location: str | None = None
    name: str | None = None
    status: str | None = None  # ONLINE | OFFLINE | INACTIVE | ABNORMAL
    start_time: int | None = None
    end_time: int | None = None
    ascending: bool = False


class OceanConnectStore:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def _enc(self, value: str | None, asset_id: str, what: str) -> str | None:
        return None if value is None else self.keyring.encrypt(value, context=f"oc-{what}:{asset_id}")

    def _dec(self, value: str | None, asset_id: str, what: str) -> str | None:
        return None if value is None else self.keyring.decrypt(value, context=f"oc-{what}:{asset_id}")

    # registrations -------------------------------------------------------------------------
    def _row(self, r: Registration) -> dict[str, Any]:
        return {
            "asset_id": r.asset_id, "org_id": r.org_id, "app_key": r.app_key, "node_id": r.node_id,
            "mode": r.mode, "pending": r.pending,
            "verify_code_enc": self._enc(r.verify_code, r.asset_id, "verify"),
            "verify_code_hash": verify_code_digest(r.verify_code) if r.verify_code is not None else None,
            "expire_time": r.expire_time, "activated": r.activated, "psk_enc": self._enc(r.psk, r.asset_id, "psk"),
            "device_type": r.device_type, "location": r.location, "info": json.dumps(r.info),
            "create_time": r.create_time,
        }

    def _from(self, m: RowMapping) -> Registration:
        aid = m["asset_id"]
        return Registration(
            asset_id=aid, org_id=m["org_id"], app_key=m["app_key"], node_id=m["node_id"], mode=m["mode"],
            pending=bool(m["pending"]), verify_code=self._dec(m["verify_code_enc"], aid, "verify"),
            expire_time=m["expire_time"], activated=bool(m["activated"]), psk=self._dec(m["psk_enc"], aid, "psk"),
            device_type=m["device_type"], location=m["location"], info=json.loads(m["info"]),
            create_time=m["create_time"],
        )

    async def insert(self, conn: AsyncConnection, r: Registration) -> None:
        await conn.execute(insert(oc_devices).values(self._row(r)))

    async def save(self, conn: AsyncConnection, r: Registration) -> None:
        row = self._row(r)
        del row["asset_id"]
        await conn.execute(update(oc_devices).where(oc_devices.c.asset_id == r.asset_id).values(row))

    async def get(self, conn: AsyncConnection, asset_id: str, *, for_update: bool = False) -> Registration | None:
        q = select(oc_devices).where(oc_devices.c.asset_id == asset_id)
        if for_update:
            q = q.with_for_update()
        row = (await conn.execute(q)).mappings().first()
        return self._from(row) if row else None

    async def many(self, conn: AsyncConnection, asset_ids: list[str]) -> dict[str, Registration]:
        if not asset_ids:
            return {}
        rows = (await conn.execute(select(oc_devices).where(oc_devices.c.asset_id.in_(asset_ids)))).mappings()
        return {r["asset_id"]: self._from(r) for r in rows}

    async def by_node_id(self, conn: AsyncConnection, node_id: str, *, for_update: bool = False
                         ) -> Registration | None:
        q = select(oc_devices).where(oc_devices.c.node_id == node_id)
        if for_update:
            q = q.with_for_update()
        row = (await conn.execute(q)).mappings().first()
        return self._from(row) if row else None

    async def verify_code_taken(self, conn: AsyncConnection, code: str, *, besides: str | None = None) -> bool:
        q = select(oc_devices.c.asset_id).where(oc_devices.c.verify_code_hash == verify_code_digest(code))
        found = (await conn.execute(q)).scalar_one_or_none()
        return found is not None and found != besides

    async def expired(self, conn: AsyncConnection, now: int, limit: int = 100) -> list[Registration]:
        q = (select(oc_devices)
             .where(oc_devices.c.pending, oc_devices.c.expire_time.is_not(None), oc_devices.c.expire_time <= now)
             .order_by(oc_devices.c.expire_time).limit(limit).with_for_update())
        return [self._from(r) for r in (await conn.execute(q)).mappings()]

    async def default_product(self, conn: AsyncConnection, org_id: str) -> str | None:
        q = select(oc_default_products.c.product_key).where(oc_default_products.c.org_id == org_id)
        return (await conn.execute(q)).scalar_one_or_none()

    async def set_default_product(self, conn: AsyncConnection, org_id: str, product_key: str) -> None:
        await conn.execute(insert(oc_default_products).values(org_id=org_id, product_key=product_key))

    async def search(self, conn: AsyncConnection, org_id: str, query: DeviceQuery, limit: int, offset: int
                     ) -> tuple[list[str], int]:
        """Asset ids of the org's devices that match, newest (or oldest) registration first."""
        joined = (devices.join(products, products.c.product_key == devices.c.product_key)
                  .outerjoin(oc_devices, oc_devices.c.asset_id == devices.c.asset_id))
        conds: list[ColumnElement[bool]] = [devices.c.org_id == org_id]
        if query.gateway_id is not None:
            conds.append(or_(devices.c.asset_id == query.gateway_id, devices.c.gateway_asset_id == query.gateway_id))
        if query.node_type is not None:
            conds.append(products.c.product_type == ("Gateway" if query.node_type == "GATEWAY" else "Device"))
        if query.device_type is not None:
            conds.append(oc_devices.c.device_type == query.device_type)
        if query.location is not None:
            conds.append(oc_devices.c.location == query.location)
        if query.name is not None:
            conds.append(devices.c.name_default == query.name)
        if query.start_time is not None:
            conds.append(devices.c.create_time >= query.start_time)
        if query.end_time is not None:
            conds.append(devices.c.create_time <= query.end_time)
        if query.status is not None:
            conds.append(_status(query.status))
        where = and_(*conds)
        total = int((await conn.execute(select(func.count()).select_from(joined).where(where))).scalar_one())
        order = devices.c.create_time.asc() if query.ascending else devices.c.create_time.desc()
        q = (select(devices.c.asset_id).select_from(joined).where(where)
             .order_by(order, devices.c.asset_id).limit(limit).offset(offset))
        return [r[0] for r in (await conn.execute(q)).all()], total

    # tokens --------------------------------------------------------------------------------
    async def put_tokens(self, conn: AsyncConnection, app_key: str, access: str, refresh: str, now: int,
                         access_expire: int, refresh_expire: int) -> None:
        """Replace the app's tokens: whatever it held before stops working."""
        await conn.execute(delete(oc_tokens).where(oc_tokens.c.app_key == app_key))
        await conn.execute(insert(oc_tokens).values(
            app_key=app_key, access_hash=digest(access), refresh_hash=digest(refresh), access_expire=access_expire,
            refresh_expire=refresh_expire, create_time=now))

    async def token_app(self, conn: AsyncConnection, access: str) -> tuple[str, int] | None:
        q = select(oc_tokens.c.app_key, oc_tokens.c.access_expire).where(oc_tokens.c.access_hash == digest(access))
        row = (await conn.execute(q)).first()
        return (row[0], int(row[1])) if row else None

    async def refresh_expiry(self, conn: AsyncConnection, app_key: str, refresh: str) -> int | None:
        q = select(oc_tokens.c.refresh_expire).where(oc_tokens.c.app_key == app_key,
                                                     oc_tokens.c.refresh_hash == digest(refresh))
        value = (await conn.execute(q)).scalar_one_or_none()
        return int(value) if value is not None else None

    async def drop_access_token(self, conn: AsyncConnection, access: str) -> bool:
        res = await conn.execute(delete(oc_tokens).where(oc_tokens.c.access_hash == digest(access)))
        return bool(res.rowcount)

    # subscriptions -------------------------------------------------------------------------
    @staticmethod
    def _sub(m: RowMapping) -> Subscription:
        return Subscription(m["subscription_id"], m["org_id"], m["app_key"], m["notify_type"], m["callback_url"],
                            m["channel"], m["create_time"])

    async def insert_subscription(self, conn: AsyncConnection, s: Subscription) -> None:
        await conn.execute(insert(oc_subscriptions).values(
            subscription_id=s.subscription_id, org_id=s.org_id, app_key=s.app_key, notify_type=s.notify_type,
            callback_url=s.callback_url, channel=s.channel, create_time=s.create_time))

    async def subscription(self, conn: AsyncConnection, app_key: str, subscription_id: str) -> Subscription | None:
        q = select(oc_subscriptions).where(oc_subscriptions.c.subscription_id == subscription_id,
                                           oc_subscriptions.c.app_key == app_key)
        row = (await conn.execute(q)).mappings().first()
        return self._sub(row) if row else None

    def _sub_filter(self, app_key: str, filters: dict[str, str | None]) -> ColumnElement[bool]:
        conds = [oc_subscriptions.c.app_key == app_key]
        conds += [oc_subscriptions.c[col] == value for col, value in filters.items() if value is not None]
        return and_(*conds)

    async def subscriptions(self, conn: AsyncConnection, app_key: str, filters: dict[str, str | None],
                            limit: int, offset: int) -> tuple[list[Subscription], int]:
        where = self._sub_filter(app_key, filters)
        total = int((await conn.execute(select(func.count()).select_from(oc_subscriptions).where(where)))
                    .scalar_one())
        q = (select(oc_subscriptions).where(where).order_by(oc_subscriptions.c.create_time,
                                                            oc_subscriptions.c.subscription_id)
             .limit(limit).offset(offset))
        return [self._sub(r) for r in (await conn.execute(q)).mappings()], total

    async def delete_subscriptions(self, conn: AsyncConnection, app_key: str, filters: dict[str, str | None]) -> int:
        """Delete the matching subscriptions and the pushes still queued for them."""
        where = self._sub_filter(app_key, filters)
        ids = [r[0] for r in (await conn.execute(select(oc_subscriptions.c.subscription_id).where(where))).all()]
        if ids:
            await conn.execute(delete(oc_pushes).where(oc_pushes.c.subscription_id.in_(ids)))
            await conn.execute(delete(oc_subscriptions).where(oc_subscriptions.c.subscription_id.in_(ids)))
        return len(ids)

    async def org_subscriptions(self, conn: AsyncConnection, org_ids: set[str]) -> list[Subscription]:
        q = select(oc_subscriptions).where(oc_subscriptions.c.org_id.in_(org_ids))
        return [self._sub(r) for r in (await conn.execute(q)).mappings()]

    async def any_subscription(self, conn: AsyncConnection) -> bool:
        return (await conn.execute(select(oc_subscriptions.c.subscription_id).limit(1))).first() is not None

    # the push queue ------------------------------------------------------------------------
    async def cursor(self, conn: AsyncConnection) -> int | None:
        q = select(oc_push_cursor.c.last_event_id).where(oc_push_cursor.c.id == 1).with_for_update()
        value = (await conn.execute(q)).scalar_one_or_none()
        return int(value) if value is not None else None

    async def set_cursor(self, conn: AsyncConnection, last_event_id: int, *, create: bool) -> None:
        if create:
            await conn.execute(insert(oc_push_cursor).values(id=1, last_event_id=last_event_id))
        else:
            await conn.execute(update(oc_push_cursor).where(oc_push_cursor.c.id == 1)
                               .values(last_event_id=last_event_id))

    async def enqueue(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        if rows:
            await conn.execute(insert(oc_pushes), rows)

    async def claim(self, conn: AsyncConnection, now: int, lease_until: int, limit: int) -> list[Push]:
        """Due pushes, leased until ``lease_until`` so no other worker sends them meanwhile."""
        q = (select(oc_pushes).where(oc_pushes.c.next_attempt_time <= now).order_by(oc_pushes.c.id)
             .limit(limit).with_for_update(skip_locked=True))
        rows = (await conn.execute(q)).mappings().all()
        if rows:
            await conn.execute(update(oc_pushes).where(oc_pushes.c.id.in_([r["id"] for r in rows]))
                               .values(next_attempt_time=lease_until, attempts=oc_pushes.c.attempts + 1))
        return [Push(r["id"], r["subscription_id"], r["callback_url"], r["body"], r["attempts"] + 1) for r in rows]

    async def renew(self, conn: AsyncConnection, claims: list[tuple[int, int]], lease_until: int) -> None:
        """Extend the lease of pushes (id, attempt number) still held by that claim: one another
        worker took over since (its attempt numbered higher) is not touched."""
        by_attempt: dict[int, list[int]] = {}
        for push_id, attempts in claims:
            by_attempt.setdefault(attempts, []).append(push_id)
        for attempts, ids in by_attempt.items():  # mostly one statement: a batch's first attempts
            await conn.execute(update(oc_pushes).where(oc_pushes.c.id.in_(ids), oc_pushes.c.attempts == attempts)
                               .values(next_attempt_time=lease_until))

    async def delivered(self, conn: AsyncConnection, push_id: int) -> None:
        await conn.execute(delete(oc_pushes).where(oc_pushes.c.id == push_id))

    async def retry_at(self, conn: AsyncConnection, push_id: int, when: int, error: str) -> None:
        await conn.execute(update(oc_pushes).where(oc_pushes.c.id == push_id)
                           .values(next_attempt_time=when, last_error=error[:1000]))

    async def queue_stats(self, conn: AsyncConnection) -> tuple[int, int | None]:
        """Pushes queued and the create time of the oldest (None when none)."""
        row = (await conn.execute(select(func.count(), func.min(oc_pushes.c.create_time)))).one()
        return int(row[0]), (int(row[1]) if row[1] is not None else None)

    async def last_fanned_out(self, conn: AsyncConnection) -> int | None:
        """The cursor without a lock (``cursor`` locks it for the fan-out)."""
        q = select(oc_push_cursor.c.last_event_id).where(oc_push_cursor.c.id == 1)
        value = (await conn.execute(q)).scalar_one_or_none()
        return int(value) if value is not None else None

    async def queued(self, conn: AsyncConnection) -> int:
        return int((await conn.execute(select(func.count()).select_from(oc_pushes))).scalar_one())

    async def push_backlog(self, conn: AsyncConnection) -> list[PushBacklog]:
        """Per subscription: pushes waiting, the oldest one's creation time, the most attempts one
        has taken and the newest error (what the operator's console shows of delivery)."""
        q = (select(oc_pushes.c.subscription_id, func.count(), func.min(oc_pushes.c.create_time),
                    func.max(oc_pushes.c.attempts), func.max(oc_pushes.c.id))
             .group_by(oc_pushes.c.subscription_id))
        rows = (await conn.execute(q)).all()
        errors: dict[int, str | None] = {}
        if rows:
            e = select(oc_pushes.c.id, oc_pushes.c.last_error).where(oc_pushes.c.id.in_([r[4] for r in rows]))
            errors = {int(r[0]): r[1] for r in await conn.execute(e)}
        return [PushBacklog(str(r[0]), int(r[1]), int(r[2]), int(r[3]), errors.get(int(r[4]))) for r in rows]


def _status(value: str) -> ColumnElement[bool]:
    """ONLINE / OFFLINE / INACTIVE as :func:`activated` and ``devices.online`` define them."""
    activated = or_(func.coalesce(oc_devices.c.activated, false()) == true(), devices.c.active_time.is_not(None))
    if value == "ONLINE":
        return and_(activated, devices.c.online)
    if value == "OFFLINE":
        return and_(activated, devices.c.online == false())
    if value == "INACTIVE":
        return ~activated
    return false()  # ABNORMAL: Thingport has no data path, so no device is ever abnormal
