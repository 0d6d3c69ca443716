"""Gateways and their sub-devices."""

from __future__ import annotations

from thingport.domain.errors import InvalidArgument, LimitExceeded, TopologyConflict
from thingport.domain.expression import Expr
from thingport.domain.models import Device, Page, Permission
from thingport.services import events
from thingport.services.context import Caller, Core, Tx
from thingport.services.devices import DeviceRef, DeviceService, DeviceView, require_gateway

MAX_SUB_DEVICES_PER_CALL = 1000


class TopologyService:
    def __init__(self, core: Core, devices: DeviceService) -> None:
        self.core = core
        self.devices = devices

    async def add_sub_devices(self, caller: Caller, gateway: DeviceRef, subs: list[DeviceRef], *,
                              origin: str = "api") -> list[str]:
        """Attach sub-devices to a gateway; all or nothing. Returns the sub-devices' asset ids.

        ``origin`` (``api`` or the asset id of the device that asked) goes into the event, so the
        gateway is told of changes it did not make itself.
        """
        caller.require(Permission.DEVICE_FULL)
        self._check_count(subs)
        async with self.core.write(caller.org_id) as tx:
            gw = await self.devices.load(tx.conn, caller, gateway, for_update=True)
            require_gateway(await self.devices.view_of(tx.conn, caller, gw))
            ids: list[str] = []
            for ref in subs:
                sub = await self.devices.load(tx.conn, caller, ref, for_update=True)
                view = await self.devices.view_of(tx.conn, caller, sub)
                if view.product.is_gateway or sub.asset_id == gw.asset_id:
                    raise TopologyConflict(f"subDevices: {ref.describe()} is a gateway", field="subDevices")
                if sub.gateway_asset_id not in (None, gw.asset_id):
                    raise TopologyConflict(f"subDevices: {ref.describe()} already belongs to another gateway",
                                           field="subDevices")
                if sub.gateway_asset_id is None and sub.asset_id not in ids:
                    ids.append(sub.asset_id)
            limit = self.core.settings.gateway_sub_device_limit
            if await self.core.devices.count_sub_devices(tx.conn, gw.asset_id) + len(ids) > limit:
                raise LimitExceeded(f"subDevices: a gateway has at most {limit} sub-devices", field="subDevices")
            if ids:
                await self.core.devices.set_gateway(tx.conn, ids, gw.asset_id, tx.now)
                await tx.emit(events.TopologyChanged(added=ids, removed=[], origin=origin), gw.asset_id)
            return ids

    async def remove_sub_devices(self, caller: Caller, gateway: DeviceRef, subs: list[DeviceRef], *,
                                 origin: str = "api") -> list[str]:
        caller.require(Permission.DEVICE_FULL)
        self._check_count(subs)
        async with self.core.write(caller.org_id) as tx:
            gw = await self.devices.load(tx.conn, caller, gateway, for_update=True)
            require_gateway(await self.devices.view_of(tx.conn, caller, gw))
            return [d.asset_id for d in await self.detach(tx, caller, gw, subs, origin=origin)]

    async def detach(self, tx: Tx, caller: Caller, gw: Device, subs: list[DeviceRef], *,
                     origin: str = "api") -> list[Device]:
        """Inside the caller's transaction: cut sub-devices loose from ``gw`` and end their sessions.

        Every dialect's removal goes through here, so all of them see the same relations and the
        device front door gets one ``topology.changed`` plus a ``device.detached`` per sub-device.
        """
        removed: list[Device] = []
        for ref in subs:
            sub = await self.devices.load(tx.conn, caller, ref, for_update=True)
            if sub.gateway_asset_id != gw.asset_id:
                raise TopologyConflict(f"subDevices: {ref.describe()} is not a sub-device of this gateway",
                                       field="subDevices")
            if all(d.asset_id != sub.asset_id for d in removed):
                removed.append(sub)
        ids = [d.asset_id for d in removed]
        await self.core.devices.set_gateway(tx.conn, ids, None, tx.now)
        await tx.emit(events.TopologyChanged(
            added=[], removed=ids, origin=origin, product_key=gw.product_key, device_key=gw.device_key,
            removed_devices=[events.SubDevice.of(d) for d in removed]), gw.asset_id)
        for d in removed:
            await tx.emit(events.DeviceDetached(
                product_key=d.product_key, device_key=d.device_key, gateway_asset_id=gw.asset_id,
                gateway_product_key=gw.product_key, gateway_device_key=gw.device_key), d.asset_id)
        return removed

    async def gateway_of(self, caller: Caller, sub: DeviceRef) -> DeviceView:
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            device = await self.devices.load(conn, caller, sub)
            if device.gateway_asset_id is None:
                raise TopologyConflict(f"subDevice: {sub.describe()} has no gateway", field="subDevice")
            gw = await self.devices.load(conn, caller, DeviceRef(asset_id=device.gateway_asset_id))
            return await self.devices.view_of(conn, caller, gw)

    async def search_sub_devices(self, caller: Caller, gateway: DeviceRef, expr: Expr | None, page: Page
                                 ) -> tuple[list[DeviceView], int]:
        return await self.devices.search(caller, expr, page, gateway=gateway)

    @staticmethod
    def _check_count(subs: list[DeviceRef]) -> None:
        if not subs:
            raise InvalidArgument("subDevices: at least one sub-device is required", field="subDevices")
        if len(subs) > MAX_SUB_DEVICES_PER_CALL:
            raise InvalidArgument(f"subDevices: at most {MAX_SUB_DEVICES_PER_CALL} per call", field="subDevices")
