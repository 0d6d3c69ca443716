"""Devices in bulk: an import's batches written with one ``executemany`` per table, and an export's
pages read by key (keyset paging), on the driver itself (``store/driver.py``).

A single create goes through :class:`~thingport.store.devices.DeviceStore` one device at a time;
an import of a million devices cannot: per device, the statements' Python (SQLAlchemy, one
round trip each) would cost more than SQLite takes to store it. Here a batch of devices is three
statements (the product's counter, the devices, their labels), the rows are tuples built in one
pass, and each secret is encrypted under the master key with one cipher set up per batch.

The device store's bulk paths, kept in a module of their own: the same tables and rows (a
device imported here reads back through :class:`DeviceStore` like any other).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.domain.models import Device, I18nText
from thingport.store.devices import DeviceStore
from thingport.store.driver import Driver
from thingport.store.labels import tuples_for
from thingport.store.schema import devices

#: What an imported device's row sets; every other column keeps its default (a new device is held
#: by no node, has no gateway, never logged in).
_COLUMNS = ("asset_id", "org_id", "product_key", "device_key", "name_default", "name_i18n", "secret_enc",
            "description", "timezone", "attributes", "tags", "create_time", "update_time", "enabled", "online")
_INSERT = f"INSERT INTO devices ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
_LABELS = 'INSERT INTO device_labels (asset_id, field, "key", "value") VALUES (?, ?, ?, ?)'
_COUNT = "SELECT device_count FROM products WHERE product_key = ?"
_ADD = "UPDATE products SET device_count = device_count + ? WHERE product_key = ?"
#: SQLite page cache of a connection importing on its own (KiB): a device's row lands at a random
#: place in two indexes (its asset id's, its labels'), and with SQLite's default 2 MiB cache most
#: of those pages are read again from the OS for every batch once the registry passes ~100,000
#: devices; 256 MiB holds both indexes of a million devices (``./run bench import``).
IMPORT_CACHE_KIB = 262_144
#: Keys asked about in one statement: far below either database's parameter limit.
_KEYS_PER_QUERY = 500


@dataclass(slots=True)
class NewDevice:
    """One device of an import, validated: what its row needs beyond the batch's common fields.
    ``secret`` and ``asset_id`` are drawn by the service just before the batch is written."""

    device_key: str
    name: I18nText
    timezone: str
    tags: dict[str, str]
    attributes: dict[str, Any]
    description: str | None = None
    secret: str = ""
    asset_id: str = ""


class BulkStore(DeviceStore):
    async def existing(self, conn: AsyncConnection, product_key: str, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` the product already has devices with."""
        found: set[str] = set()
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            q = select(devices.c.device_key).where(devices.c.product_key == product_key,
                                                   devices.c.device_key.in_(keys[start:start + _KEYS_PER_QUERY]))
            found.update((await conn.execute(q)).scalars())
        return found

    async def count(self, conn: AsyncConnection, product_key: str) -> int:
        """The product's device counter, locked until the transaction ends (PostgreSQL; SQLite's
        write transaction already excludes every other writer)."""
        raw = await Driver.of(conn)
        row = await raw.one(_COUNT + raw.for_update, product_key)
        return int(row[0]) if row else 0

    async def insert_many(self, conn: AsyncConnection, org_id: str, product_key: str, batch: Sequence[NewDevice],
                          now: int, *, big_cache: bool = False) -> None:
        """Add the batch's devices, their labels and their count, in the caller's transaction. A
        key or asset id already taken raises ``IntegrityError`` and the caller's savepoint or
        transaction undoes the whole batch."""
        raw = await Driver.of(conn)
        if big_cache and raw.sqlite is not None:  # the connection's own setting, no statement of the transaction
            raw.sqlite.execute(f"PRAGMA cache_size = -{IMPORT_CACHE_KIB}")
        encrypt = self.keyring.encryptor()
        encode = msgspec.json.encode

        def dumps(value: Any) -> str:
            return encode(value).decode() if value else "{}"

        rows, labels = [], []
        for d in batch:
            rows.append((d.asset_id, org_id, product_key, d.device_key, d.name.default, dumps(d.name.translations),
                         encrypt(d.secret, f"device:{d.asset_id}"), d.description, d.timezone,
                         dumps(d.attributes), dumps(d.tags), now, now, True, False))
            labels += tuples_for(d.asset_id, "deviceName", d.name,
                                 {"deviceTags": d.tags, "deviceAttributes": d.attributes})
        await raw.one(_ADD, len(rows), product_key)
        await raw.many(_INSERT, rows)
        await raw.many(_LABELS, labels)

    async def page(self, conn: AsyncConnection, org_id: str, product_key: str | None,
                   after: tuple[str, str] | None, size: int) -> list[Device]:
        """Up to ``size`` devices of the organization (or one product), in (product key, device
        key) order, after the pair ``after``: the unique (product, key) index gives each page at
        the same cost however far the export has gone, and no page is held longer than its turn."""
        q = select(devices).where(devices.c.org_id == org_id)
        if product_key is not None:
            q = q.where(devices.c.product_key == product_key)
        if after is not None:
            q = q.where(or_(devices.c.product_key > after[0],
                            and_(devices.c.product_key == after[0], devices.c.device_key > after[1])))
        q = q.order_by(devices.c.product_key, devices.c.device_key).limit(size)
        return [self._from(r) for r in (await conn.execute(q)).mappings()]
