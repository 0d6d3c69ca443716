"""Products and thing models.

Owns these tables, so a class (the store rule, ``store/__init__.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto.keyring import Keyring
from thingport.domain.expression import PRODUCT_FIELDS, Expr
from thingport.domain.models import I18nText, Page, Product, ProductType, ThingModel
from thingport.store.driver import Driver
from thingport.store.labels import replace_labels, rows_for
from thingport.store.schema import product_labels, products, thing_models
from thingport.store.search import SearchTarget, condition

PRODUCT_SEARCH = SearchTarget(
    table=products,
    labels=product_labels,
    owner="product_key",
    catalogue=PRODUCT_FIELDS,
    columns={"productKey": products.c.product_key, "modelId": products.c.model_id,
             "productType": products.c.product_type},
)


_COLUMNS = PRODUCT_COLUMNS = [c.name for c in products.c]
_RAW_GET = f"SELECT {', '.join(_COLUMNS)} FROM products WHERE product_key = ? AND org_id = ?"


class ProductStore:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def _ctx(self, product_key: str) -> str:
        return f"product:{product_key}"

    def _row(self, p: Product) -> dict[str, object]:
        return {
            "product_key": p.product_key, "org_id": p.org_id, "name_default": p.name.default,
            "name_i18n": json.dumps(p.name.translations),
            "secret_enc": self.keyring.encrypt(p.secret, context=self._ctx(p.product_key)),
            "description": p.description, "product_type": p.product_type.value, "data_format": p.data_format,
            "model_id": p.model_id, "bidirectional_auth": p.bidirectional_auth,
            "dynamic_activate_enabled": p.dynamic_activate_enabled, "tags": json.dumps(p.tags),
            "create_time": p.create_time, "create_by": p.create_by, "update_time": p.update_time,
            "update_by": p.update_by,
        }

    def from_row(self, r: Mapping[Any, Any]) -> Product:
        """A product from its row (a join of another store reads them too: ``DeviceStore.view_by_key``)."""
        return self._from(r)

    def _from(self, r: Mapping[Any, Any]) -> Product:
        return Product(
            org_id=r["org_id"], product_key=r["product_key"],
            name=I18nText(r["name_default"], json.loads(r["name_i18n"])),
            secret=self.keyring.decrypt(r["secret_enc"], context=self._ctx(r["product_key"])),
            description=r["description"], product_type=ProductType(r["product_type"]),
            data_format=r["data_format"], model_id=r["model_id"], bidirectional_auth=bool(r["bidirectional_auth"]),
            dynamic_activate_enabled=bool(r["dynamic_activate_enabled"]), tags=json.loads(r["tags"]),
            create_time=r["create_time"], create_by=r["create_by"], update_time=r["update_time"],
            update_by=r["update_by"],
        )

    async def _labels(self, conn: AsyncConnection, p: Product) -> None:
        rows = rows_for("product_key", p.product_key, "productName", p.name, {"productTags": p.tags})
        await replace_labels(conn, product_labels, "product_key", p.product_key, rows)

    async def insert(self, conn: AsyncConnection, p: Product) -> None:
        await conn.execute(insert(products).values(self._row(p)))
        await self._labels(conn, p)

    async def save(self, conn: AsyncConnection, p: Product) -> None:
        row = self._row(p)
        del row["product_key"]
        await conn.execute(update(products).where(products.c.product_key == p.product_key).values(row))
        await self._labels(conn, p)

    async def get(self, conn: AsyncConnection, org_id: str, product_key: str, *,
                  for_update: bool = False) -> Product | None:
        """Every create and device read loads its product: on the driver (store/driver.py)."""
        raw = await Driver.of(conn)
        row = await raw.one(_RAW_GET + (raw.for_update if for_update else ""), product_key, org_id)
        return self._from(dict(zip(_COLUMNS, row, strict=True))) if row else None

    async def many(self, conn: AsyncConnection, product_keys: set[str]) -> dict[str, Product]:
        """Any organization, by key, in one query: the products of devices already read (a device's
        product is in its organization, so the devices' tenant check covers them)."""
        if not product_keys:
            return {}
        q = select(products).where(products.c.product_key.in_(product_keys))
        return {r["product_key"]: self._from(r) for r in (await conn.execute(q)).mappings()}

    async def delete(self, conn: AsyncConnection, product_key: str) -> None:
        await conn.execute(delete(product_labels).where(product_labels.c.product_key == product_key))
        await conn.execute(delete(products).where(products.c.product_key == product_key))

    async def count_devices(self, conn: AsyncConnection, product_key: str) -> int:
        """The product's device counter (kept by ``DeviceStore``, no ``count(*)``)."""
        q = select(products.c.device_count).where(products.c.product_key == product_key)
        return int((await conn.execute(q)).scalar_one_or_none() or 0)

    async def search(self, conn: AsyncConnection, org_id: str, expr: Expr | None,
                     page: Page) -> tuple[list[Product], int]:
        where: ColumnElement[bool] = (products.c.org_id == org_id) & condition(expr, PRODUCT_SEARCH)
        total = int((await conn.execute(select(func.count()).select_from(products).where(where))).scalar_one())
        q = (select(products).where(where).order_by(products.c.create_time.desc(), products.c.product_key)
             .limit(page.size).offset(page.offset))
        rows = (await conn.execute(q)).mappings().all()
        return [self._from(r) for r in rows], total

    async def model_exists(self, conn: AsyncConnection, org_id: str, model_id: str) -> bool:
        q = select(thing_models.c.model_id).where(thing_models.c.org_id == org_id, thing_models.c.model_id == model_id)
        return (await conn.execute(q)).first() is not None

    async def insert_model(self, conn: AsyncConnection, m: ThingModel) -> None:
        await conn.execute(insert(thing_models).values(org_id=m.org_id, model_id=m.model_id, name=m.name,
                                                       create_time=m.create_time))

    async def list_models(self, conn: AsyncConnection, org_id: str) -> list[ThingModel]:
        q = select(thing_models).where(thing_models.c.org_id == org_id).order_by(thing_models.c.model_id)
        return [ThingModel(r["org_id"], r["model_id"], r["name"], r["create_time"])
                for r in (await conn.execute(q)).mappings()]
