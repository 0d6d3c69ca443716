"""How OceanConnect shows a device: the registry row, its product and its registration.

Shared by registrations (query one device, query devices in batches) and pushes (each event's
device), so both read a page of devices the same way: three queries, whatever the page size.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.domain.models import Device, Product
from thingport.services.context import Core
from thingport.store.oceanconnect import Registration


@dataclass(slots=True)
class OcView:
    """A device as OceanConnect shows it: the registry row, its product and its registration."""

    device: Device
    product: Product
    reg: Registration | None

    @property
    def activated(self) -> bool:
        """True once the device bound or logged in, and for ever after (docs/oceanconnect.md)."""
        return bool((self.reg and self.reg.activated) or self.device.active_time)

    @property
    def node_id(self) -> str:
        return self.reg.node_id if self.reg and self.reg.node_id else self.device.device_key


async def views(core: Core, conn: AsyncConnection, asset_ids: list[str]) -> dict[str, OcView]:
    """The existing devices among ``asset_ids``, by id, of any organization (the caller checks it)."""
    devices = await core.devices.many(conn, asset_ids)
    products = await core.products.many(conn, {d.product_key for d in devices.values()})
    regs = await core.oceanconnect.many(conn, list(devices))
    return {aid: OcView(d, products[d.product_key], regs.get(aid))
            for aid, d in devices.items() if d.product_key in products}
