"""Devices registered through OceanConnect: register, read, modify, delete, refresh the key, binds.

A registration is an ordinary device (a ``devices`` row, visible to every dialect) plus an
``oc_devices`` row: its nodeId (the device key, unique across the server because an MQTT login
names only the nodeId), its pending verify code and the bind deadline. The MQTT front door calls
:meth:`RegistrationService.login_credential`, then :meth:`RegistrationService.complete_bind` or
:meth:`RegistrationService.confirm_first_login`; the dialect's worker calls
:meth:`RegistrationService.expire`. Enabling, disabling and key replacement are the device
registry's rules (``DeviceService.set_enabled_in``, ``replace_key_in``), so every dialect applies
the same ones.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto import ids
from thingport.domain import validate
from thingport.domain.errors import (
    DeviceKeyExists,
    DeviceNotFound,
    DeviceOnline,
    DeviceStatusInvalid,
    InvalidArgument,
    ProductNotFound,
    RegistrationNotFound,
    VerifyCodeExists,
)
from thingport.domain.models import Device, I18nText, Permission, Product, ProductType, ThingModel, now_ms
from thingport.services import events
from thingport.services.context import Caller, Core, Tx
from thingport.services.devices import DeviceRef, DeviceService, DeviceSpec
from thingport.services.oceanconnect.views import OcView, views
from thingport.store.oceanconnect import DeviceQuery, Registration

MAX_TIMEOUT = 2_147_483_647
DEFAULT_MODEL = "oceanconnect"
VERIFY_CODE = "verifyCode"
PASSWORD = "password"
_HEX = re.compile(r"^[0-9a-fA-F]+\Z")


def device_secret() -> str:
    """20 hexadecimal digits, the documented shape of an OceanConnect device secret."""
    return secrets.token_hex(10)


def verify_code() -> str:
    return secrets.token_hex(8).upper()


def _node_id_taken(node_id: str) -> DeviceKeyExists:
    return DeviceKeyExists(f"nodeId: {node_id} is used by another device", field="nodeId")


def _verify_code_taken() -> VerifyCodeExists:
    return VerifyCodeExists("verifyCode: another registration waits with this verify code", field="verifyCode")


@dataclass(slots=True)
class RegistrationSpec:
    """A registration request, already decoded from the wire."""

    mode: str  # VERIFY_CODE or PASSWORD
    node_id: str
    verify_code: str | None = None
    timeout: int | None = None
    psk: str | None = None
    secret: str | None = None
    product_key: str | None = None
    name: str | None = None
    description: str | None = None
    device_type: str | None = None
    location: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Registered:
    asset_id: str
    verify_code: str | None
    timeout: int | None
    psk: str
    secret: str | None


@dataclass(slots=True)
class DevicePatchOc:
    """Modify device: None leaves a value unchanged."""

    name: str | None = None
    enabled: bool | None = None
    device_type: str | None = None
    location: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceCredential:
    """What the MQTT front door verifies a CONNECT against.

    ``secret`` is the plain value of ``HMAC-SHA256(key=timestamp, msg=secret)``: the device secret,
    or, while ``binding`` is true, the verify code of the pending registration; after a successful
    login with ``binding`` the front door calls :meth:`RegistrationService.complete_bind`, and after
    one with ``first_login`` (a password-mode device never seen before)
    :meth:`RegistrationService.confirm_first_login`.
    """

    asset_id: str
    org_id: str
    node_id: str
    secret: str
    binding: bool
    first_login: bool
    #: What the front door's session of the device needs, so it does not read the device again.
    product_key: str
    device_key: str
    is_gateway: bool


@dataclass(frozen=True, slots=True)
class BindResult:
    device_id: str
    secret: str
    node_id: str
    org_id: str


class RegistrationService:
    def __init__(self, core: Core, devices: DeviceService) -> None:
        self.core = core
        self.devices = devices
        self.store = core.oceanconnect

    # registration ----------------------------------------------------------------------------
    def _check_verify_code(self, code: str) -> str:
        if not code or len(code) > 256 or not code.isprintable() or code.strip() != code:
            raise InvalidArgument("verifyCode: 1-256 printable characters without surrounding spaces",
                                  field="verifyCode")
        return code

    def _timeout(self, timeout: int | None) -> int:
        value = self.core.settings.oceanconnect_bind_timeout_s if timeout is None else timeout
        if not 0 <= value <= MAX_TIMEOUT:
            raise InvalidArgument(f"timeout: must be between 0 and {MAX_TIMEOUT} seconds", field="timeout")
        return value

    async def _free_verify_code(self, conn: AsyncConnection, given: str | None, besides: str | None) -> str:
        if given is not None:
            code = self._check_verify_code(given)
            if await self.store.verify_code_taken(conn, code, besides=besides):
                raise _verify_code_taken()
            return code
        while True:
            code = verify_code()
            if not await self.store.verify_code_taken(conn, code):
                return code

    async def _check_node_id(self, conn: AsyncConnection, node_id: str, besides: str | None) -> str:
        node_id = validate.device_key(node_id, field="nodeId")
        other = await self.store.by_node_id(conn, node_id)
        if other is not None and other.asset_id != besides:
            raise _node_id_taken(node_id)
        return node_id

    async def _product(self, tx: Tx, caller: Caller, product_key: str | None) -> str:
        """The given product of the org (600002 otherwise), or the org's OceanConnect default product."""
        if product_key is not None:
            if await self.core.products.get(tx.conn, caller.org_id, product_key) is None:
                raise ProductNotFound(f"productId: product {product_key} does not exist", field="productId")
            return product_key
        key = await self.store.default_product(tx.conn, caller.org_id)
        if key is not None:
            return key
        if not await self.core.products.model_exists(tx.conn, caller.org_id, DEFAULT_MODEL):
            await self.core.products.insert_model(tx.conn, ThingModel(caller.org_id, DEFAULT_MODEL,
                                                                      "OceanConnect devices", tx.now))
        key = ids.product_key()
        while await self.core.products.get(tx.conn, caller.org_id, key) is not None:
            key = ids.product_key()
        await self.core.products.insert(tx.conn, Product(
            org_id=caller.org_id, product_key=key, name=I18nText("OceanConnect devices"), secret=ids.product_secret(),
            description="Devices registered through the OceanConnect API without a productId",
            product_type=ProductType.DEVICE, data_format="Json", model_id=DEFAULT_MODEL, bidirectional_auth=False,
            dynamic_activate_enabled=False, tags={}, create_time=tx.now, create_by=caller.app_key,
            update_time=tx.now, update_by=caller.app_key))
        await self.store.set_default_product(tx.conn, caller.org_id, key)
        await tx.emit(events.ProductCreated(product_key=key))
        return key

    async def register(self, caller: Caller, spec: RegistrationSpec) -> Registered:
        """Create the device and its registration; verify-code devices wait for their bind."""
        caller.require(Permission.DEVICE_FULL)
        psk = spec.psk if spec.psk is not None else secrets.token_hex(16)
        if not (8 <= len(psk) <= 32 and _HEX.match(psk)):
            raise InvalidArgument("psk: 8-32 hexadecimal characters", field="psk")
        secret = None
        if spec.mode == PASSWORD:
            secret = spec.secret if spec.secret is not None else device_secret()
            if len(secret) != 20 or not _HEX.match(secret):
                raise InvalidArgument("secret: must be 20 hexadecimal digits", field="secret")
        timeout = self._timeout(spec.timeout) if spec.mode == VERIFY_CODE else None
        async with self.core.write(caller.org_id) as tx:
            node_id = await self._check_node_id(tx.conn, spec.node_id, None)
            code = await self._free_verify_code(tx.conn, spec.verify_code, None) if spec.mode == VERIFY_CODE else None
            product_key = await self._product(tx, caller, spec.product_key)
            name = validate.text(spec.name or node_id, field="deviceInfo.name", max_len=256, required=True) or node_id
            try:
                view = await self.devices.create_in(tx, caller, DeviceSpec(
                    product_key=product_key, name=I18nText(name), timezone="UTC", device_key=node_id,
                    description=spec.description))
            except DeviceKeyExists as exc:
                raise _node_id_taken(node_id) from exc
            device = view.device
            if secret is not None:
                device.secret = secret
                await self.core.devices.save(tx.conn, device, labels=False)
            await self.store.insert(tx.conn, Registration(
                asset_id=device.asset_id, org_id=caller.org_id, app_key=caller.app_key, node_id=node_id,
                mode=spec.mode, pending=spec.mode == VERIFY_CODE, verify_code=code,
                expire_time=tx.now + timeout * 1000 if timeout else None, activated=False, psk=psk,
                device_type=spec.device_type, location=spec.location, info=spec.info, create_time=tx.now))
        return Registered(device.asset_id, code, timeout, psk, secret)

    # reading ---------------------------------------------------------------------------------
    async def _view(self, conn: AsyncConnection, caller: Caller, device_id: str, *,
                    for_update: bool = False) -> OcView:
        device = await self.devices.load(conn, caller, DeviceRef(device_id), for_update=for_update)
        product = await self.devices.products.load(conn, caller, device.product_key)
        return OcView(device, product, await self.store.get(conn, device_id, for_update=for_update))

    async def get(self, caller: Caller, device_id: str) -> OcView:
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            return await self._view(conn, caller, device_id)

    async def search(self, caller: Caller, query: DeviceQuery, page_no: int, page_size: int
                     ) -> tuple[list[OcView], int]:
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            found, total = await self.store.search(conn, caller.org_id, query, page_size, page_no * page_size)
            shown = await views(self.core, conn, found)  # the page at once, not a device per row
        return [shown[asset_id] for asset_id in found if asset_id in shown], total

    # changing --------------------------------------------------------------------------------
    async def modify(self, caller: Caller, device_id: str, patch: DevicePatchOc) -> None:
        """Change name, mute (enabled) and the OceanConnect-only fields; one deviceInfoChanged push."""
        caller.require(Permission.DEVICE_FULL)
        async with self.core.write(caller.org_id) as tx:
            view = await self._view(tx.conn, caller, device_id, for_update=True)
            device = view.device
            if patch.name is not None:
                name = validate.text(patch.name, field="name", max_len=256, required=True) or device.name.default
                device.name = I18nText(name, device.name.translations)
            if patch.enabled is not None and patch.enabled != device.enabled:
                await self.devices.set_enabled_in(tx, device, patch.enabled)
            device.update_time = tx.now
            await self.core.devices.save(tx.conn, device)
            reg = view.reg
            if reg is None:
                reg = Registration(asset_id=device.asset_id, org_id=device.org_id, app_key=None, node_id=None,
                                   mode=None, pending=False, verify_code=None, expire_time=None, activated=False,
                                   psk=None, device_type=None, location=None, info={}, create_time=tx.now)
                await self.store.insert(tx.conn, reg)
            reg.device_type = patch.device_type if patch.device_type is not None else reg.device_type
            reg.location = patch.location if patch.location is not None else reg.location
            reg.info = {**reg.info, **patch.info}
            await self.store.save(tx.conn, reg)
            await tx.emit(events.DeviceUpdated.of(device), device.asset_id)

    async def delete(self, caller: Caller, device_id: str, cascade: bool) -> None:
        """Delete a device; a gateway's sub-devices go too (``cascade``) or become directly connected."""
        caller.require(Permission.DEVICE_FULL)
        async with self.core.write(caller.org_id) as tx:
            view = await self._view(tx.conn, caller, device_id, for_update=True)
            if cascade:
                found, _ = await self.store.search(tx.conn, caller.org_id, DeviceQuery(gateway_id=device_id),
                                                   self.core.settings.gateway_sub_device_limit + 1, 0)
                for asset_id in found:
                    if asset_id != device_id:
                        child = await self.devices.load(tx.conn, caller, DeviceRef(asset_id), for_update=True)
                        await self.devices.delete_in(tx, child)
            await self.devices.delete_in(tx, view.device)

    async def refresh_key(self, caller: Caller, device_id: str, node_id: str | None, code: str | None,
                          timeout: int | None) -> tuple[str, int]:
        """Re-arm the bind: new verify code (and nodeId); the old secret stops working at once.

        Refused while the device is online. The deviceId stays; the device binds again by logging
        in with its nodeId and the new verify code.
        """
        caller.require(Permission.DEVICE_FULL)
        timeout = self._timeout(timeout)
        async with self.core.write(caller.org_id) as tx:
            view = await self._view(tx.conn, caller, device_id, for_update=True)
            device, reg = view.device, view.reg
            if reg is None or reg.mode is None:
                raise RegistrationNotFound(
                    f"deviceId: device {device_id} was not registered through OceanConnect", field="deviceId")
            if device.online:
                raise DeviceOnline(f"deviceId: device {device_id} is online; refresh it while it is offline",
                                   field="deviceId")
            new_node = await self._check_node_id(tx.conn, node_id, device_id) if node_id else device.device_key
            reg.verify_code = await self._free_verify_code(tx.conn, code, device_id)
            try:  # a new secret nobody knows: the old credential is dead until the device binds again
                await self.devices.replace_key_in(tx, device, new_node, field="nodeId", deactivate=False)
            except DeviceKeyExists as exc:
                raise _node_id_taken(new_node) from exc
            reg.node_id, reg.mode, reg.pending = new_node, VERIFY_CODE, True
            reg.expire_time = tx.now + timeout * 1000 if timeout else None
            try:
                async with tx.conn.begin_nested():
                    await self.store.save(tx.conn, reg)
            except IntegrityError as exc:
                raise _verify_code_taken() from exc
            return reg.verify_code, timeout

    async def activation(self, caller: Caller, device_id: str) -> OcView:
        return await self.get(caller, device_id)

    # the MQTT front door -----------------------------------------------------------------------
    async def login_credential(self, identifier: str, auth_type: int) -> DeviceCredential | None:
        """The credential to verify an MQTT login against, or None (unknown, disabled, lapsed).

        ``auth_type`` 0: ``identifier`` is the deviceId, the secret is the device secret (a device
        waiting for its bind cannot log in this way). ``auth_type`` 2: ``identifier`` is the nodeId;
        while a bind is pending the verify code plays the secret (``binding`` true).
        """
        async with self.core.read() as conn:
            if auth_type == 0:
                device = await self.core.devices.by_id(conn, identifier)
                reg = await self.store.get(conn, identifier) if device else None
            elif auth_type == 2:
                reg = await self.store.by_node_id(conn, identifier)
                device = await self.core.devices.by_id(conn, reg.asset_id) if reg else None
                if device is not None and device.device_key != identifier:
                    return None  # the key was replaced through another dialect
            else:
                return None
            if device is None or not device.enabled:
                return None
            product = await self.core.products.get(conn, device.org_id, device.product_key)
        if product is None:
            return None
        node_id = reg.node_id if reg and reg.node_id else device.device_key
        secret, binding = device.secret, False
        if reg is not None and reg.pending:
            if auth_type == 0 or reg.verify_code is None or (reg.expire_time and reg.expire_time <= now_ms()):
                return None
            secret, binding = reg.verify_code, True
        first = not binding and reg is not None and reg.mode == PASSWORD and not reg.activated
        return DeviceCredential(device.asset_id, device.org_id, node_id, secret, binding=binding, first_login=first,
                                product_key=device.product_key, device_key=device.device_key,
                                is_gateway=product.is_gateway)

    async def complete_bind(self, asset_id: str) -> BindResult:
        """Finish a pending bind: activated for ever, a new device secret, a ``device.bound`` event.

        The front door hands ``device_id`` and ``secret`` to the device, which logs in with them
        from then on; it reports the session with ``DeviceService.mark_connected`` as usual. Two
        logins racing with the same verify code: the second finds no pending bind and is refused.
        """
        async with self.core.write() as tx:
            device = await self.core.devices.by_id(tx.conn, asset_id, for_update=True)
            reg = await self.store.get(tx.conn, asset_id, for_update=True) if device else None
            if device is None or reg is None:
                raise DeviceNotFound(f"deviceId: device {asset_id} does not exist", field="deviceId")
            if not reg.pending or (reg.expire_time and reg.expire_time <= tx.now):
                raise DeviceStatusInvalid(f"deviceId: device {asset_id} has no pending bind", field="deviceId")
            device.secret = device_secret()
            device.update_time = tx.now
            await self.core.devices.save(tx.conn, device, labels=False)
            await self._bound(tx, device, reg)
            return BindResult(asset_id, device.secret, reg.node_id or device.device_key, device.org_id)

    async def confirm_first_login(self, asset_id: str) -> bool:
        """A password-mode device logged in for the first time: that is its bind (activated for ever,
        ``bindDevice`` succeeded). Returns False when another login got there first."""
        async with self.core.write() as tx:
            device = await self.core.devices.by_id(tx.conn, asset_id, for_update=True)
            reg = await self.store.get(tx.conn, asset_id, for_update=True) if device else None
            if device is None or reg is None or reg.activated or reg.pending:
                return False
            await self._bound(tx, device, reg)
            return True

    async def _bound(self, tx: Tx, device: Device, reg: Registration) -> None:
        reg.pending, reg.verify_code, reg.expire_time, reg.activated = False, None, None, True
        await self.store.save(tx.conn, reg)
        await tx.emit(events.DeviceBound(product_key=device.product_key, device_key=device.device_key,
                                         node_id=reg.node_id), device.asset_id, org_id=device.org_id)

    # expiry ------------------------------------------------------------------------------------
    async def expire(self, now: int | None = None) -> int:
        """Lapse binds past their deadline: a never-bound registration is deleted with its device;
        a refreshed one (already activated) only loses its verify code. Both emit ``device.bind_expired``.
        """
        count = 0
        async with self.core.write() as tx:
            for reg in await self.store.expired(tx.conn, now or tx.now):
                device = await self.core.devices.by_id(tx.conn, reg.asset_id, for_update=True)
                if device is None:
                    continue
                activated = reg.activated or bool(device.active_time)
                await tx.emit(events.DeviceBindExpired(
                    product_key=device.product_key, device_key=device.device_key, node_id=reg.node_id,
                    name=device.name.default, deleted=not activated), reg.asset_id, org_id=reg.org_id)
                if activated:
                    reg.pending, reg.verify_code, reg.expire_time = False, None, None
                    await self.store.save(tx.conn, reg)
                else:
                    await self.devices.delete_in(tx, device)
                count += 1
        return count
