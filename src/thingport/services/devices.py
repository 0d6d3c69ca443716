"""The device registry: create, read, search, update, delete, enable/disable, replace, state."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto import ids
from thingport.domain import validate
from thingport.domain.errors import (
    DeviceKeyExists,
    DeviceKeyGenerationFailed,
    DeviceKeyUnchanged,
    DeviceNotFound,
    DeviceStatusInvalid,
    DomainError,
    InvalidArgument,
    LimitExceeded,
    NotGateway,
    ProductNotFound,
)
from thingport.domain.expression import Expr
from thingport.domain.models import Device, DeviceStats, I18nText, Page, Permission, Product, now_ms
from thingport.services import audit, events
from thingport.services.context import Caller, Core, Tx
from thingport.services.products import ProductService
from thingport.store.devices import NewDevice

KEY_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A device named by its identity or by its login key within a product."""

    asset_id: str | None = None
    product_key: str | None = None
    device_key: str | None = None

    def __post_init__(self) -> None:
        if not self.asset_id and not (self.product_key and self.device_key):
            raise InvalidArgument(
                "assetId: give assetId, or productKey and deviceKey, to name the device", field="assetId")

    def describe(self) -> str:
        return self.asset_id or f"{self.product_key}/{self.device_key}"


@dataclass(slots=True)
class DeviceSpec:
    product_key: str
    name: I18nText
    timezone: str
    device_key: str | None = None
    attributes: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    description: str | None = None


@dataclass(slots=True)
class DevicePatch:
    """Patch semantics: None leaves a field as it is; given maps replace the old ones whole."""

    name: I18nText | None = None
    timezone: str | None = None
    attributes: dict[str, Any] | None = None
    tags: dict[str, str] | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialEntry:
    """One credential of a device's history: a secret (``id``: its history row; "" for a device never
    rotated) or a certificate (``id``: its serial number)."""

    kind: str
    id: str
    device_key: str
    issue_time: int | None
    issued_by: str | None
    last_used: int | None
    #: When it ended or ends (a secret's grace period, a certificate's revocation or expiry); None: current.
    end_time: int | None
    end_reason: str | None


@dataclass(slots=True)
class DeviceView:
    """A device together with its product, which most answers show fields of."""

    device: Device
    product: Product


class DeviceService:
    def __init__(self, core: Core, products: ProductService) -> None:
        self.core = core
        self.products = products

    async def load(self, conn: AsyncConnection, caller: Caller, ref: DeviceRef, *,
                   for_update: bool = False) -> Device:
        device = await self.core.devices.get(conn, caller.org_id, asset_id=ref.asset_id or None,
                                             product_key=ref.product_key if not ref.asset_id else None,
                                             device_key=ref.device_key if not ref.asset_id else None,
                                             for_update=for_update)
        if device is None:
            raise DeviceNotFound(f"device {ref.describe()} cannot be found",
                                 field="assetId" if ref.asset_id else "deviceKey")
        return device

    async def view_of(self, conn: AsyncConnection, caller: Caller, device: Device) -> DeviceView:
        return DeviceView(device, await self.products.load(conn, caller, device.product_key))

    # create --------------------------------------------------------------------------------
    async def create(self, caller: Caller, spec: DeviceSpec, *, key_version: str = "v2.1") -> DeviceView:
        caller.require(Permission.DEVICE_FULL)
        now = now_ms()
        # the device and its rows are made before the writers' turn, which would wait for them
        new = self._draft(caller.org_id, spec, key_version, now)
        async with self.core.write(caller.org_id, now=now) as tx:
            return await self._create(tx, caller, spec, key_version, new=new, whole=True)

    def _draft(self, org_id: str, spec: DeviceSpec, key_version: str, now: int) -> NewDevice | None:
        """The new device and its rows; None when that needs the transaction: a key to draw, or an
        invalid field (reported in the order of the transaction's checks, ``_refuse``)."""
        if spec.device_key is None:
            return None
        try:
            key = validate.device_key(spec.device_key, version=key_version)
            timezone = validate.timezone(spec.timezone)
        except DomainError:
            return None
        return self.core.devices.draft(self._device(org_id, spec, key, timezone, now))

    @staticmethod
    def _device(org_id: str, spec: DeviceSpec, key: str, timezone: str, now: int) -> Device:
        return Device(
            asset_id=ids.asset_id(), org_id=org_id, product_key=spec.product_key, device_key=key,
            name=spec.name, secret=ids.device_secret(), description=spec.description,
            timezone=timezone, attributes=spec.attributes or {}, tags=spec.tags or {}, create_time=now,
            enabled=True, online=False, active_time=None, last_online_time=None, last_offline_time=None,
            gateway_asset_id=None, update_time=now,
        )

    async def batch_create(self, caller: Caller, specs: list[DeviceSpec | DomainError], *,
                           key_version: str = "v2.1") -> list[DeviceView | DomainError]:
        """Each item succeeds or fails on its own; a failed item leaves nothing behind."""
        caller.require(Permission.DEVICE_FULL)
        if len(specs) > self.core.settings.max_batch_size:
            raise InvalidArgument(f"deviceList: at most {self.core.settings.max_batch_size} devices per call",
                                  field="deviceList")
        results: list[DeviceView | DomainError] = []
        async with self.core.write(caller.org_id) as tx:
            for spec in specs:
                if isinstance(spec, DomainError):
                    results.append(spec)
                    continue
                try:
                    async with tx.conn.begin_nested():
                        results.append(await self._create(tx, caller, spec, key_version))
                except DomainError as err:
                    results.append(err)
        return results

    async def create_in(self, tx: Tx, caller: Caller, spec: DeviceSpec) -> DeviceView:
        """Create inside the caller's transaction, so a dialect can add its own rows atomically."""
        caller.require(Permission.DEVICE_FULL)
        return await self._create(tx, caller, spec, "v2.1")

    async def _create(self, tx: Tx, caller: Caller, spec: DeviceSpec, key_version: str, *,
                      new: NewDevice | None = None, whole: bool = False) -> DeviceView:
        """``new``: the device, drafted before the transaction (``_draft``). ``whole``: the create is
        its writer's whole work, so its statement may also carry the audit record (on PostgreSQL
        the create is then one statement after the savepoint)."""
        org_id, product_key = caller.org_id, spec.product_key
        if new is None:
            # what needs no database first, though reported in the order of the checks (_refuse)
            try:
                key = None if spec.device_key is None else validate.device_key(spec.device_key, version=key_version)
            except DomainError as err:
                await self._refuse(tx, org_id, product_key, bad_key=err)
            try:
                timezone = validate.timezone(spec.timezone)
            except DomainError as err:
                await self._refuse(tx, org_id, product_key, bad_timezone=err)
            if key is None:  # a product that does not exist has no devices: any key is free in it
                key = await self._fresh_key(tx.conn, product_key)
            new = self.core.devices.draft(self._device(org_id, spec, key, timezone, tx.now))
        device = new.device
        event = events.DeviceCreated.of(device)
        record = tx.audit_row(device.asset_id) if whole else None
        riders = [tx.event_row(event, device.asset_id)] + ([record] if record is not None else [])
        limit = self.core.settings.product_device_limit
        try:  # the product's row orders concurrent creates; the unique (product, deviceKey) index decides
            made = await self.core.devices.create(tx.conn, self.core.products, new, limit, riders)
        except IntegrityError as exc:  # the writer's savepoint takes the counted device back
            raise DeviceKeyExists(f"deviceKey: {device.device_key} exists in product {product_key}",
                                  field="deviceKey") from exc
        if made is None:
            await self._refuse(tx, org_id, product_key)
        product, (event_id, *audit_id) = made
        tx.emitted(event, device.asset_id, event_id)
        if audit_id:
            tx.audited(audit_id[0])
        return DeviceView(device, product)

    async def _refuse(self, tx: Tx, org_id: str, product_key: str, *, bad_key: DomainError | None = None,
                      bad_timezone: DomainError | None = None) -> NoReturn:
        """Raise why a create of a device of ``product_key`` is refused, in the order of the checks:
        no such product, an invalid key, a full product, an invalid timezone. Nothing was written
        (the claim counts no device it refuses)."""
        if await self.core.products.get(tx.conn, org_id, product_key) is None:
            raise ProductNotFound(f"productKey: product {product_key} does not exist", field="productKey")
        if bad_key is not None:
            raise bad_key
        limit = self.core.settings.product_device_limit
        if bad_timezone is None or await self.core.products.count_devices(tx.conn, product_key) >= limit:
            raise LimitExceeded(f"productKey: product {product_key} already has the maximum of {limit} devices",
                                field="productKey")
        raise bad_timezone

    async def _fresh_key(self, conn: AsyncConnection, product_key: str) -> str:
        for _ in range(KEY_ATTEMPTS):
            key = ids.device_key()
            if await self.core.devices.by_login(conn, product_key, key) is None:
                return key
        raise DeviceKeyGenerationFailed("deviceKey: could not generate a free device key, try again",
                                        field="deviceKey")

    # read ----------------------------------------------------------------------------------
    async def get(self, caller: Caller, ref: DeviceRef) -> DeviceView:
        caller.require(Permission.DEVICE_READ)
        if not ref.asset_id and ref.product_key and ref.device_key:
            # the hot read (get-device by key): one statement on the driver (store/driver.py)
            async with self.core.driver() as raw:
                found = await self.core.devices.view_by_key(raw, self.core.products, caller.org_id,
                                                            ref.product_key, ref.device_key)
            if found is None:
                raise DeviceNotFound(f"device {ref.describe()} cannot be found", field="deviceKey")
            return DeviceView(*found)
        async with self.core.read() as conn:
            return await self.view_of(conn, caller, await self.load(conn, caller, ref))

    async def search(self, caller: Caller, expr: Expr | None, page: Page, *,
                     gateway: DeviceRef | None = None) -> tuple[list[DeviceView], int]:
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            gateway_id = None
            if gateway is not None:
                gw = await self.view_of(conn, caller, await self.load(conn, caller, gateway))
                require_gateway(gw)
                gateway_id = gw.device.asset_id
            found, total = await self.core.devices.search(conn, caller.org_id, expr, page,
                                                          gateway_asset_id=gateway_id)
            cache: dict[str, Product] = {}
            views = []
            for d in found:
                if d.product_key not in cache:
                    cache[d.product_key] = await self.products.load(conn, caller, d.product_key)
                views.append(DeviceView(d, cache[d.product_key]))
            return views, total

    async def stats(self, caller: Caller, product_key: str | None) -> DeviceStats:
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            if product_key is not None:
                await self.products.load(conn, caller, product_key)
            return await self.core.devices.stats(conn, caller.org_id, product_key)

    # change --------------------------------------------------------------------------------
    async def update(self, caller: Caller, ref: DeviceRef, patch: DevicePatch) -> DeviceView:
        caller.require(Permission.DEVICE_FULL)
        async with self.core.write(caller.org_id) as tx:
            device = await self.load(tx.conn, caller, ref, for_update=True)
            device = replace(
                device,
                name=patch.name or device.name,
                timezone=validate.timezone(patch.timezone) if patch.timezone is not None else device.timezone,
                attributes=device.attributes if patch.attributes is None else patch.attributes,
                tags=device.tags if patch.tags is None else patch.tags,
                description=device.description if patch.description is None else patch.description,
                update_time=tx.now,
            )
            await self.core.devices.save(tx.conn, device)
            await tx.emit(events.DeviceUpdated.of(device), device.asset_id)
            return await self.view_of(tx.conn, caller, device)

    async def delete(self, caller: Caller, ref: DeviceRef) -> Device:
        caller.require(Permission.DEVICE_FULL)
        async with self.core.write(caller.org_id) as tx:
            device = await self.load(tx.conn, caller, ref, for_update=True)
            await self.delete_in(tx, device)
        return device

    async def delete_in(self, tx: Tx, device: Device) -> None:
        """Delete inside the caller's transaction (a dialect deleting several devices at once)."""
        await self.core.devices.delete(tx.conn, device.asset_id)
        await tx.emit(events.DeviceDeleted(product_key=device.product_key, device_key=device.device_key,
                                           gateway_id=device.gateway_asset_id), device.asset_id, org_id=device.org_id)

    async def set_enabled(self, caller: Caller, ref: DeviceRef, enabled: bool) -> Device:
        """Enable a disabled device, or disable an enabled one (11794 otherwise)."""
        caller.require(Permission.DEVICE_FULL)
        async with self.core.write(caller.org_id) as tx:
            device = await self.load(tx.conn, caller, ref, for_update=True)
            if device.enabled == enabled:
                raise DeviceStatusInvalid(
                    f"status: device {ref.describe()} is already {'enabled' if enabled else 'disabled'}",
                    field="status")
            await self.set_enabled_in(tx, device, enabled)
        return device

    async def set_enabled_in(self, tx: Tx, device: Device, enabled: bool) -> None:
        """The enable/disable rule every dialect applies (EnOS enable/disable, OceanConnect mute),
        inside the caller's transaction, so they cannot drift apart.

        ``device`` was loaded for update and its state differs from ``enabled``. A disabled device
        is offline at once, and ``device.disabled`` closes its live session.
        """
        device.enabled = enabled
        device.update_time = tx.now
        if not enabled and device.online:
            device.online = False
            device.last_offline_time = tx.now
        await self.core.devices.save(tx.conn, device, labels=False)
        await tx.emit((events.DeviceEnabled if enabled else events.DeviceDisabled).of(device), device.asset_id,
                      org_id=device.org_id)

    async def replace_key(self, caller: Caller, ref: DeviceRef, new_device_key: str, *,
                          key_version: str = "v2.1", grace_s: int = 0, grace_field: str = "grace") -> DeviceView:
        """Give the device a new key and secret; its identity and everything attached stay.

        The old key and secret stop working when this commits (``grace_s`` later with a grace
        period); the device is inactive again and a live session of it is closed (the
        ``device.replaced`` event; with a grace period when it ends).
        """
        caller.require(Permission.DEVICE_FULL)
        new_key = validate.device_key(new_device_key, version=key_version, field="newDeviceKey")
        validate.grace(grace_s, field=grace_field)
        async with self.core.write(caller.org_id) as tx:
            device = await self.load(tx.conn, caller, ref, for_update=True)
            if new_key == device.device_key:
                raise DeviceKeyUnchanged(f"newDeviceKey: {new_key} is the device's current key",
                                         field="newDeviceKey")
            await self.replace_key_in(tx, device, new_key, field="newDeviceKey", grace_s=grace_s, caller=caller)
            return await self.view_of(tx.conn, caller, device)

    async def replace_key_in(self, tx: Tx, device: Device, new_key: str, *, field: str,
                             deactivate: bool = True, grace_s: int = 0, caller: Caller | None = None) -> None:
        """The key-replacement rule every dialect applies (EnOS replace, OceanConnect refresh device
        key), inside the caller's transaction, so they cannot drift apart.

        ``device`` (loaded for update) gets ``new_key`` (validated by the caller; it may be the
        current one) and a new secret: the old credential stops working when the transaction
        commits, and ``device.replaced`` closes a live session. ``deactivate``: the device counts as
        never activated again (EnOS); OceanConnect keeps the activation, which its bind decides.
        Another device of the product with ``new_key``: DeviceKeyExists on ``field``.

        ``grace_s`` (checked by the caller, :func:`validate.grace`): the old key and secret keep logging
        in, and a session on them goes on, until that many seconds after the commit; the previous
        credential, with its end, is on the device's row so every node honours it. A rotation during
        a grace period ends the one before at once: there is never more than one previous credential.
        The device stays active then (its old credential is still in use). The history records who
        (``caller``) rotated it.
        """
        old = replace(device)
        taken = DeviceKeyExists(f"{field}: {new_key} exists in product {device.product_key}", field=field)
        if new_key != old.device_key and await self.core.devices.by_login(tx.conn, device.product_key, new_key):
            raise taken
        device.device_key = new_key
        device.secret = ids.device_secret()
        if grace_s == 0:
            if deactivate:
                device.active_time = None
            device.online = False
            if old.online:
                device.last_offline_time = tx.now
        device.update_time = tx.now
        until = tx.now + grace_s * 1000
        try:  # the unique (product, deviceKey) index decides a race with another writer
            async with tx.conn.begin_nested():
                await self.core.devices.save(tx.conn, device, labels=False)
        except IntegrityError as exc:
            raise taken from exc
        # without a grace period only its end is kept (now): the device has a history whose last use logins note
        await self.core.devices.set_previous(tx.conn, device.asset_id, old.device_key if grace_s else None,
                                             old.secret if grace_s else None, until)
        await self.core.credentials.rotate(tx.conn, device.org_id, device.asset_id, old.device_key, new_key, tx.now,
                                           until, actor_of(caller))
        await tx.emit(events.DeviceReplaced(product_key=old.product_key, device_key=old.device_key,
                                            new_device_key=new_key, grace_until=until if grace_s else None),
                      device.asset_id, org_id=device.org_id)

    async def credentials(self, caller: Caller, ref: DeviceRef) -> list[CredentialEntry]:
        """The device's credential history, oldest first: its secrets (which key each went with) and
        its certificates. Never a secret. A device never rotated shows its one secret, issued when
        it was created; a credential from before history was kept has no issue time or issuer."""
        caller.require(Permission.DEVICE_READ)
        async with self.core.read() as conn:
            device = await self.load(conn, caller, ref)
            rows = await self.core.credentials.list(conn, caller.org_id, device.asset_id)
            certs = await self.core.certificates.of_device(conn, caller.org_id, device.asset_id)
        out = [CredentialEntry("secret", str(r.id), r.device_key, r.issue_time, r.issued_by, r.last_used,
                               r.end_time, r.end_reason) for r in rows]
        if not rows:
            out.append(CredentialEntry("secret", "", device.device_key, device.create_time, None,
                                       device.last_online_time, None, None))
        out += [CredentialEntry("certificate", c.cert_sn, device.device_key, c.issue_time, c.issue_by, None,
                                c.revoke_time if c.revoke_time is not None else c.expire_time,
                                ("revoked" if c.revoke_time is not None else "expires"))
                for c in certs]
        return sorted(out, key=lambda e: e.issue_time or 0)

    # connectivity (called by the MQTT front door) -----------------------------------------
    async def mark_connected(self, asset_id: str) -> Device | None:
        """A device logged in: activate it on its first login, and mark it online."""
        return await self._set_online(asset_id, True)

    async def mark_disconnected(self, asset_id: str) -> Device | None:
        return await self._set_online(asset_id, False)

    async def _set_online(self, asset_id: str, online: bool) -> Device | None:
        async with self.core.write() as tx:
            device = await self.core.devices.by_id(tx.conn, asset_id, for_update=True)
            if device is None or (online and not device.enabled):
                return None
            if device.online == online and (not online or device.active_time):
                return device
            device.online = online
            if online:
                device.active_time = device.active_time or tx.now
                device.last_online_time = tx.now
            else:
                device.last_offline_time = tx.now
            await self.core.devices.save(tx.conn, device, labels=False)
            await tx.emit((events.DeviceConnected if online else events.DeviceDisconnected).of(device), asset_id,
                          org_id=device.org_id)
            return device

    async def reset_online_state(self) -> int:
        """At start-up: nobody is connected yet, so devices recorded online become offline."""
        async with self.core.write() as tx:
            return await self.core.devices.mark_all_offline(tx.conn, tx.now)


def actor_of(caller: Caller | None) -> str:
    """Who a change is recorded as made by: the audit trail's actor of the request, else the caller."""
    attempt = audit.ATTEMPT.get()
    if attempt is not None and attempt.actor:
        return attempt.actor
    if caller is not None and caller.app_key:
        return f"app:{caller.app_key}"
    return "operator"


def require_gateway(view: DeviceView) -> None:
    if not view.product.is_gateway:
        raise NotGateway(f"gateway: device {view.device.asset_id} is not a gateway", field="gateway")
