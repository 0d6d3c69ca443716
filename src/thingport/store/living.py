"""Living Platform rows: end users, auth codes, sessions, homes, bindings, product metadata, bind
tokens, discovered enrollees and gateway permits. Codes and tokens are stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, case, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.domain.models import Page
from thingport.store.schema import (
    devices,
    living_auth_codes,
    living_bind_tokens,
    living_bindings,
    living_enrollees,
    living_homes,
    living_permits,
    living_products,
    living_sessions,
    living_users,
)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(slots=True)
class User:
    identity_id: str
    org_id: str
    login: str
    create_time: int


@dataclass(slots=True)
class Session:
    identity_id: str
    org_id: str
    app_key: str
    token_expire: int
    refresh_expire: int


@dataclass(slots=True)
class Home:
    home_id: str
    org_id: str
    owner_id: str
    name: str
    create_time: int


@dataclass(slots=True)
class Binding:
    asset_id: str
    identity_id: str
    org_id: str
    home_id: str | None
    owned: bool
    bind_time: int


@dataclass(slots=True)
class ProductMeta:
    """Living metadata of a product; a product without a row is in development, Wi-Fi, no category."""

    product_key: str
    status: int = 0
    net_type: int = 3
    category_key: str | None = None
    category_name: str | None = None
    category_id: int | None = None
    bind_window_s: int | None = None
    require_permit_join: bool = False


@dataclass(slots=True)
class BindToken:
    asset_id: str
    report_time: int
    expire_time: int
    used_time: int | None


@dataclass(slots=True)
class Enrollee:
    registrar_id: str
    enrollee_id: str
    org_id: str
    ssid: str
    bssid: str
    rssi: str
    type: int
    status: int
    create_time: int
    update_time: int


@dataclass(slots=True)
class Permit:
    gateway_id: str
    product_key: str | None
    time: int
    open_time: int

    def allows(self, product_key: str, now: int) -> bool:
        """0 = always, 1–65534 s from open_time, 65535 = closed; a permit naming a product admits only it."""
        if self.product_key and self.product_key != product_key:
            return False
        if self.time == 0:
            return True
        return self.time < 65535 and now < self.open_time + self.time * 1000


# users, codes, sessions -----------------------------------------------------------------------
async def insert_user(conn: AsyncConnection, u: User) -> None:
    await conn.execute(insert(living_users).values(identity_id=u.identity_id, org_id=u.org_id, login=u.login,
                                                   create_time=u.create_time))


def _user(r: RowMapping) -> User:
    return User(r["identity_id"], r["org_id"], r["login"], r["create_time"])


async def get_user(conn: AsyncConnection, identity_id: str) -> User | None:
    row = (await conn.execute(select(living_users).where(living_users.c.identity_id == identity_id))
           ).mappings().first()
    return _user(row) if row else None


async def user_by_login(conn: AsyncConnection, org_id: str, login: str) -> User | None:
    q = select(living_users).where(living_users.c.org_id == org_id, living_users.c.login == login)
    row = (await conn.execute(q)).mappings().first()
    return _user(row) if row else None


async def list_users(conn: AsyncConnection, org_id: str) -> list[User]:
    q = select(living_users).where(living_users.c.org_id == org_id).order_by(living_users.c.create_time)
    return [_user(r) for r in (await conn.execute(q)).mappings()]


async def insert_code(conn: AsyncConnection, code: str, identity_id: str, expire: int) -> None:
    await conn.execute(insert(living_auth_codes).values(code_hash=digest(code), identity_id=identity_id,
                                                        expire_time=expire, used_time=None))


async def take_code(conn: AsyncConnection, code: str, now: int) -> str | None:
    """The identity of an unused, unexpired code, which is used up by this call; None otherwise."""
    res = await conn.execute(
        update(living_auth_codes)
        .where(living_auth_codes.c.code_hash == digest(code), living_auth_codes.c.used_time.is_(None),
               living_auth_codes.c.expire_time > now)
        .values(used_time=now).returning(living_auth_codes.c.identity_id))
    row = res.first()
    return str(row[0]) if row else None


async def insert_session(conn: AsyncConnection, token: str, refresh: str, identity_id: str, app_key: str,
                         now: int, token_expire: int, refresh_expire: int) -> None:
    await conn.execute(insert(living_sessions).values(
        token_hash=digest(token), refresh_hash=digest(refresh), identity_id=identity_id, app_key=app_key,
        create_time=now, token_expire=token_expire, refresh_expire=refresh_expire))


def _session_q() -> Any:
    return select(living_sessions, living_users.c.org_id).join(
        living_users, living_users.c.identity_id == living_sessions.c.identity_id)


def _session(r: RowMapping) -> Session:
    return Session(r["identity_id"], r["org_id"], r["app_key"], r["token_expire"], r["refresh_expire"])


async def session_by_token(conn: AsyncConnection, token: str) -> Session | None:
    row = (await conn.execute(_session_q().where(living_sessions.c.token_hash == digest(token)))).mappings().first()
    return _session(row) if row else None


async def take_session_by_refresh(conn: AsyncConnection, refresh: str) -> Session | None:
    """Remove and return the session of a refresh token (a refresh token is single use)."""
    row = (await conn.execute(_session_q().where(living_sessions.c.refresh_hash == digest(refresh)))
           ).mappings().first()
    if row is None:
        return None
    await conn.execute(delete(living_sessions).where(living_sessions.c.refresh_hash == digest(refresh)))
    return _session(row)


async def delete_session(conn: AsyncConnection, token: str) -> bool:
    res = await conn.execute(delete(living_sessions).where(living_sessions.c.token_hash == digest(token)))
    return bool(res.rowcount)


async def delete_sessions_of(conn: AsyncConnection, identity_id: str) -> int:
    res = await conn.execute(delete(living_sessions).where(living_sessions.c.identity_id == identity_id))
    return int(res.rowcount or 0)


async def sweep_sessions(conn: AsyncConnection, now: int) -> None:
    await conn.execute(delete(living_sessions).where(living_sessions.c.refresh_expire <= now))


# homes ----------------------------------------------------------------------------------------
async def insert_home(conn: AsyncConnection, h: Home) -> None:
    await conn.execute(insert(living_homes).values(home_id=h.home_id, org_id=h.org_id, owner_id=h.owner_id,
                                                   name=h.name, create_time=h.create_time))


def _home(r: RowMapping) -> Home:
    return Home(r["home_id"], r["org_id"], r["owner_id"], r["name"], r["create_time"])


async def get_home(conn: AsyncConnection, home_id: str) -> Home | None:
    row = (await conn.execute(select(living_homes).where(living_homes.c.home_id == home_id))).mappings().first()
    return _home(row) if row else None


async def homes_of(conn: AsyncConnection, owner_id: str, page: Page) -> tuple[list[Home], int]:
    where = living_homes.c.owner_id == owner_id
    total = int((await conn.execute(select(func.count()).select_from(living_homes).where(where))).scalar_one())
    q = (select(living_homes).where(where).order_by(living_homes.c.create_time, living_homes.c.home_id)
         .limit(page.size).offset(page.offset))
    return [_home(r) for r in (await conn.execute(q)).mappings()], total


async def first_home(conn: AsyncConnection, owner_id: str) -> str | None:
    q = (select(living_homes.c.home_id).where(living_homes.c.owner_id == owner_id)
         .order_by(living_homes.c.create_time, living_homes.c.home_id).limit(1))
    return (await conn.execute(q)).scalar_one_or_none()


async def home_device_counts(conn: AsyncConnection, home_id: str) -> tuple[int, int]:
    joined = living_bindings.join(devices, devices.c.asset_id == living_bindings.c.asset_id)
    q = (select(func.count(), func.coalesce(func.sum(case((devices.c.online, 1), else_=0)), 0))
         .select_from(joined).where(living_bindings.c.home_id == home_id))
    total, online = (await conn.execute(q)).one()
    return int(total), int(online)


# bindings -------------------------------------------------------------------------------------
def _binding(r: RowMapping) -> Binding:
    return Binding(r["asset_id"], r["identity_id"], r["org_id"], r["home_id"], bool(r["owned"]), r["bind_time"])


async def bindings_of_device(conn: AsyncConnection, asset_id: str) -> list[Binding]:
    q = (select(living_bindings).where(living_bindings.c.asset_id == asset_id)
         .order_by(living_bindings.c.bind_time, living_bindings.c.identity_id))
    return [_binding(r) for r in (await conn.execute(q)).mappings()]


async def get_binding(conn: AsyncConnection, asset_id: str, identity_id: str) -> Binding | None:
    q = select(living_bindings).where(living_bindings.c.asset_id == asset_id,
                                      living_bindings.c.identity_id == identity_id)
    row = (await conn.execute(q)).mappings().first()
    return _binding(row) if row else None


async def put_binding(conn: AsyncConnection, b: Binding) -> None:
    await conn.execute(delete(living_bindings).where(living_bindings.c.asset_id == b.asset_id,
                                                     living_bindings.c.identity_id == b.identity_id))
    await conn.execute(insert(living_bindings).values(
        asset_id=b.asset_id, identity_id=b.identity_id, org_id=b.org_id, home_id=b.home_id, owned=b.owned,
        bind_time=b.bind_time))


async def delete_binding(conn: AsyncConnection, asset_id: str, identity_id: str) -> None:
    await conn.execute(delete(living_bindings).where(living_bindings.c.asset_id == asset_id,
                                                     living_bindings.c.identity_id == identity_id))


async def bindings_of_user(conn: AsyncConnection, identity_id: str, page: Page, *, owned: bool | None = None,
                           asset_ids: list[str] | None = None) -> tuple[list[Binding], int]:
    where = living_bindings.c.identity_id == identity_id
    if owned is not None:
        where = and_(where, living_bindings.c.owned == owned)
    if asset_ids is not None:
        where = and_(where, living_bindings.c.asset_id.in_(asset_ids))
    total = int((await conn.execute(select(func.count()).select_from(living_bindings).where(where))).scalar_one())
    q = (select(living_bindings).where(where).order_by(living_bindings.c.bind_time, living_bindings.c.asset_id)
         .limit(page.size).offset(page.offset))
    return [_binding(r) for r in (await conn.execute(q)).mappings()], total


async def bound_asset_ids(conn: AsyncConnection, identity_id: str) -> list[str]:
    q = select(living_bindings.c.asset_id).where(living_bindings.c.identity_id == identity_id)
    return [str(r[0]) for r in await conn.execute(q)]


async def bound_any(conn: AsyncConnection, asset_ids: list[str]) -> set[str]:
    if not asset_ids:
        return set()
    q = select(living_bindings.c.asset_id).where(living_bindings.c.asset_id.in_(asset_ids)).distinct()
    return {str(r[0]) for r in await conn.execute(q)}


# product metadata -----------------------------------------------------------------------------
async def product_meta(conn: AsyncConnection, product_key: str) -> ProductMeta:
    row = (await conn.execute(select(living_products).where(living_products.c.product_key == product_key))
           ).mappings().first()
    if row is None:
        return ProductMeta(product_key)
    return ProductMeta(row["product_key"], row["status"], row["net_type"], row["category_key"], row["category_name"],
                       row["category_id"], row["bind_window_s"], bool(row["require_permit_join"]))


async def put_product_meta(conn: AsyncConnection, m: ProductMeta) -> None:
    await conn.execute(delete(living_products).where(living_products.c.product_key == m.product_key))
    await conn.execute(insert(living_products).values(
        product_key=m.product_key, status=m.status, net_type=m.net_type, category_key=m.category_key,
        category_name=m.category_name, category_id=m.category_id, bind_window_s=m.bind_window_s,
        require_permit_join=m.require_permit_join))


# bind tokens ----------------------------------------------------------------------------------
async def put_bind_token(conn: AsyncConnection, asset_id: str, token: str, now: int, expire: int) -> None:
    """The device's latest token replaces any earlier one."""
    await conn.execute(delete(living_bind_tokens).where(living_bind_tokens.c.asset_id == asset_id))
    await conn.execute(insert(living_bind_tokens).values(asset_id=asset_id, token_hash=digest(token.upper()),
                                                         report_time=now, expire_time=expire, used_time=None))


async def bind_token(conn: AsyncConnection, token: str) -> BindToken | None:
    q = select(living_bind_tokens).where(living_bind_tokens.c.token_hash == digest(token.upper()))
    row = (await conn.execute(q)).mappings().first()
    if row is None:
        return None
    return BindToken(row["asset_id"], row["report_time"], row["expire_time"], row["used_time"])


async def use_bind_token(conn: AsyncConnection, asset_id: str, now: int) -> bool:
    res = await conn.execute(update(living_bind_tokens)
                             .where(living_bind_tokens.c.asset_id == asset_id, living_bind_tokens.c.used_time.is_(None))
                             .values(used_time=now))
    return bool(res.rowcount)


# enrollees ------------------------------------------------------------------------------------
def _enrollee(r: RowMapping) -> Enrollee:
    return Enrollee(r["registrar_id"], r["enrollee_id"], r["org_id"], r["ssid"], r["bssid"], r["rssi"], r["type"],
                    r["status"], r["create_time"], r["update_time"])


async def put_enrollee(conn: AsyncConnection, e: Enrollee) -> None:
    """A repeated report refreshes the radio facts and keeps the status and first-seen time."""
    old = await get_enrollee(conn, e.registrar_id, e.enrollee_id)
    if old is None:
        await conn.execute(insert(living_enrollees).values(
            registrar_id=e.registrar_id, enrollee_id=e.enrollee_id, org_id=e.org_id, ssid=e.ssid, bssid=e.bssid,
            rssi=e.rssi, type=e.type, status=e.status, create_time=e.create_time, update_time=e.update_time))
        return
    await conn.execute(update(living_enrollees).where(
        living_enrollees.c.registrar_id == e.registrar_id, living_enrollees.c.enrollee_id == e.enrollee_id
    ).values(ssid=e.ssid, bssid=e.bssid, rssi=e.rssi, type=e.type, update_time=e.update_time))


async def get_enrollee(conn: AsyncConnection, registrar_id: str, enrollee_id: str) -> Enrollee | None:
    q = select(living_enrollees).where(living_enrollees.c.registrar_id == registrar_id,
                                       living_enrollees.c.enrollee_id == enrollee_id)
    row = (await conn.execute(q)).mappings().first()
    return _enrollee(row) if row else None


async def enrollees_of_registrars(conn: AsyncConnection, registrar_ids: list[str], page: Page,
                                  enrollee_products: list[str] | None = None) -> tuple[list[Enrollee], int]:
    where: ColumnElement[bool] = living_enrollees.c.registrar_id.in_(registrar_ids)
    joined: FromClause = living_enrollees
    if enrollee_products is not None:
        joined = living_enrollees.join(devices, devices.c.asset_id == living_enrollees.c.enrollee_id)
        where = and_(where, devices.c.product_key.in_(enrollee_products))
    total = int((await conn.execute(select(func.count()).select_from(joined).where(where))).scalar_one())
    q = (select(living_enrollees).select_from(joined).where(where)
         .order_by(living_enrollees.c.update_time.desc(), living_enrollees.c.enrollee_id)
         .limit(page.size).offset(page.offset))
    return [_enrollee(r) for r in (await conn.execute(q)).mappings()], total


async def enrollee_rows(conn: AsyncConnection, enrollee_id: str) -> list[Enrollee]:
    q = select(living_enrollees).where(living_enrollees.c.enrollee_id == enrollee_id)
    return [_enrollee(r) for r in (await conn.execute(q)).mappings()]


async def set_enrollee_status(conn: AsyncConnection, registrar_id: str, enrollee_id: str, status: int,
                              now: int) -> None:
    await conn.execute(update(living_enrollees).where(
        living_enrollees.c.registrar_id == registrar_id, living_enrollees.c.enrollee_id == enrollee_id
    ).values(status=status, update_time=now))


async def forget_enrollee(conn: AsyncConnection, enrollee_id: str) -> None:
    """A bound device is provisioned: it is no longer waiting to be discovered."""
    await conn.execute(delete(living_enrollees).where(living_enrollees.c.enrollee_id == enrollee_id))


# permits --------------------------------------------------------------------------------------
async def put_permit(conn: AsyncConnection, p: Permit) -> None:
    await conn.execute(delete(living_permits).where(living_permits.c.gateway_id == p.gateway_id))
    await conn.execute(insert(living_permits).values(gateway_id=p.gateway_id, product_key=p.product_key,
                                                     time=p.time, open_time=p.open_time))


async def get_permit(conn: AsyncConnection, gateway_id: str) -> Permit | None:
    row = (await conn.execute(select(living_permits).where(living_permits.c.gateway_id == gateway_id))
           ).mappings().first()
    return Permit(row["gateway_id"], row["product_key"], row["time"], row["open_time"]) if row else None
