"""Living Platform end users of an organization: accounts, auth codes, sessions, homes, bindings.

An end user (``identityId``) belongs to one organization. The operator creates users and mints
short-lived single-use auth codes for them (the vendor's "own account system" path); an app of the
same organization exchanges a code for an iotToken session. Device access of an end user is
decided by bindings: the owner (``owned``) may manage a device, members may only see it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.domain import validate
from thingport.domain.errors import (
    DeviceNotFound,
    InvalidArgument,
    NotBound,
    NotFound,
    NotOwner,
    RefreshTokenInvalid,
    Unauthenticated,
)
from thingport.domain.models import Application, Device, Page, Product, now_ms
from thingport.services import audit, events
from thingport.services.context import Caller, Core, Tx
from thingport.services.devices import DeviceRef, DeviceService
from thingport.store.living_accounts import Binding, Home, ProductMeta, Session, User

NET_TYPES = {0: "NET_LORA", 3: "NET_WIFI", 4: "NET_ZIGBEE", 5: "NET_BT", 6: "NET_CELLULAR", 7: "NET_ETHERNET",
             8: "NET_OTHER"}
PRODUCT_STATUS = {"development": 0, "published": 1}


@dataclass(frozen=True, slots=True)
class SessionTokens:
    identity_id: str
    iot_token: str
    iot_token_expire_s: int
    refresh_token: str
    refresh_token_expire_s: int


@dataclass(frozen=True, slots=True)
class EndUser:
    """An authenticated app user: the session's identity, organization and the app it came through."""

    identity_id: str
    org_id: str
    app_key: str

    @property
    def caller(self) -> Caller:
        """Device lookups are confined to the user's organization; bindings decide the rest."""
        return Caller.operator(self.org_id)


@dataclass(slots=True)
class BoundDevice:
    binding: Binding
    device: Device
    product: Product
    meta: ProductMeta


@dataclass(slots=True)
class MetaPatch:
    """None leaves a field as it is."""

    status: str | None = None
    net_type: int | None = None
    node_type: int | None = None
    category_key: str | None = None
    category_name: str | None = None
    category_id: int | None = None
    bind_window_s: int | None = None
    require_permit_join: bool | None = None


class LivingAccountService:
    def __init__(self, core: Core, devices: DeviceService) -> None:
        self.core = core
        self.devices = devices
        self.store = core.living_accounts  # the tables this service decides on

    # operator: users and auth codes -------------------------------------------------------------
    async def create_user(self, org_id: str, login: str) -> User:
        validate.text(login, field="login", max_len=128, required=True)
        async with self.core.write(org_id) as tx:
            if await self.core.accounts.get_org(tx.conn, org_id) is None:
                raise NotFound(f"orgId: organization {org_id} does not exist", field="orgId")
            if await self.store.user_by_login(tx.conn, org_id, login) is not None:
                raise InvalidArgument(f"login: user {login} exists in organization {org_id}", field="login")
            user = User(secrets.token_hex(16), org_id, login, tx.now)
            await self.store.insert_user(tx.conn, user)
        return user

    async def list_users(self, org_id: str) -> list[User]:
        async with self.core.read() as conn:
            return await self.store.list_users(conn, org_id)

    async def mint_auth_code(self, identity_id: str) -> tuple[str, int]:
        """A single-use code for ``/account/createSessionByAuthCode``; returns ``(code, expire_time_ms)``."""
        async with self.core.write() as tx:
            if await self.store.get_user(tx.conn, identity_id) is None:
                raise NotFound(f"identityId: user {identity_id} does not exist", field="identityId")
            code = secrets.token_urlsafe(24)
            expire = tx.now + self.core.settings.living_auth_code_ttl_s * 1000
            await self.store.insert_code(tx.conn, code, identity_id, expire)
        return code, expire

    async def end_sessions(self, identity_id: str) -> int:
        """Operator: log a user out everywhere (every iotToken and refreshToken stops working)."""
        async with self.core.write() as tx:
            if await self.store.get_user(tx.conn, identity_id) is None:
                raise NotFound(f"identityId: user {identity_id} does not exist", field="identityId")
            return await self.store.delete_sessions_of(tx.conn, identity_id)

    # app: sessions ------------------------------------------------------------------------------
    async def _new_session(self, tx: Tx, identity_id: str, app: Application) -> SessionTokens:
        s = self.core.settings
        token, refresh = secrets.token_hex(16), secrets.token_hex(16)
        await self.store.insert_session(tx.conn, token, refresh, identity_id, app.app_key, tx.now,
                                   tx.now + s.living_iot_token_ttl_s * 1000,
                                   tx.now + s.living_refresh_token_ttl_s * 1000)
        return SessionTokens(identity_id, token, s.living_iot_token_ttl_s, refresh, s.living_refresh_token_ttl_s)

    async def create_session(self, app: Application, auth_code: str) -> SessionTokens:
        if not auth_code:
            raise InvalidArgument("authCode: is required", field="authCode")
        async with self.core.write(app.org_id) as tx:
            identity = await self.store.take_code(tx.conn, auth_code, tx.now)
            user = await self.store.get_user(tx.conn, identity) if identity else None
            if user is None or user.org_id != app.org_id:  # another org's code is as unknown as a wrong one
                raise InvalidArgument("authCode: unknown, expired or already used", field="authCode")
            await self.store.sweep_sessions(tx.conn, tx.now)
            return await self._new_session(tx, user.identity_id, app)

    async def refresh_session(self, app: Application, refresh_token: str, identity_id: str) -> SessionTokens:
        """A refresh token is single use: it and its iotToken are replaced by a new pair."""
        if not refresh_token:
            raise InvalidArgument("refreshToken: is required", field="refreshToken")
        async with self.core.write(app.org_id) as tx:
            old = await self.store.take_session_by_refresh(tx.conn, refresh_token)
            if (old is None or old.refresh_expire <= tx.now or old.org_id != app.org_id
                    or (identity_id and identity_id != old.identity_id)):
                raise RefreshTokenInvalid("refreshToken: unknown, expired or not of this identityId",
                                          field="refreshToken")
            return await self._new_session(tx, old.identity_id, app)

    async def invalidate_session(self, app: Application, iot_token: str, identity_id: str = "") -> None:
        if not iot_token:
            raise InvalidArgument("iotToken: is required", field="iotToken")
        async with self.core.write(app.org_id) as tx:
            found = await self.store.session_by_token(tx.conn, iot_token)
            if found is None or found.org_id != app.org_id or (identity_id and identity_id != found.identity_id):
                raise Unauthenticated("iotToken: unknown or expired")
            await self.store.delete_session(tx.conn, iot_token)

    async def authenticate(self, app: Application, iot_token: str) -> EndUser:
        """The session of an iotToken, for an app of the same organization; Unauthenticated otherwise."""
        if not iot_token:
            raise Unauthenticated("request.iotToken: is required for this API")
        async with self.core.read() as conn:
            found: Session | None = await self.store.session_by_token(conn, iot_token)
        if found is None or found.org_id != app.org_id:
            raise Unauthenticated("request.iotToken: unknown or invalidated")
        if found.token_expire <= now_ms():
            raise Unauthenticated("request.iotToken: expired; refresh the session")
        audit.identify(f"user:{found.identity_id}", found.org_id)
        return EndUser(found.identity_id, found.org_id, found.app_key)

    # homes --------------------------------------------------------------------------------------
    async def create_home(self, user: EndUser, name: str) -> Home:
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 20:
            raise InvalidArgument("name: 1-20 characters", field="name")
        async with self.core.write(user.org_id) as tx:
            home = Home(secrets.token_hex(16), user.org_id, user.identity_id, name.strip(), tx.now)
            await self.store.insert_home(tx.conn, home)
        return home

    async def homes(self, user: EndUser, page: Page) -> tuple[list[Home], int, str | None]:
        """The user's homes and which of them is current (the first one created)."""
        async with self.core.read() as conn:
            found, total = await self.store.homes_of(conn, user.identity_id, page)
            return found, total, await self.store.first_home(conn, user.identity_id)

    async def home(self, user: EndUser, home_id: str) -> tuple[Home, bool, int, int]:
        """A home with whether it is current, its device count and online device count."""
        async with self.core.read() as conn:
            home = await self.load_home(conn, user, home_id)
            total, online = await self.store.home_device_counts(conn, home_id)
            return home, await self.store.first_home(conn, user.identity_id) == home_id, total, online

    async def load_home(self, conn: AsyncConnection, user: EndUser, home_id: str | None) -> Home:
        """The user's home ``home_id``; without one, the user's current home."""
        if not home_id:
            home_id = await self.store.first_home(conn, user.identity_id)
            if home_id is None:
                raise InvalidArgument("homeId: is required (the account has no home yet)", field="homeId")
        home = await self.store.get_home(conn, home_id)
        if home is None or home.owner_id != user.identity_id:
            raise InvalidArgument(f"homeId: home {home_id} does not exist in this account", field="homeId")
        return home

    # bindings -----------------------------------------------------------------------------------
    async def device(self, conn: AsyncConnection, user: EndUser, iot_id: str, *, field: str = "iotId",
                     for_update: bool = False) -> Device:
        if not iot_id:
            raise InvalidArgument(f"{field}: is required", field=field)
        try:
            return await self.devices.load(conn, user.caller, DeviceRef(asset_id=iot_id), for_update=for_update)
        except DeviceNotFound as exc:  # another organization's device is as unknown as a missing one
            raise DeviceNotFound(f"{field}: device {iot_id} does not exist", field=field) from exc

    async def binding_of(self, conn: AsyncConnection, user: EndUser, device: Device, *, owner: bool,
                         field: str = "iotId") -> Binding:
        """The caller's binding to ``device``; 2065 if none, 2066 if ``owner`` is needed and it is shared."""
        b = await self.store.get_binding(conn, device.asset_id, user.identity_id)
        if b is None:
            raise NotBound(f"{field}: device {device.asset_id} is not bound to this account", field=field)
        if owner and not b.owned:
            raise NotOwner(f"{field}: only the owner of device {device.asset_id} may do this", field=field)
        return b

    async def bindings(self, user: EndUser, page: Page, *, owned: bool | None = None,
                       node_type: str | None = None) -> tuple[list[BoundDevice], int]:
        async with self.core.read() as conn:
            asset_ids = None
            if node_type is not None:
                gateway = node_type == "GATEWAY"
                asset_ids = []
                for aid in await self.store.bound_asset_ids(conn, user.identity_id):
                    d = await self.devices.load(conn, user.caller, DeviceRef(asset_id=aid))
                    if (await self.devices.view_of(conn, user.caller, d)).product.is_gateway == gateway:
                        asset_ids.append(aid)
            found, total = await self.store.bindings_of_user(conn, user.identity_id, page, owned=owned,
                                                        asset_ids=asset_ids)
            out = []
            for b in found:
                d = await self.devices.load(conn, user.caller, DeviceRef(asset_id=b.asset_id))
                view = await self.devices.view_of(conn, user.caller, d)
                out.append(BoundDevice(b, d, view.product, await self.store.product_meta(conn, d.product_key)))
            return out, total

    async def device_users(self, user: EndUser, iot_id: str, page: Page) -> tuple[list[tuple[Binding, User]], int]:
        """Who is bound to a device the caller is bound to."""
        async with self.core.read() as conn:
            device = await self.device(conn, user, iot_id)
            await self.binding_of(conn, user, device, owner=False)
            rows = await self.store.bindings_of_device(conn, device.asset_id)
            picked = rows[page.offset:page.offset + page.size]
            out = []
            for b in picked:
                u = await self.store.get_user(conn, b.identity_id)
                assert u is not None
                out.append((b, u))
            return out, len(rows)

    async def share(self, owner: EndUser, iot_id: str, member_identity_id: str) -> Binding:
        """The owner gives another user of the organization a member (not owner) binding."""
        async with self.core.write(owner.org_id) as tx:
            device = await self.device(tx.conn, owner, iot_id, for_update=True)
            await self.binding_of(tx.conn, owner, device, owner=True)
            member = await self.store.get_user(tx.conn, member_identity_id)
            if member is None or member.org_id != owner.org_id:
                raise InvalidArgument(f"identityId: user {member_identity_id} does not exist", field="identityId")
            if member.identity_id == owner.identity_id:
                raise InvalidArgument("identityId: the owner cannot share with themselves", field="identityId")
            home = await self.store.first_home(tx.conn, member.identity_id)
            b = Binding(device.asset_id, member.identity_id, owner.org_id, home, False, tx.now)
            await self.store.put_binding(tx.conn, b)
            await self.notify(tx, device, b, "Bind")
        return b

    async def unbind(self, user: EndUser, iot_id: str, *, unbind_sub_devices: bool = False) -> list[Binding]:
        """A member removes their own binding; the owner removes everyone's (and, for a gateway with
        ``unbind_sub_devices``, every binding of its sub-devices). Returns the removed bindings."""
        async with self.core.write(user.org_id) as tx:
            device = await self.device(tx.conn, user, iot_id, for_update=True)
            mine = await self.binding_of(tx.conn, user, device, owner=False)
            targets = [device]
            if mine.owned and unbind_sub_devices:
                subs, _ = await self.core.devices.search(tx.conn, user.org_id, None, Page(1, 100_000),
                                                         gateway_asset_id=device.asset_id)
                targets += subs
            elif unbind_sub_devices:
                raise NotOwner("unbindSubdevice: only the gateway's owner may unbind its sub-devices",
                               field="unbindSubdevice")
            removed: list[Binding] = []
            for d in targets:
                bindings = await self.store.bindings_of_device(tx.conn, d.asset_id)
                if not mine.owned:
                    bindings = [b for b in bindings if b.identity_id == user.identity_id]
                for b in bindings:
                    await self.store.delete_binding(tx.conn, d.asset_id, b.identity_id)
                    await self.notify(tx, d, b, "Unbind")
                    removed.append(b)
            return removed

    async def notify(self, tx: Tx, device: Device, b: Binding, operation: str) -> None:
        """``awss.BindNotify`` for the device (the front door publishes ``_thing/event/notify``)."""
        await tx.emit(events.LivingBindNotify(
            org_id=device.org_id, product_key=device.product_key, device_key=device.device_key,
            iot_id=device.asset_id, identity_id=b.identity_id, owned=1 if b.owned else 0,
            operation=operation), device.asset_id, org_id=device.org_id)

    # product metadata (operator) ----------------------------------------------------------------
    async def product_meta(self, org_id: str, product_key: str) -> ProductMeta:
        async with self.core.read() as conn:
            await self.devices.products.load(conn, Caller.operator(org_id), product_key)
            return await self.store.product_meta(conn, product_key)

    async def set_product_meta(self, org_id: str, product_key: str, patch: MetaPatch) -> ProductMeta:
        """Status, netType, category, bind window and permit-join rule of a product.

        nodeType is the product's type (Device = 0, Gateway = 1), so topology and filter answers can
        never disagree; a nodeType that contradicts it is refused.
        """
        async with self.core.write(org_id) as tx:
            product = await self.devices.products.load(tx.conn, Caller.operator(org_id), product_key, for_update=True)
            meta = await self.store.product_meta(tx.conn, product_key)
            if patch.status is not None:
                if patch.status not in PRODUCT_STATUS:
                    raise InvalidArgument("status: 'development' or 'published'", field="status")
                meta = replace(meta, status=PRODUCT_STATUS[patch.status])
            if patch.net_type is not None:
                if patch.net_type not in NET_TYPES:
                    raise InvalidArgument(f"netType: one of {sorted(NET_TYPES)}", field="netType")
                meta = replace(meta, net_type=patch.net_type)
            if patch.node_type is not None and patch.node_type != int(product.is_gateway):
                raise InvalidArgument(f"nodeType: product {product_key} is a {product.product_type.value} "
                                      f"(nodeType {int(product.is_gateway)})", field="nodeType")
            if patch.category_key is not None:
                meta = replace(meta, category_key=validate.text(patch.category_key, field="categoryKey", max_len=64))
            if patch.category_name is not None:
                meta = replace(meta, category_name=validate.text(patch.category_name, field="categoryName",
                                                                 max_len=128))
            if patch.category_id is not None:
                if patch.category_id < 0:
                    raise InvalidArgument("categoryId: must be 0 or more", field="categoryId")
                meta = replace(meta, category_id=patch.category_id)
            if patch.bind_window_s is not None:
                if not 1 <= patch.bind_window_s <= 86_400:
                    raise InvalidArgument("bindWindowS: 1-86400 seconds", field="bindWindowS")
                meta = replace(meta, bind_window_s=patch.bind_window_s)
            if patch.require_permit_join is not None:
                meta = replace(meta, require_permit_join=patch.require_permit_join)
            await self.store.put_product_meta(tx.conn, meta)
            await tx.emit(events.ProductUpdated(product_key=product_key, living=True))
        return meta
