"""Products: create, read, search, update, delete."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto import ids
from thingport.domain.errors import ModelNotFound, ProductHasDevices, ProductNotFound
from thingport.domain.expression import Expr
from thingport.domain.models import I18nText, Page, Permission, Product, ProductType
from thingport.services import events
from thingport.services.context import Caller, Core


@dataclass(slots=True)
class ProductSpec:
    name: I18nText
    product_type: ProductType
    data_format: str
    model_id: str
    bidirectional_auth: bool
    description: str | None = None
    dynamic_activate_enabled: bool = False
    tags: dict[str, str] | None = None


@dataclass(slots=True)
class ProductPatch:
    name: I18nText
    bidirectional_auth: bool
    description: str | None = None
    dynamic_activate_enabled: bool | None = None
    tags: dict[str, str] | None = None


class ProductService:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def load(self, conn: AsyncConnection, caller: Caller, product_key: str, *,
                   for_update: bool = False) -> Product:
        product = await self.core.products.get(conn, caller.org_id, product_key, for_update=for_update)
        if product is None:
            raise ProductNotFound(f"productKey: product {product_key} does not exist", field="productKey")
        return product

    async def create(self, caller: Caller, spec: ProductSpec) -> Product:
        caller.require(Permission.PRODUCT_CREATE)
        async with self.core.write(caller.org_id) as tx:
            if not await self.core.products.model_exists(tx.conn, caller.org_id, spec.model_id):
                raise ModelNotFound(f"modelId: model {spec.model_id} does not exist", field="modelId")
            key = ids.product_key()
            while await self.core.products.get(tx.conn, caller.org_id, key) is not None:
                key = ids.product_key()
            product = Product(
                org_id=caller.org_id, product_key=key, name=spec.name, secret=ids.product_secret(),
                description=spec.description, product_type=spec.product_type, data_format=spec.data_format,
                model_id=spec.model_id, bidirectional_auth=spec.bidirectional_auth,
                dynamic_activate_enabled=spec.dynamic_activate_enabled, tags=spec.tags or {},
                create_time=tx.now, create_by=caller.app_key, update_time=tx.now, update_by=caller.app_key,
            )
            await self.core.products.insert(tx.conn, product)
            await tx.emit(events.ProductCreated(product_key=key))
        return product

    async def get(self, caller: Caller, product_key: str) -> Product:
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            return await self.load(conn, caller, product_key)

    async def search(self, caller: Caller, expr: Expr | None, page: Page) -> tuple[list[Product], int]:
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            return await self.core.products.search(conn, caller.org_id, expr, page)

    async def update(self, caller: Caller, product_key: str, patch: ProductPatch) -> Product:
        caller.require(Permission.PRODUCT_UPDATE)
        async with self.core.write(caller.org_id) as tx:
            product = await self.load(tx.conn, caller, product_key, for_update=True)
            product = replace(
                product, name=patch.name, bidirectional_auth=patch.bidirectional_auth,
                description=patch.description if patch.description is not None else product.description,
                dynamic_activate_enabled=product.dynamic_activate_enabled
                if patch.dynamic_activate_enabled is None else patch.dynamic_activate_enabled,
                tags=product.tags if patch.tags is None else patch.tags,
                update_time=tx.now, update_by=caller.app_key,
            )
            await self.core.products.save(tx.conn, product)
            await tx.emit(events.ProductUpdated(product_key=product_key))
        return product

    async def delete(self, caller: Caller, product_key: str) -> None:
        caller.require(Permission.PRODUCT_DELETE)
        async with self.core.write(caller.org_id) as tx:
            await self.load(tx.conn, caller, product_key, for_update=True)
            count = await self.core.products.count_devices(tx.conn, product_key)
            if count:
                raise ProductHasDevices(
                    f"productKey: product {product_key} still has {count} devices", field="productKey")
            await self.core.products.delete(tx.conn, product_key)
            await tx.emit(events.ProductDeleted(product_key=product_key))
