"""Devices: rows, labels, topology and the queries every dialect shares.

Owns these tables, so a class (the store rule, ``store/__init__.py``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, delete, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto.keyring import Keyring
from thingport.domain.expression import DEVICE_FIELDS, Expr
from thingport.domain.models import Device, DeviceStats, I18nText, Page, Product
from thingport.store.driver import Driver, Row
from thingport.store.labels import replace_labels, rows_for
from thingport.store.products import PRODUCT_COLUMNS, ProductStore
from thingport.store.schema import device_credentials, device_labels, devices, products
from thingport.store.search import Lookup, Resolved, SearchTarget, condition, driven_by_labels, resolve

_STATUS: dict[str, ColumnElement[bool]] = {
    "disabled": devices.c.enabled == false(),
    "inactive": and_(devices.c.enabled, devices.c.active_time.is_(None)),
    "online": and_(devices.c.enabled, devices.c.active_time.is_not(None), devices.c.online),
    "offline": and_(devices.c.enabled, devices.c.active_time.is_not(None), devices.c.online == false()),
}
_STATUS["disable"] = _STATUS["disabled"]  # the spelling EnOS search expressions use


def status_condition(value: str) -> ColumnElement[bool]:
    return _STATUS.get(value.lower(), false())


DEVICE_SEARCH = SearchTarget(
    table=devices,
    labels=device_labels,
    owner="asset_id",
    catalogue=DEVICE_FIELDS,
    columns={
        "assetId": devices.c.asset_id, "productKey": devices.c.product_key, "deviceKey": devices.c.device_key,
        "timezone": devices.c.timezone, "modelId": products.c.model_id, "productType": products.c.product_type,
    },
    status=status_condition,
    lookups={name: Lookup(products.c[column], products.c.product_key, products.c.org_id, devices.c.product_key)
             for name, column in (("modelId", "model_id"), ("productType", "product_type"))},
)


#: Built once: one device more (or fewer) on its product's counter, answering the new count.
_COUNT = (update(products).where(products.c.product_key == bindparam("pk"))
          .values(device_count=products.c.device_count + bindparam("delta")).returning(products.c.device_count))

# The create's statements, written out for the driver (store/driver.py).
_COLUMNS = [c.name for c in devices.c]
#: The previous credential a rotation with a grace period keeps (:meth:`DeviceStore.set_previous`).
PREVIOUS = ("prev_device_key", "prev_secret_enc", "prev_until")
#: What a create writes: every column but ``online_node``, which presence owns (a new device is held
#: by no node), and the previous credential, which a new device has not.
_INSERTED = [c for c in _COLUMNS if c != "online_node" and c not in PREVIOUS]
_RAW_INSERT = (f"INSERT INTO devices ({', '.join(_INSERTED)}) "
               f"VALUES ({', '.join('?' for _ in _INSERTED)})")
_RAW_BY_KEY = f"SELECT {', '.join(_COLUMNS)} FROM devices WHERE org_id = ? AND product_key = ? AND device_key = ?"
#: One device more on a product of an organization, unless it holds the limit already: its row, or none.
_RAW_CLAIM = (f"UPDATE products SET device_count = device_count + 1 "
              f"WHERE product_key = ? AND org_id = ? AND device_count < ? RETURNING {', '.join(PRODUCT_COLUMNS)}")
#: A device by key with its product, in one statement: get-device's whole read (``view_by_key``).
_RAW_VIEW = (f"SELECT {', '.join('d.' + c for c in _COLUMNS)}, {', '.join('p.' + c for c in PRODUCT_COLUMNS)} "
             "FROM devices d JOIN products p ON p.product_key = d.product_key AND p.org_id = d.org_id "
             "WHERE d.org_id = ? AND d.product_key = ? AND d.device_key = ?")
_RAW_LABELS = 'INSERT INTO device_labels (asset_id, field, "key", "value") VALUES (?, ?, ?, ?)'


@functools.cache
def _pg_create(riders: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """PostgreSQL: a whole create in one statement, for riders of these tables and columns. The
    claim (``p``) decides: no product row, no device (``d``); no device, no labels nor riders; the
    labels' foreign key is checked at the statement's end, when the device row is there."""
    ctes = [f"p AS ({_RAW_CLAIM})",
            f"d AS (INSERT INTO devices ({', '.join(_INSERTED)}) SELECT {', '.join('?' for _ in _INSERTED)} FROM p "
            "RETURNING asset_id)",
            'lb AS (INSERT INTO device_labels (asset_id, field, "key", "value") SELECT d.asset_id, l.f, l.k, l.v '
            "FROM d, unnest(?::text[], ?::text[], ?::text[]) AS l(f, k, v))"]
    ctes += [f"r{i} AS (INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join('?' for _ in columns)} FROM d "
             "RETURNING id)" for i, (table, columns) in enumerate(riders)]
    ids = "".join(f", (SELECT id FROM r{i})" for i in range(len(riders)))
    return f"WITH {', '.join(ctes)} SELECT {', '.join('p.' + c for c in PRODUCT_COLUMNS)}{ids} FROM p"


def search_queries(org_id: str, expr: Expr | None, page: Page, gateway_asset_id: str | None = None,
                   resolved: Resolved | None = None) -> tuple[Select[Any], Select[Any]]:
    """The count and the page of a device search (apart, so their query plans can be tested);
    ``resolved``: the product keys of its model and product-type comparisons (``search.resolve``)."""
    # ``org_id || ''``: not the organization's index when the label index finds the few devices
    org = devices.c.org_id.concat("") if driven_by_labels(expr, DEVICE_SEARCH) else devices.c.org_id
    where = and_(org == org_id, condition(expr, DEVICE_SEARCH, resolved))
    if gateway_asset_id is not None:
        where = and_(where, devices.c.gateway_asset_id == gateway_asset_id)
    joined = devices.join(products, products.c.product_key == devices.c.product_key)
    total_q = select(func.count()).select_from(joined).where(where)
    q = (select(devices).select_from(joined).where(where)
         .order_by(devices.c.create_time.desc(), devices.c.asset_id).limit(page.size).offset(page.offset))
    return total_q, q


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device to create, with its row's values and its labels (``DeviceStore.draft``)."""

    device: Device
    values: tuple[Any, ...]
    fields: list[str]
    keys: list[str]
    texts: list[str]


class DeviceStore:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def _ctx(self, asset_id: str) -> str:
        return f"device:{asset_id}"

    @staticmethod
    def prev_ctx(asset_id: str) -> str:
        """The previous secret's context: never interchangeable with the current one's ciphertext."""
        return f"device-prev:{asset_id}"

    async def set_previous(self, conn: AsyncConnection, asset_id: str, device_key: str | None, secret: str | None,
                           until: int | None) -> None:
        """Keep the credential a rotation replaced, valid until ``until`` (with None for the key and
        secret, none is kept, and ``until`` says when the last rotation ended it)."""
        enc = None if secret is None else self.keyring.encrypt(secret, context=self.prev_ctx(asset_id))
        await conn.execute(update(devices).where(devices.c.asset_id == asset_id)
                           .values(prev_device_key=device_key, prev_secret_enc=enc, prev_until=until))

    def _row(self, d: Device) -> dict[str, Any]:
        return {
            "asset_id": d.asset_id, "org_id": d.org_id, "product_key": d.product_key, "device_key": d.device_key,
            "name_default": d.name.default, "name_i18n": json.dumps(d.name.translations),
            "secret_enc": self.keyring.encrypt(d.secret, context=self._ctx(d.asset_id)),
            "description": d.description, "timezone": d.timezone, "attributes": json.dumps(d.attributes),
            "tags": json.dumps(d.tags), "create_time": d.create_time, "update_time": d.update_time,
            "enabled": d.enabled, "online": d.online, "active_time": d.active_time,
            "last_online_time": d.last_online_time, "last_offline_time": d.last_offline_time,
            "gateway_asset_id": d.gateway_asset_id,
        }

    def _from(self, r: Mapping[Any, Any]) -> Device:
        return Device(
            asset_id=r["asset_id"], org_id=r["org_id"], product_key=r["product_key"], device_key=r["device_key"],
            name=I18nText(r["name_default"], json.loads(r["name_i18n"])),
            secret=self.keyring.decrypt(r["secret_enc"], context=self._ctx(r["asset_id"])),
            description=r["description"], timezone=r["timezone"], attributes=json.loads(r["attributes"]),
            tags=json.loads(r["tags"]), create_time=r["create_time"], update_time=r["update_time"],
            enabled=bool(r["enabled"]), online=bool(r["online"]), active_time=r["active_time"],
            last_online_time=r["last_online_time"], last_offline_time=r["last_offline_time"],
            gateway_asset_id=r["gateway_asset_id"],
        )

    async def _labels(self, conn: AsyncConnection, d: Device, *, fresh: bool = False) -> None:
        rows = rows_for("asset_id", d.asset_id, "deviceName", d.name,
                        {"deviceTags": d.tags, "deviceAttributes": d.attributes})
        await replace_labels(conn, device_labels, "asset_id", d.asset_id, rows, fresh=fresh)

    def draft(self, d: Device) -> NewDevice:
        """``d``'s rows, made before its transaction: its writer's turn need not wait for the
        encryption and JSON."""
        row = self._row(d)
        labels = rows_for("asset_id", d.asset_id, "deviceName", d.name,
                          {"deviceTags": d.tags, "deviceAttributes": d.attributes})
        return NewDevice(d, tuple(row[c] for c in _INSERTED), [r["field"] for r in labels],
                         [r["key"] for r in labels], [r["value"] for r in labels])

    async def create(self, conn: AsyncConnection, products: ProductStore, new: NewDevice, limit: int,
                     riders: Sequence[Row] = ()) -> tuple[Product, list[int]] | None:
        """Count the device on its product (of its organization) unless that already holds
        ``limit`` devices, and add it with its labels and ``riders``, rows of other stores that
        commit with it (its event, the audit record): the product and the riders' ids. None, and
        nothing written, when the product does not exist or is full. The counter's UPDATE comes
        first, so its row lock orders concurrent creates and the limit is exact. On PostgreSQL all
        of it is one statement (one round trip instead of four); a duplicate key raises
        ``IntegrityError``, and the writer's savepoint takes back what the statement did."""
        d = new.device
        raw = await Driver.of(conn)
        if raw.pg is not None:
            found = await raw.one(_pg_create(tuple((r.table, r.columns) for r in riders)),
                                  d.product_key, d.org_id, limit, *new.values, new.fields, new.keys, new.texts,
                                  *(v for r in riders for v in r.values))
            if found is None:
                return None
            n = len(PRODUCT_COLUMNS)
            return products.from_row(dict(zip(PRODUCT_COLUMNS, found[:n], strict=True))), list(found[n:])
        claimed = await raw.one(_RAW_CLAIM, d.product_key, d.org_id, limit)
        if claimed is None:
            return None
        await raw.many(_RAW_INSERT, [new.values])
        await raw.many(_RAW_LABELS, [(d.asset_id, f, k, v) for f, k, v in zip(new.fields, new.keys, new.texts,
                                                                               strict=True)])
        ids = [await raw.insert_row(r) for r in riders]
        return products.from_row(dict(zip(PRODUCT_COLUMNS, claimed, strict=True))), ids

    async def view_by_key(self, raw: Driver, products: ProductStore, org_id: str, product_key: str,
                          device_key: str) -> tuple[Device, Product] | None:
        """A device of ``org_id`` by its key, with its product: one statement, so no transaction."""
        found = await raw.one(_RAW_VIEW, org_id, product_key, device_key)
        if found is None:
            return None
        n = len(_COLUMNS)
        return (self._from(dict(zip(_COLUMNS, found[:n], strict=True))),
                products.from_row(dict(zip(PRODUCT_COLUMNS, found[n:], strict=True))))

    async def save(self, conn: AsyncConnection, d: Device, *, labels: bool = True) -> None:
        row = self._row(d)
        del row["asset_id"]
        await conn.execute(update(devices).where(devices.c.asset_id == d.asset_id).values(row))
        if labels:
            await self._labels(conn, d)

    async def delete(self, conn: AsyncConnection, asset_id: str) -> None:
        """Delete the device with its labels and its credential history (what it did stays in the
        audit trail, under its own retention); its sub-devices lose their gateway."""
        await conn.execute(update(devices).where(devices.c.gateway_asset_id == asset_id).values(gateway_asset_id=None))
        await conn.execute(delete(device_labels).where(device_labels.c.asset_id == asset_id))
        await conn.execute(delete(device_credentials).where(device_credentials.c.asset_id == asset_id))
        gone = delete(devices).where(devices.c.asset_id == asset_id).returning(devices.c.product_key)
        for (product_key,) in (await conn.execute(gone)).all():
            await conn.execute(_COUNT, {"pk": product_key, "delta": -1})

    async def get(self, conn: AsyncConnection, org_id: str, *, asset_id: str | None = None,
                  product_key: str | None = None, device_key: str | None = None,
                  for_update: bool = False) -> Device | None:
        if asset_id is None and product_key is not None and device_key is not None:
            # every get-device by key: on the driver (store/driver.py)
            raw = await Driver.of(conn)
            found = await raw.one(_RAW_BY_KEY + (raw.for_update if for_update else ""), org_id, product_key, device_key)
            return self._from(dict(zip(_COLUMNS, found, strict=True))) if found else None
        q = select(devices).where(devices.c.org_id == org_id)
        if asset_id is not None:
            q = q.where(devices.c.asset_id == asset_id)
        if product_key is not None or device_key is not None:
            q = q.where(devices.c.product_key == product_key, devices.c.device_key == device_key)
        if for_update:
            q = q.with_for_update()
        row = (await conn.execute(q)).mappings().first()
        return self._from(row) if row else None

    async def by_id(self, conn: AsyncConnection, asset_id: str, *, for_update: bool = False) -> Device | None:
        """Any organization: for the device side, which knows no tenant."""
        q = select(devices).where(devices.c.asset_id == asset_id)
        if for_update:
            q = q.with_for_update()
        row = (await conn.execute(q)).mappings().first()
        return self._from(row) if row else None

    async def many(self, conn: AsyncConnection, asset_ids: list[str]) -> dict[str, Device]:
        """Any organization, by identity: one query for a page of ids."""
        if not asset_ids:
            return {}
        rows = (await conn.execute(select(devices).where(devices.c.asset_id.in_(asset_ids)))).mappings()
        return {r["asset_id"]: self._from(r) for r in rows}

    async def by_login(self, conn: AsyncConnection, product_key: str, device_key: str) -> Device | None:
        """Any organization: a device login names only its product and key."""
        q = select(devices).where(devices.c.product_key == product_key, devices.c.device_key == device_key)
        row = (await conn.execute(q)).mappings().first()
        return self._from(row) if row else None

    async def search(self, conn: AsyncConnection, org_id: str, expr: Expr | None, page: Page, *,
                     gateway_asset_id: str | None = None) -> tuple[list[Device], int]:
        resolved = await resolve(conn, expr, DEVICE_SEARCH, org_id)
        total_q, q = search_queries(org_id, expr, page, gateway_asset_id, resolved)
        total = int((await conn.execute(total_q)).scalar_one())
        rows = (await conn.execute(q)).mappings().all()
        return [self._from(r) for r in rows], total

    async def sub_devices(self, conn: AsyncConnection, gateway_asset_id: str) -> list[Device]:
        q = select(devices).where(devices.c.gateway_asset_id == gateway_asset_id).order_by(devices.c.asset_id)
        return [self._from(r) for r in (await conn.execute(q)).mappings()]

    async def count_sub_devices(self, conn: AsyncConnection, gateway_asset_id: str) -> int:
        q = select(func.count()).select_from(devices).where(devices.c.gateway_asset_id == gateway_asset_id)
        return int((await conn.execute(q)).scalar_one())

    async def set_gateway(self, conn: AsyncConnection, asset_ids: list[str], gateway_asset_id: str | None,
                          now: int) -> None:
        await conn.execute(update(devices).where(devices.c.asset_id.in_(asset_ids))
                           .values(gateway_asset_id=gateway_asset_id, update_time=now))

    async def stats(self, conn: AsyncConnection, org_id: str, product_key: str | None) -> DeviceStats:
        def count(cond: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

        q = select(func.count(), *(count(_STATUS[s]) for s in ("online", "offline", "inactive", "disabled")))
        q = q.select_from(devices).where(devices.c.org_id == org_id)
        if product_key is not None:
            q = q.where(devices.c.product_key == product_key)
        total, online, offline, inactive, disabled = (await conn.execute(q)).one()
        return DeviceStats(int(total), int(online), int(offline), int(inactive), int(disabled))

    async def mark_all_offline(self, conn: AsyncConnection, now: int) -> int:
        """After a restart nobody is connected yet: every device that was online is offline."""
        res = await conn.execute(update(devices).where(devices.c.online).values(online=False, last_offline_time=now))
        return int(res.rowcount or 0)
