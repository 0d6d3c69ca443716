"""Living Platform provisioning: discovery, binding by token or time window, keys, gateways.

App-side functions take the :class:`EndUser` of an iotToken session; device-side functions
(``report_bind_token``, ``report_enrollees``, ``registrar_cipher``, ``check_join``) are what the
MQTT front door calls for ``thing/awss/enrollee/match``, ``thing/awss/enrollee/found``,
``thing/cipher/get`` and ``thing/topo/add``. Everything that must reach a device is an event
(``services/events.py``, ``living.*``) emitted in the transaction that decided it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto import awss
from thingport.domain.errors import (
    BindTokenNotFound,
    BoundToOther,
    DeviceNotFound,
    InvalidArgument,
    NotGateway,
    NotInBindWindow,
    PermitJoinClosed,
    ProductNotFound,
)
from thingport.domain.models import Device, Page, Product, now_ms
from thingport.services import events
from thingport.services.context import Caller, Core, Tx
from thingport.services.devices import DeviceRef, DeviceService
from thingport.services.living_accounts import EndUser, LivingAccountService
from thingport.services.topology import TopologyService
from thingport.store.living_accounts import Binding, ProductMeta
from thingport.store.provisioning import Enrollee, Permit

TOKEN = re.compile(r"^[0-9A-Fa-f]{32}\Z")
RANDOM = re.compile(r"^[0-9A-Fa-f]{32}\Z")
MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-]?[0-9A-Fa-f]{2}){5}\Z")
PERMIT_CLOSED = 65535


@dataclass(slots=True)
class EnrolleeView:
    row: Enrollee
    registrar: Device
    registrar_product: Product
    enrollee: Device
    enrollee_product: Product


@dataclass(slots=True)
class FilteredDevice:
    product_key: str
    device_name: str
    product: Product
    meta: ProductMeta


@dataclass(frozen=True, slots=True)
class CipherRequest:
    product_key: str
    device_name: str | None
    cipher_type: int
    random: str
    mac: str | None = None


class ProvisioningService:
    def __init__(self, core: Core, devices: DeviceService, accounts: LivingAccountService,
                 topology: TopologyService) -> None:
        self.core = core
        self.devices = devices
        self.accounts = accounts
        self.topology = topology
        self.store = core.provisioning  # the tables this service decides on

    # discovery ----------------------------------------------------------------------------------
    async def enrollees(self, user: EndUser, page: Page, *, include_development: bool = False
                        ) -> tuple[list[EnrolleeView], int]:
        """Devices discovered nearby by registrars bound to the user, newest report first."""
        async with self.core.read() as conn:
            registrars = await self.core.living_accounts.bound_asset_ids(conn, user.identity_id)
            products = None if include_development else await self._published(conn, user.org_id)
            rows, total = await self.store.enrollees_of_registrars(conn, registrars, page, products)
            out = []
            for r in rows:
                reg = await self.devices.view_of(conn, user.caller, await self._by_id(conn, user, r.registrar_id))
                enr = await self.devices.view_of(conn, user.caller, await self._by_id(conn, user, r.enrollee_id))
                out.append(EnrolleeView(r, reg.device, reg.product, enr.device, enr.product))
            return out, total

    async def _published(self, conn: AsyncConnection, org_id: str) -> list[str]:
        found, _ = await self.core.products.search(conn, org_id, None, Page(1, 100_000))
        meta = self.core.living_accounts.product_meta
        return [p.product_key for p in found if (await meta(conn, p.product_key)).status == 1]

    async def _by_id(self, conn: AsyncConnection, user: EndUser, asset_id: str) -> Device:
        return await self.devices.load(conn, user.caller, DeviceRef(asset_id=asset_id))

    async def filter_devices(self, user: EndUser, items: list[tuple[str, str]], *, reset: bool = False,
                             include_development: bool = False) -> list[FilteredDevice]:
        """Keep the LAN-found devices of the user's organization's products (published ones unless
        ``include_development``), without bound ones unless ``reset``; unknown ones are dropped."""
        out: list[FilteredDevice] = []
        async with self.core.read() as conn:
            found: dict[tuple[str, str], Device] = {}
            for pk, dn in items:
                d = await self.core.devices.get(conn, user.org_id, product_key=pk, device_key=dn)
                if d is not None:
                    found[(pk, dn)] = d
            bound = await self.core.living_accounts.bound_any(conn, [d.asset_id for d in found.values()])
            products: dict[str, tuple[Product, ProductMeta]] = {}
            for (pk, dn), d in found.items():
                if d.asset_id in bound and not reset:
                    continue
                if pk not in products:
                    product = await self.devices.products.load(conn, user.caller, pk)
                    products[pk] = (product, await self.core.living_accounts.product_meta(conn, pk))
                product, meta = products[pk]
                if meta.status != 1 and not include_development:
                    continue
                out.append(FilteredDevice(pk, dn, product, meta))
        return out

    # binding ------------------------------------------------------------------------------------
    async def check_token(self, user: EndUser, token: str, product_key: str | None = None,
                          device_name: str | None = None) -> Device:
        if device_name and not product_key:
            raise InvalidArgument("productKey: is required with deviceName", field="productKey")
        async with self.core.read() as conn:
            return await self._token_device(conn, user, token, product_key, device_name)

    async def _token_device(self, conn: AsyncConnection, user: EndUser, token: str, product_key: str | None,
                            device_name: str | None) -> Device:
        if not token:
            raise InvalidArgument("token: is required", field="token")
        found = await self.store.bind_token(conn, token)
        device = await self.core.devices.by_id(conn, found.asset_id) if found else None
        now = now_ms()
        if (found is None or device is None or device.org_id != user.org_id or found.used_time is not None
                or found.expire_time <= now
                or (product_key and device.product_key != product_key)
                or (device_name and device.device_key != device_name)):
            raise BindTokenNotFound("token not found", field="token")
        return device

    async def bind_by_token(self, user: EndUser, product_key: str, device_name: str, token: str,
                            home_id: str | None) -> Device:
        """Bind the device that reported ``token`` (its latest, unexpired, unused one) to the user as owner."""
        _required({"productKey": product_key, "deviceName": device_name, "token": token})
        async with self.core.write(user.org_id) as tx:
            home = await self.accounts.load_home(tx.conn, user, home_id)
            device = await self._token_device(tx.conn, user, token, product_key, device_name)
            await self._bind(tx, user, device, home.home_id)
            await self.store.use_bind_token(tx.conn, device.asset_id, tx.now)
            return device

    async def bind_by_window(self, user: EndUser, product_key: str, device_name: str, home_id: str | None) -> Device:
        """Bind without a token while the device's bind window is open: it is online and its last
        connect (taken as its power-on) was at most the product's window (default setting) ago."""
        _required({"productKey": product_key, "deviceName": device_name})
        async with self.core.write(user.org_id) as tx:
            home = await self.accounts.load_home(tx.conn, user, home_id)
            await self.devices.products.load(tx.conn, user.caller, product_key)
            device = await self.core.devices.get(tx.conn, user.org_id, product_key=product_key,
                                                 device_key=device_name, for_update=True)
            if device is None:
                raise DeviceNotFound(f"deviceName: device {product_key}/{device_name} does not exist",
                                     field="deviceName")
            meta = await self.core.living_accounts.product_meta(tx.conn, product_key)
            window = meta.bind_window_s or self.core.settings.living_bind_window_s
            since = device.last_online_time
            if not device.online or since is None or tx.now - since > window * 1000:
                raise NotInBindWindow(f"deviceName: device {product_key}/{device_name} is not in its bind window "
                                      f"({window} s after it connects)", field="deviceName")
            await self._bind(tx, user, device, home.home_id)
            return device

    async def _bind(self, tx: Tx, user: EndUser, device: Device, home_id: str) -> None:
        existing = await self.core.living_accounts.bindings_of_device(tx.conn, device.asset_id)
        if any(b.owned and b.identity_id != user.identity_id for b in existing):
            raise BoundToOther(f"deviceName: device {device.product_key}/{device.device_key} is bound to another "
                               "account; its owner must unbind it first", field="deviceName")
        b = Binding(device.asset_id, user.identity_id, user.org_id, home_id, True, tx.now)
        await self.core.living_accounts.put_binding(tx.conn, b)
        await self.store.forget_enrollee(tx.conn, device.asset_id)
        await self.accounts.notify(tx, device, b, "Bind")

    # keys ---------------------------------------------------------------------------------------
    async def app_cipher(self, user: EndUser, req: CipherRequest) -> str:
        """The provisioning key for a device of the user's organization. If the device is a discovered
        enrollee of a registrar bound to the user, that registrar is told to check it in (status 1)."""
        async with self.core.write(user.org_id) as tx:
            key, device = await self._cipher(tx.conn, user.caller, req)
            if device is None:
                device = await self.core.devices.get(tx.conn, user.org_id, product_key=req.product_key,
                                                     device_key=req.device_name)
            if device is not None:
                mine = set(await self.core.living_accounts.bound_asset_ids(tx.conn, user.identity_id))
                for row in await self.store.enrollee_rows(tx.conn, device.asset_id):
                    if row.registrar_id in mine and row.status == 0:
                        await self._checkin(tx, row, device)
            return key

    async def _checkin(self, tx: Tx, row: Enrollee, enrollee: Device) -> None:
        registrar = await self.core.devices.by_id(tx.conn, row.registrar_id)
        assert registrar is not None
        await self.store.set_enrollee_status(tx.conn, row.registrar_id, row.enrollee_id, 1, tx.now)
        await tx.emit(events.LivingEnrolleeCheckin(
            org_id=registrar.org_id, product_key=registrar.product_key, device_key=registrar.device_key,
            enrollee=events.CheckinEnrollee(product_key=enrollee.product_key, device_name=enrollee.device_key,
                                            timeout=self.core.settings.living_enrollee_timeout_s),
            enrollee_iot_id=enrollee.asset_id), registrar.asset_id, org_id=registrar.org_id)

    async def _cipher(self, conn: AsyncConnection, caller: Caller, req: CipherRequest) -> tuple[str, Device | None]:
        mac = _cipher_mac(req)
        product = await self.devices.products.load(conn, caller, req.product_key)
        device = None
        if req.cipher_type in awss.PER_DEVICE or req.device_name:
            if req.cipher_type in awss.PER_DEVICE and not req.device_name:
                raise InvalidArgument("deviceName: is required for a per-device key", field="deviceName")
            device = await self.core.devices.get(conn, caller.org_id, product_key=req.product_key,
                                                 device_key=req.device_name)
            if device is None and req.cipher_type in awss.PER_DEVICE:
                raise DeviceNotFound(f"deviceName: device {req.product_key}/{req.device_name} does not exist",
                                     field="deviceName")
        secret = device.secret if req.cipher_type in awss.PER_DEVICE and device else product.secret
        return awss.cipher_key(secret, bytes.fromhex(req.random), mac), device

    # gateways -----------------------------------------------------------------------------------
    async def permit(self, user: EndUser, gateway_iot_id: str, product_key: str | None, time: int) -> Permit:
        """The gateway's owner opens (1–65534 s, or 0 = always) or closes (65535) joining."""
        if isinstance(time, bool) or not isinstance(time, int) or not 0 <= time <= PERMIT_CLOSED:
            raise InvalidArgument("time: an integer 0-65535 (0 always, 65535 closed)", field="time")
        async with self.core.write(user.org_id) as tx:
            gw = await self._owned_gateway(tx.conn, user, gateway_iot_id)
            if product_key:
                try:
                    await self.devices.products.load(tx.conn, user.caller, product_key)
                except ProductNotFound as exc:
                    raise ProductNotFound(f"productKey: product {product_key} does not exist",
                                          field="productKey") from exc
            permit = Permit(gw.asset_id, product_key or None, time, tx.now)
            await self.store.put_permit(tx.conn, permit)
            await tx.emit(events.LivingGatewayPermit(
                org_id=gw.org_id, product_key=gw.product_key, device_key=gw.device_key,
                permit=events.JoinPermit(product_key=product_key or "", time=time)), gw.asset_id)
            return permit

    async def remove_sub_device(self, user: EndUser, gateway_iot_id: str, sub_iot_id: str) -> Device:
        """The gateway's owner removes a sub-device: the relation goes (for every dialect), the
        sub-device's session ends, and the gateway is told with ``thing/topo/change`` status 1."""
        async with self.core.write(user.org_id) as tx:
            gw = await self._owned_gateway(tx.conn, user, gateway_iot_id)
            sub = await self.accounts.device(tx.conn, user, sub_iot_id, field="subIotId")
            if sub.gateway_asset_id != gw.asset_id:
                raise InvalidArgument(f"subIotId: device {sub_iot_id} is not a sub-device of gateway {gw.asset_id}",
                                      field="subIotId")
            [removed] = await self.topology.detach(tx, user.caller, gw, [DeviceRef(asset_id=sub.asset_id)])
            await tx.emit(events.LivingTopoChange(
                org_id=gw.org_id, product_key=gw.product_key, device_key=gw.device_key, status=1,
                sub_list=[events.DeviceName(product_key=removed.product_key, device_name=removed.device_key)]),
                gw.asset_id)
            return removed

    async def _owned_gateway(self, conn: AsyncConnection, user: EndUser, iot_id: str) -> Device:
        gw = await self.accounts.device(conn, user, iot_id, for_update=True)
        await self.accounts.binding_of(conn, user, gw, owner=True)
        if not (await self.devices.view_of(conn, user.caller, gw)).product.is_gateway:
            raise NotGateway(f"iotId: device {iot_id} is not a gateway", field="iotId")
        return gw

    # device side (the MQTT front door) ----------------------------------------------------------
    async def report_bind_token(self, asset_id: str, token: str) -> int:
        """``thing/awss/enrollee/match``: the device's new token replaces its earlier one. Returns
        the token's expiry (ms)."""
        if not TOKEN.match(token or ""):
            raise InvalidArgument("params.token: must be 32 hexadecimal characters", field="params.token")
        async with self.core.write() as tx:
            device = await self.core.devices.by_id(tx.conn, asset_id, for_update=True)
            if device is None:
                raise DeviceNotFound(f"device {asset_id} does not exist", field="iotId")
            expire = tx.now + self.core.settings.living_bind_token_ttl_s * 1000
            await self.store.put_bind_token(tx.conn, asset_id, token, tx.now, expire)
            return expire

    async def report_enrollees(self, registrar_asset_id: str, payloads: list[str], *, ssid: str = "",
                               bssid: str = "", rssi: int | str = "", reporter_type: int = 0
                               ) -> list[dict[str, object]]:
        """``thing/awss/enrollee/found``: store each enrollee whose IE signature verifies with its
        product (security 3) or device (4) secret, in the registrar's organization and not yet bound.
        Returns the ``found_reply`` data: ``[{productKey, deviceName, timeout}]`` of the accepted ones."""
        if reporter_type not in (0, 1):
            raise InvalidArgument("params.type: 0 (device) or 1 (router)", field="params.type")
        accepted: list[dict[str, object]] = []
        timeout = self.core.settings.living_enrollee_timeout_s
        async with self.core.write() as tx:
            registrar = await self.core.devices.by_id(tx.conn, registrar_asset_id)
            if registrar is None:
                raise DeviceNotFound(f"device {registrar_asset_id} does not exist", field="iotId")
            for raw in payloads:
                try:
                    ie = awss.parse_enrollee_ie(raw)
                except (ValueError, UnicodeDecodeError):
                    continue
                enrollee = await self.core.devices.get(tx.conn, registrar.org_id, product_key=ie.product_key,
                                                       device_key=ie.device_name)
                if enrollee is None or enrollee.asset_id == registrar.asset_id:
                    continue
                if ie.security == 3:
                    product = await self.core.products.get(tx.conn, registrar.org_id, ie.product_key)
                    secret = product.secret if product else None
                else:
                    secret = enrollee.secret if ie.security == 4 else None
                if secret is None or not ie.verify(secret):
                    continue
                if await self.core.living_accounts.bound_any(tx.conn, [enrollee.asset_id]):
                    continue
                await self.store.put_enrollee(tx.conn, Enrollee(
                    registrar.asset_id, enrollee.asset_id, registrar.org_id, ssid[:64], bssid[:32], str(rssi)[:16],
                    reporter_type, 0, tx.now, tx.now))
                accepted.append({"productKey": ie.product_key, "deviceName": ie.device_name, "timeout": timeout})
        return accepted

    async def registrar_cipher(self, registrar_asset_id: str, req: CipherRequest) -> dict[str, str]:
        """``thing/cipher/get``: the key for an enrollee this registrar was told to check in."""
        _cipher_mac(req)
        async with self.core.read() as conn:
            registrar = await self.core.devices.by_id(conn, registrar_asset_id)
            if registrar is None:
                raise DeviceNotFound(f"device {registrar_asset_id} does not exist", field="iotId")
            enrollee = await self.core.devices.get(conn, registrar.org_id, product_key=req.product_key,
                                                   device_key=req.device_name)
            row = await self.store.get_enrollee(conn, registrar.asset_id, enrollee.asset_id) if enrollee else None
            if enrollee is None or row is None or row.status != 1:
                raise DeviceNotFound(f"params.deviceName: {req.product_key}/{req.device_name} is not an enrollee "
                                     "this registrar was asked to check in", field="params.deviceName")
            key, _ = await self._cipher(conn, Caller.operator(registrar.org_id), req)
            return {"productKey": req.product_key, "deviceName": req.device_name or "", "secret": key}

    async def check_join(self, gateway_asset_id: str, sub_product_key: str) -> None:
        """``thing/topo/add``: may a sub-device of ``sub_product_key`` join this gateway now? Only
        products flagged ``require_permit_join`` need an open permit; others always may."""
        async with self.core.read() as conn:
            meta = await self.core.living_accounts.product_meta(conn, sub_product_key)
            if not meta.require_permit_join:
                return
            permit = await self.store.get_permit(conn, gateway_asset_id)
        if permit is None or not permit.allows(sub_product_key, now_ms()):
            raise PermitJoinClosed(f"productKey: gateway {gateway_asset_id} does not permit sub-devices of product "
                                   f"{sub_product_key} to join now", field="productKey")


def _cipher_mac(req: CipherRequest) -> bytes | None:
    """Check a key request's form (before anything is looked up); its MAC for cipherType 6 and 7."""
    if req.cipher_type not in awss.CIPHER_TYPES:
        raise InvalidArgument(f"cipherType: {req.cipher_type} is not one of 3, 4, 6, 7", field="cipherType")
    if not RANDOM.match(req.random or ""):
        raise InvalidArgument("random: must be 32 hexadecimal characters (16 bytes)", field="random")
    if not req.product_key:
        raise InvalidArgument("productKey: is required", field="productKey")
    if req.cipher_type not in awss.WITH_MAC:
        return None
    if not MAC.match(req.mac or ""):
        raise InvalidArgument("params.mac: a 6-byte MAC address (hex, ':' or '-' separated) is required "
                              "for cipherType 6 and 7", field="params.mac")
    return bytes.fromhex(re.sub("[:-]", "", req.mac or ""))


def _required(values: dict[str, str | None]) -> None:
    for field, value in values.items():
        if not value:
            raise InvalidArgument(f"{field}: is required", field=field)
