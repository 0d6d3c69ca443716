"""OceanConnect use cases: app tokens, registrations and binds, device key refresh, subscriptions, pushes.

A registration is an ordinary device (a ``devices`` row, visible to every dialect) plus an
``oc_devices`` row: its nodeId (the device key, unique across the server because an MQTT login
names only the nodeId), its pending verify code and the bind deadline. The MQTT front door calls
:meth:`OceanConnectService.login_credential` and :meth:`OceanConnectService.complete_bind`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto import ids
from thingport.crypto.signing import equal
from thingport.domain import validate
from thingport.domain.errors import (
    Conflict,
    DeviceKeyExists,
    DeviceNotFound,
    DeviceOnline,
    DeviceStatusInvalid,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProductNotFound,
    RegistrationNotFound,
    Unauthenticated,
    VerifyCodeExists,
)
from thingport.domain.models import (
    Application,
    Device,
    I18nText,
    Permission,
    Product,
    ProductType,
    ThingModel,
    now_ms,
)
from thingport.services import events
from thingport.services.accounts import AccountService
from thingport.services.context import Caller, Core, Tx
from thingport.services.devices import DeviceRef, DeviceService, DeviceSpec
from thingport.services.events import Event
from thingport.store.oceanconnect import DeviceQuery, Push, Registration, Subscription

log = logging.getLogger(__name__)

ACCESS_TOKEN_TTL_S = 3600  # "fixed at 3600 seconds" (reference/oceanconnect.md §2.1)
MAX_TIMEOUT = 2_147_483_647
DEFAULT_MODEL = "oceanconnect"
VERIFY_CODE = "verifyCode"
PASSWORD = "password"
#: A later event id may commit before an earlier one (PostgreSQL); a gap is waited for this long.
EVENT_GAP_GRACE_MS = 10_000
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def device_secret() -> str:
    """20 hexadecimal digits, the documented shape of an OceanConnect device secret."""
    return secrets.token_hex(10)


def verify_code() -> str:
    return secrets.token_hex(8).upper()


# ---------------------------------------------------------------------------------------------
# values

@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


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
class OcView:
    """A device as OceanConnect shows it: the registry row, its product and its registration."""

    device: Device
    product: Product
    reg: Registration | None

    @property
    def activated(self) -> bool:
        """True once the device bound or logged in, and for ever after (reference §5.2)."""
        return bool((self.reg and self.reg.activated) or self.device.active_time)

    @property
    def node_id(self) -> str:
        return self.reg.node_id if self.reg and self.reg.node_id else self.device.device_key


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
    login with ``binding`` the front door calls :meth:`OceanConnectService.complete_bind`, and after
    one with ``first_login`` (a password-mode device never seen before) :meth:`OceanConnectService.
    confirm_first_login`.
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


# ---------------------------------------------------------------------------------------------
# flow control

class Throttle:
    """Per-application sliding window: ``calls`` per ``window_s`` (in-process, one node)."""

    def __init__(self, calls: int, window_s: int) -> None:
        self.calls = calls
        self.window = float(window_s)
        self._seen: dict[str, deque[float]] = {}

    def allow(self, app_key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        q = self._seen.setdefault(app_key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.calls:
            return False
        q.append(now)
        return True


Renderer = Callable[[Event, OcView | None], tuple[str, dict[str, Any]] | None]


class OceanConnectService:
    def __init__(self, core: Core, accounts: AccountService, devices: DeviceService) -> None:
        self.core = core
        self.accounts = accounts
        self.devices = devices
        self.store = core.oceanconnect
        s = core.settings
        self.throttle = Throttle(s.oceanconnect_throttle_calls, s.oceanconnect_throttle_window_s)

    # application tokens ----------------------------------------------------------------------
    async def _check_app(self, app_id: str, secret: str) -> Application:
        try:
            app = await self.accounts.active_app(app_id)
        except Unauthenticated:
            async with self.core.read() as conn:
                found = await self.core.accounts.get_app(conn, app_id)
            if found is not None and found.disabled and equal(found.secret, secret):
                raise PermissionDenied(f"appId: application {app_id} is disabled") from None
            raise Unauthenticated("appId or secret is not right") from None
        if not equal(app.secret, secret):
            raise Unauthenticated("appId or secret is not right")
        return app

    async def _issue(self, tx: Tx, app: Application) -> TokenPair:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        ttl_refresh = self.core.settings.oceanconnect_refresh_token_ttl_s * 1000
        await self.store.put_tokens(tx.conn, app.app_key, access, refresh, tx.now,
                                    tx.now + ACCESS_TOKEN_TTL_S * 1000, tx.now + ttl_refresh)
        return TokenPair(access, refresh, ACCESS_TOKEN_TTL_S)

    async def login(self, app_id: str, secret: str) -> TokenPair:
        """A new token pair; the app's earlier access token stops working (only the latest is valid)."""
        app = await self._check_app(app_id, secret)
        async with self.core.write(app.org_id) as tx:
            return await self._issue(tx, app)

    async def refresh_token(self, app_id: str, secret: str, refresh_token: str) -> TokenPair:
        """A new pair for a valid refreshToken; both old tokens stop working."""
        app = await self._check_app(app_id, secret)
        async with self.core.write(app.org_id) as tx:
            expire = await self.store.refresh_expiry(tx.conn, app.app_key, refresh_token)
            if expire is None or expire <= tx.now:
                raise Unauthenticated("refreshToken is not the application's current refresh token")
            return await self._issue(tx, app)

    async def logout(self, access_token: str) -> None:
        async with self.core.write() as tx:
            if not await self.store.drop_access_token(tx.conn, access_token):
                raise Unauthenticated("accessToken is not a valid access token")

    async def app_for_token(self, app_key: str, access_token: str) -> Application:
        """The enabled app whose latest, unexpired access token this is, and which ``app_key`` names."""
        async with self.core.read() as conn:
            found = await self.store.token_app(conn, access_token)
        if found is None or found[0] != app_key or found[1] <= now_ms():
            raise Unauthenticated("invalid access token or appId")
        return await self.accounts.active_app(app_key)

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
                raise VerifyCodeExists("verifyCode: another registration waits with this verify code",
                                       field="verifyCode")
            return code
        while True:
            code = verify_code()
            if not await self.store.verify_code_taken(conn, code):
                return code

    async def _check_node_id(self, conn: AsyncConnection, node_id: str, besides: str | None) -> str:
        node_id = validate.device_key(node_id, field="nodeId")
        other = await self.store.by_node_id(conn, node_id)
        if other is not None and other.asset_id != besides:
            raise DeviceKeyExists(f"nodeId: {node_id} is used by another device", field="nodeId")
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
        await tx.emit(events.PRODUCT_CREATED, None, {"productKey": key})
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
                raise DeviceKeyExists(f"nodeId: {node_id} is used by another device", field="nodeId") from exc
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
            regs = await self.store.many(conn, found)
            views = []
            products: dict[str, Product] = {}
            for asset_id in found:
                device = await self.devices.load(conn, caller, DeviceRef(asset_id))
                if device.product_key not in products:
                    products[device.product_key] = await self.devices.products.load(conn, caller, device.product_key)
                views.append(OcView(device, products[device.product_key], regs.get(asset_id)))
            return views, total

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
                device.enabled = patch.enabled
                if not patch.enabled and device.online:
                    device.online = False
                    device.last_offline_time = tx.now
                await tx.emit(events.DEVICE_ENABLED if patch.enabled else events.DEVICE_DISABLED, device.asset_id,
                              {"productKey": device.product_key, "deviceKey": device.device_key})
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
            await tx.emit(events.DEVICE_UPDATED, device.asset_id, {"productKey": device.product_key,
                                                                    "deviceKey": device.device_key})

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

    async def refresh_device_key(self, caller: Caller, device_id: str, node_id: str | None,
                                 code: str | None, timeout: int | None) -> tuple[str, int]:
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
            old = replace(device)
            new_node = await self._check_node_id(tx.conn, node_id, device_id) if node_id else device.device_key
            reg.verify_code = await self._free_verify_code(tx.conn, code, device_id)
            if new_node != device.device_key and await self.core.devices.by_login(
                    tx.conn, device.product_key, new_node) is not None:
                raise DeviceKeyExists(f"nodeId: {new_node} is used by another device", field="nodeId")
            device.device_key = new_node
            device.secret = ids.device_secret()  # nobody knows it: the old credential is dead
            device.update_time = tx.now
            await self.core.devices.save(tx.conn, device, labels=False)
            reg.node_id, reg.mode, reg.pending = new_node, VERIFY_CODE, True
            reg.expire_time = tx.now + timeout * 1000 if timeout else None
            try:
                async with tx.conn.begin_nested():
                    await self.store.save(tx.conn, reg)
            except IntegrityError as exc:
                raise VerifyCodeExists("verifyCode: another registration waits with this verify code",
                                       field="verifyCode") from exc
            await tx.emit(events.DEVICE_REPLACED, device.asset_id,
                          {"productKey": old.product_key, "deviceKey": old.device_key, "newDeviceKey": new_node})
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
        await tx.emit(events.DEVICE_BOUND, device.asset_id, {"productKey": device.product_key,
                                                             "deviceKey": device.device_key, "nodeId": reg.node_id},
                      org_id=device.org_id)

    # expiry ------------------------------------------------------------------------------------
    async def expire_registrations(self, now: int | None = None) -> int:
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
                await tx.emit(events.DEVICE_BIND_EXPIRED, reg.asset_id, {
                    "productKey": device.product_key, "deviceKey": device.device_key, "nodeId": reg.node_id,
                    "name": device.name.default, "deleted": not activated}, org_id=reg.org_id)
                if activated:
                    reg.pending, reg.verify_code, reg.expire_time = False, None, None
                    await self.store.save(tx.conn, reg)
                else:
                    await self.devices.delete_in(tx, device)
                count += 1
        return count

    # subscriptions -----------------------------------------------------------------------------
    async def subscribe(self, caller: Caller, notify_type: str, callback_url: str, channel: str) -> Subscription:
        assert caller.app_key is not None
        async with self.core.write(caller.org_id) as tx:
            sub = Subscription(uuid.uuid4().hex, caller.org_id, caller.app_key, notify_type, callback_url, channel,
                               tx.now)
            if (await self.store.subscriptions(tx.conn, caller.app_key, {"notify_type": notify_type}, 1, 0))[1]:
                raise Conflict(f"notifyType: {notify_type} is already subscribed", field="notifyType")
            try:
                async with tx.conn.begin_nested():
                    await self.store.insert_subscription(tx.conn, sub)
            except IntegrityError as exc:
                raise Conflict(f"notifyType: {notify_type} is already subscribed", field="notifyType") from exc
        return sub

    async def subscription(self, caller: Caller, subscription_id: str) -> Subscription:
        assert caller.app_key is not None
        async with self.core.read() as conn:
            sub = await self.store.subscription(conn, caller.app_key, subscription_id)
        if sub is None:
            raise NotFound(f"subscriptionId: subscription {subscription_id} does not exist", field="subscriptionId")
        return sub

    async def subscriptions(self, caller: Caller, filters: dict[str, str | None], page_no: int, page_size: int
                            ) -> tuple[list[Subscription], int]:
        assert caller.app_key is not None
        async with self.core.read() as conn:
            return await self.store.subscriptions(conn, caller.app_key, filters, page_size, page_no * page_size)

    async def unsubscribe(self, caller: Caller, subscription_id: str) -> None:
        assert caller.app_key is not None
        async with self.core.write(caller.org_id) as tx:
            if not await self.store.delete_subscriptions(tx.conn, caller.app_key,
                                                         {"subscription_id": subscription_id}):
                raise NotFound(f"subscriptionId: subscription {subscription_id} does not exist",
                               field="subscriptionId")

    async def unsubscribe_all(self, caller: Caller, filters: dict[str, str | None]) -> int:
        assert caller.app_key is not None
        async with self.core.write(caller.org_id) as tx:
            return await self.store.delete_subscriptions(tx.conn, caller.app_key, filters)

    # pushes ------------------------------------------------------------------------------------
    async def fan_out(self, render: Renderer, limit: int = 200) -> int:
        """Turn new events into queued pushes, in the transaction that advances the cursor.

        Events are read in id order; at a gap (a transaction that took a lower id has not
        committed yet) reading stops until the gap fills or is older than the grace period.
        """
        queued = 0
        async with self.core.write() as tx:
            cursor = await self.store.cursor(tx.conn)
            if not await self.store.any_subscription(tx.conn):
                # nobody listens: start (or stay) at the end of the stream
                await self.store.set_cursor(tx.conn, await self.core.events.last_id(tx.conn), create=cursor is None)
                return 0
            if cursor is None:  # subscriptions filter out what happened before them
                await self.store.set_cursor(tx.conn, 0, create=True)
                cursor = 0
            rows = await self.core.events.since(tx.conn, cursor, limit)
            subs: dict[tuple[str, str], list[Subscription]] = {}
            for s in await self.store.org_subscriptions(tx.conn, {r["org_id"] for r in rows}):
                subs.setdefault((s.org_id, s.notify_type), []).append(s)
            last = cursor
            pushes: list[dict[str, Any]] = []
            for r in rows:
                if r["id"] != last + 1 and tx.now - r["create_time"] < EVENT_GAP_GRACE_MS:
                    break
                last = r["id"]
                ev = Event(r["kind"], r["org_id"], r["asset_id"], r["payload"], r["id"], r["create_time"])
                if not any(org == ev.org_id for org, _ in subs):
                    continue
                out = render(ev, await self._view_any(tx.conn, ev.org_id, ev.asset_id))
                if out is None:
                    continue
                notify_type, body = out
                text = json.dumps(body)
                for s in subs.get((ev.org_id, notify_type), []):
                    if s.create_time <= ev.time:
                        pushes.append({"subscription_id": s.subscription_id, "callback_url": s.callback_url,
                                       "body": text, "attempts": 0, "next_attempt_time": tx.now,
                                       "last_error": None, "create_time": tx.now})
            await self.store.enqueue(tx.conn, pushes)
            await self.store.set_cursor(tx.conn, last, create=False)
            queued = len(pushes)
        return queued

    async def _view_any(self, conn: AsyncConnection, org_id: str, asset_id: str | None) -> OcView | None:
        if asset_id is None:
            return None
        device = await self.core.devices.by_id(conn, asset_id)
        if device is None or device.org_id != org_id:
            return None
        product = await self.core.products.get(conn, org_id, device.product_key)
        if product is None:
            return None
        return OcView(device, product, await self.store.get(conn, asset_id))

    async def claim_pushes(self, limit: int = 20) -> list[Push]:
        lease = (self.core.settings.oceanconnect_push_timeout_s + 30) * 1000
        async with self.core.write() as tx:
            return await self.store.claim(tx.conn, tx.now, tx.now + lease, limit)

    async def push_delivered(self, push: Push) -> None:
        async with self.core.write() as tx:
            await self.store.delivered(tx.conn, push.id)

    async def push_failed(self, push: Push, error: str) -> None:
        """Retry with exponential back-off (1 s, 2 s, 4 s … capped); drop after the last attempt."""
        s = self.core.settings
        async with self.core.write() as tx:
            if push.attempts >= s.oceanconnect_push_max_attempts:
                log.warning("dropping push %s to %s after %d attempts: %s", push.id, push.callback_url,
                            push.attempts, error)
                await self.store.delivered(tx.conn, push.id)
                return
            delay = min(2 ** (push.attempts - 1), s.oceanconnect_push_backoff_max_s)
            await self.store.retry_at(tx.conn, push.id, tx.now + delay * 1000, error)

    async def queued_pushes(self) -> int:
        async with self.core.read() as conn:
            return await self.store.queued(conn)

