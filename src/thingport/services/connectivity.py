"""What devices do over MQTT, decided once for every front door (embedded broker or external hooks).

Logins, gateways vouching for their sub-devices, registration through a gateway, topology reports.
The front door parses the wire and calls these; they know nothing of topics or CONNACK codes.

A *signed* login or request verifies against the device secret (static) or, where the product
allows dynamic activation and the device was never activated, the product secret. The family of
the signature (EnOS plain hash or Alink HMAC, :mod:`thingport.crypto.device_sign`) is returned so
the front door can answer in the same dialect.

A login reads nothing: it is checked against :mod:`thingport.services.credentials`, and what it
changes (online state, activation, the login events) is written in batches by
:mod:`thingport.services.presence`, the activation before the device is told it got in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from thingport.crypto import device_sign
from thingport.crypto.device_sign import Family
from thingport.domain.errors import (
    DeviceNotFound,
    DeviceStatusInvalid,
    InvalidArgument,
    TopologyConflict,
    Unauthenticated,
)
from thingport.domain.models import Device, I18nText, Product
from thingport.services import events
from thingport.services.context import Caller, Core
from thingport.services.credentials import Credentials, LoginRecord, ProductLogin
from thingport.services.devices import DeviceRef, DeviceService, DeviceSpec
from thingport.services.presence import Presence
from thingport.services.provisioning import ProvisioningService
from thingport.services.topology import TopologyService

DEFAULT_TIMEZONE = "+00:00"


@dataclass(frozen=True, slots=True)
class Credential:
    """A device's claim: its key, product, what it signed, how, and the signature."""

    product_key: str
    device_key: str
    fields: dict[str, str]  # signed besides the device key: clientId, productKey, timestamp ...
    method: str
    sign: str = field(repr=False)
    #: "2" = device secret; "3" = EnOS dynamic activation with the product secret.
    secure_mode: str = "2"
    #: The connection presented a certificate the certificate service matched to this device.
    certified: bool = False


@dataclass(frozen=True, slots=True)
class DeviceLogin:
    device: LoginRecord
    product: ProductLogin
    family: Family
    #: Logged in with the product secret: the device must be handed its own secret now.
    activating: bool = False
    #: The login activated the device and wrote it online with the activation (``online=True``).
    online: bool = False
    #: Logged in with the credential a rotation replaced: when its grace period ends (ms), and the
    #: session with it.
    grace_end: int | None = None


@dataclass(frozen=True, slots=True)
class Registered:
    device: Device
    product: Product


class ConnectivityService:
    def __init__(self, core: Core, devices: DeviceService, topology: TopologyService,
                 provisioning: ProvisioningService) -> None:
        self.core = core
        self.devices = devices
        self.topology = topology
        self.provisioning = provisioning
        self.credentials = Credentials(core)
        self.presence = Presence(core)

    # logins --------------------------------------------------------------------------------
    async def login(self, cred: Credential, *, dynamic: bool, online: bool = False) -> DeviceLogin:
        """Check a device's signed login. ``dynamic``: the scheme allows the product secret.

        A device's first login is recorded (activation) before this returns; with ``online``, the
        device's going online in the same write (then :meth:`connected` need not follow).
        """
        record = await self.credentials.find(cred.product_key, cred.device_key)
        if record is None:
            raise _not_found(cred.product_key, cred.device_key)
        login = self._verify(record, cred, dynamic=dynamic)
        _require_certificate(record, cred)
        self._used(login)
        if await self._activate(record, online):
            return replace(login, online=True)
        return login

    async def login_certified(self, product_key: str, device_key: str, *, online: bool = False) -> DeviceLogin:
        """A login by client certificate alone (no signed password): the certificate service already
        matched the certificate to this device; it must exist and be enabled."""
        record = await self.credentials.find(product_key, device_key)
        if record is None:
            raise _not_found(product_key, device_key)
        if not record.enabled:
            raise DeviceStatusInvalid(f"deviceKey: {device_key} is disabled", field="deviceKey")
        login = DeviceLogin(record, record.product, record.family or "enos")
        if await self._activate(record, online):
            return replace(login, online=True)
        return login

    def login_now(self, cred: Credential, *, dynamic: bool) -> DeviceLogin | None:
        """:meth:`login` when it needs neither a read nor a write (the device is in memory and active),
        else None without checking anything: then :meth:`login` decides."""
        record = self.credentials.cached(cred.product_key, cred.device_key)
        if record is None or not record.active:
            return None
        login = self._verify(record, cred, dynamic=dynamic)
        _require_certificate(record, cred)
        self._used(login)
        return login

    def _used(self, login: DeviceLogin) -> None:
        """A rotated device's credential history notes the last use of the secret that logged in (with
        the next presence batch); a device never rotated has no history, and costs nothing."""
        if login.device.rotated and not login.activating:
            self.presence.used(login.device.asset_id, login.grace_end is not None)

    async def activate(self, product_key: str, device_key: str, *, online: bool = False) -> bool:
        """Record a device's first login (any scheme) before the device is told it got in; True when
        that wrote it online too (``online``)."""
        record = await self.credentials.find(product_key, device_key)
        if record is None:
            raise _not_found(product_key, device_key)
        return await self._activate(record, online)

    async def _activate(self, record: LoginRecord, online: bool) -> bool:
        if record.active:
            return False
        if not await self.presence.activate(record.asset_id, online=online):  # deleted or disabled since
            raise DeviceStatusInvalid(f"deviceKey: {record.device_key} is disabled", field="deviceKey")
        record.active = True
        return online

    def connected(self, asset_id: str) -> None:
        """The device's session began: online, written with the next batch."""
        self.presence.connected(asset_id)

    def disconnected(self, asset_id: str) -> None:
        self.presence.disconnected(asset_id)

    async def login_by_id(self, asset_id: str) -> tuple[Device, Product] | None:
        """A device named by its identity alone (OceanConnect deviceId logins)."""
        async with self.core.read() as conn:
            device = await self.core.devices.by_id(conn, asset_id)
            if device is None:
                return None
            product = await self.core.products.get(conn, device.org_id, device.product_key)
        return (device, product) if product is not None else None

    async def device_by_key(self, product_key: str, device_key: str) -> tuple[Device, Product] | None:
        """A device named by its product and key, unchecked (an external broker already logged it in)."""
        async with self.core.read() as conn:
            try:
                return await self._find(conn, product_key, device_key)
            except DeviceNotFound:
                return None

    async def register(self, product_key: str, device_key: str, random: str, method: str,
                       sign: str) -> Registered:
        """Alink dynamic registration: a pre-registered, never activated device gets its secret.

        The device proves it knows the product secret by signing ``deviceName``, ``productKey``
        and ``random`` with it (docs/reference/living.md §4.2).
        """
        async with self.core.read() as conn:
            device, product = await self._find(conn, product_key, device_key)
        if not product.dynamic_activate_enabled:
            raise Unauthenticated(f"productKey: product {product_key} does not allow dynamic registration",
                                  field="productKey")
        fields = {"productKey": product_key, "random": random}
        if device_sign.verify(product.secret, fields, device_key, method, sign) is None:
            raise Unauthenticated("sign: does not match the product secret", field="sign")
        if device.active_time:
            raise DeviceStatusInvalid(f"deviceName: {device_key} is already activated", field="deviceName")
        return Registered(device, product)

    def _verify(self, device: LoginRecord, cred: Credential, *, dynamic: bool) -> DeviceLogin:
        """The signature against the device secret (the family it used last time first), then,
        where allowed, the product secret: one digest for a good login, two per secret for a bad one."""
        if not device.enabled:
            raise DeviceStatusInvalid(f"deviceKey: {device.device_key} is disabled", field="deviceKey")
        product = device.product
        family = None
        if cred.device_key == device.device_key:
            family = device_sign.verify(device.secret, cred.fields, device.device_key, cred.method, cred.sign,
                                        device.family)
        if family is not None:
            device.family = family
            return DeviceLogin(device, product, family)
        previous = device.previous_secret(cred.device_key)
        if previous is not None:
            family = device_sign.verify(previous[0], cred.fields, cred.device_key, cred.method, cred.sign,
                                        device.family)
            if family is not None:
                return DeviceLogin(device, product, family, grace_end=previous[1])
        if dynamic and cred.secure_mode == "3" and product.dynamic_activate_enabled:
            family = device_sign.verify(product.secret, cred.fields, device.device_key, cred.method, cred.sign,
                                        device.family)
            if family is not None:
                if device.active:
                    raise DeviceStatusInvalid(
                        f"deviceKey: {device.device_key} is already activated; log in with its device secret",
                        field="deviceKey")
                return DeviceLogin(device, product, family, activating=True)
        if device_sign.algorithm(cred.method) is None:
            raise InvalidArgument(f"signMethod: {cred.method!r} is not one of sha1, sha256, md5 "
                                  "(or their hmac names)", field="signMethod")
        raise Unauthenticated("sign: does not match the device's credentials", field="sign")

    async def _find(self, conn: Any, product_key: str, device_key: str) -> tuple[Device, Product]:
        device = await self.core.devices.by_login(conn, product_key, device_key)
        product = None if device is None else await self.core.products.get(conn, device.org_id, product_key)
        if device is None or product is None:
            raise _not_found(product_key, device_key)
        return device, product

    # gateways ------------------------------------------------------------------------------
    async def sub_login(self, gateway_id: str, cred: Credential) -> DeviceLogin:
        """A gateway logs in one of its sub-devices; the sub-device must be in its topology."""
        async with self.core.read() as conn:
            gateway = await self._device(conn, gateway_id)
            device, product = await self._find(conn, cred.product_key, cred.device_key)
        if device.org_id != gateway.org_id or device.gateway_asset_id != gateway.asset_id:
            raise TopologyConflict(f"deviceKey: {cred.device_key} is not a sub-device of this gateway",
                                   field="deviceKey")
        login = self._verify(LoginRecord.of(device, product), cred, dynamic=True)
        if not await self._activate(login.device, online=True):
            self.presence.connected(device.asset_id)
        return login

    async def add_topology(self, gateway_id: str, creds: list[Credential]) -> list[Device]:
        """Attach sub-devices the gateway proves it knows (each signed with its own secret).

        All or nothing; a product that requires permit-join needs the gateway's open permit
        (:meth:`ProvisioningService.check_join`), whichever family the gateway speaks.
        """
        for product_key in dict.fromkeys(c.product_key for c in creds):
            await self.provisioning.check_join(gateway_id, product_key)
        subs: list[Device] = []
        async with self.core.read() as conn:
            gateway = await self._device(conn, gateway_id)
            for cred in creds:
                device, product = await self._find(conn, cred.product_key, cred.device_key)
                if device.org_id != gateway.org_id:
                    raise DeviceNotFound(f"deviceKey: no device {cred.device_key} in product {cred.product_key}",
                                         field="deviceKey")
                self._verify(LoginRecord.of(device, product), cred, dynamic=False)
                subs.append(device)
        await self.topology.add_sub_devices(
            self._caller(gateway), DeviceRef(asset_id=gateway.asset_id),
            [DeviceRef(asset_id=d.asset_id) for d in subs], origin=gateway.asset_id)
        return subs

    async def remove_topology(self, gateway_id: str, refs: list[tuple[str, str]]) -> list[Device]:
        devices: list[Device] = []
        async with self.core.read() as conn:
            gateway = await self._device(conn, gateway_id)
            for pk, dk in refs:
                devices.append(await self._org_device(conn, gateway.org_id, pk, dk, "deviceKey"))
        await self.topology.remove_sub_devices(
            self._caller(gateway), DeviceRef(asset_id=gateway.asset_id),
            [DeviceRef(asset_id=d.asset_id) for d in devices], origin=gateway.asset_id)
        return devices

    async def sub_devices(self, gateway_asset_id: str) -> list[Device]:
        async with self.core.read() as conn:
            return await self.core.devices.sub_devices(conn, gateway_asset_id)

    async def register_devices(self, gateway_id: str, specs: list[DeviceSpec]) -> list[Device]:
        """``thing.device.register`` from a device: create devices in the gateway's organization."""
        async with self.core.read() as conn:
            gateway = await self._device(conn, gateway_id)
        created: list[Device] = []
        for spec in specs:
            view = await self.devices.create(self._caller(gateway), spec)
            created.append(view.device)
        return created

    async def sub_register(self, gateway_id: str, refs: list[tuple[str, str]]) -> list[Device]:
        """Alink ``thing/sub/register``: hand a gateway the secrets of sub-devices it may register.

        Allowed only where the product allows dynamic registration and the device was never
        activated, the same rule as :meth:`register`; a device that does not exist yet is created
        (``deviceName`` as its key) in the gateway's organization.
        """
        async with self.core.read() as conn:
            gateway = await self._device(conn, gateway_id)
        caller = self._caller(gateway)
        out: list[Device] = []
        for pk, dk in refs:
            async with self.core.read() as conn:
                product = await self.core.products.get(conn, gateway.org_id, pk)
                device = await self.core.devices.by_login(conn, pk, dk)
            if product is None:
                raise DeviceNotFound(f"productKey: no product {pk}", field="productKey")
            if not product.dynamic_activate_enabled:
                raise Unauthenticated(f"productKey: product {pk} does not allow dynamic registration",
                                      field="productKey")
            if device is None:
                device = (await self.devices.create(
                    caller, DeviceSpec(pk, I18nText(dk), DEFAULT_TIMEZONE, device_key=dk))).device
            elif device.org_id != gateway.org_id or device.active_time:
                raise DeviceStatusInvalid(f"deviceName: {dk} is already activated", field="deviceName")
            out.append(device)
        return out

    async def report_found(self, gateway_id: str, refs: list[tuple[str, str]]) -> list[Device]:
        """``thing/list/found``: a gateway saw these sub-devices; recorded as an event for apps."""
        found: list[Device] = []
        async with self.core.read() as conn:
            gateway = await self._device(conn, gateway_id)
            for pk, dk in refs:
                found.append(await self._org_device(conn, gateway.org_id, pk, dk, "deviceName"))
        async with self.core.write(gateway.org_id) as tx:
            await tx.emit(events.SubDevicesFound(sub_devices=[events.SubDevice.of(d) for d in found]),
                          gateway.asset_id)
        return found

    async def _org_device(self, conn: Any, org_id: str, product_key: str, device_key: str, field: str) -> Device:
        """A device a gateway names by key; one of another organization is as unknown as a missing one."""
        device = await self.core.devices.by_login(conn, product_key, device_key)
        if device is None or device.org_id != org_id:
            raise DeviceNotFound(f"{field}: no device {device_key} in product {product_key}", field=field)
        return device

    async def _device(self, conn: Any, asset_id: str) -> Device:
        device = await self.core.devices.by_id(conn, asset_id)
        if device is None:
            raise DeviceNotFound(f"assetId: device {asset_id} no longer exists", field="assetId")
        return device

    @staticmethod
    def _caller(device: Device) -> Caller:
        """A device acts within its own organization, as the platform (no application)."""
        return Caller.operator(device.org_id)


def _not_found(product_key: str, device_key: str) -> DeviceNotFound:
    return DeviceNotFound(f"deviceKey: no device {device_key} in product {product_key}", field="deviceKey")


def _require_certificate(record: LoginRecord, cred: Credential) -> None:
    """A product with bi-directional authentication takes its devices' logins only with their
    certificate (the TLS listener, docs/certificates.md); the secret alone is not enough."""
    if record.product.bidirectional_auth and not cred.certified:
        raise Unauthenticated(f"productKey: product {record.product_key} requires a device certificate "
                              "(bi-directional authentication) on the TLS listener", field="productKey")
