"""Living Platform account rows: end users, auth codes, sessions, homes, bindings, product metadata.

What ``services/living_accounts.py`` decides on (provisioning reads bindings and product metadata
too). Owns these tables, so a class (the store rule, ``store/__init__.py``); codes and tokens are
kept as SHA-256 digests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.domain.models import Page
from thingport.store.hashes import digest
from thingport.store.schema import (
    devices,
    living_auth_codes,
    living_bindings,
    living_homes,
    living_products,
    living_sessions,
    living_users,
)


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


class LivingAccountStore:
    # users, codes, sessions -------------------------------------------------------------------
    async def insert_user(self, conn: AsyncConnection, u: User) -> None:
        await conn.execute(insert(living_users).values(identity_id=u.identity_id, org_id=u.org_id, login=u.login,
                                                       create_time=u.create_time))

    @staticmethod
    def _user(r: RowMapping) -> User:
        return User(r["identity_id"], r["org_id"], r["login"], r["create_time"])

    async def get_user(self, conn: AsyncConnection, identity_id: str) -> User | None:
        row = (await conn.execute(select(living_users).where(living_users.c.identity_id == identity_id))
               ).mappings().first()
        return self._user(row) if row else None

    async def user_by_login(self, conn: AsyncConnection, org_id: str, login: str) -> User | None:
        q = select(living_users).where(living_users.c.org_id == org_id, living_users.c.login == login)
        row = (await conn.execute(q)).mappings().first()
        return self._user(row) if row else None

    async def list_users(self, conn: AsyncConnection, org_id: str) -> list[User]:
        q = select(living_users).where(living_users.c.org_id == org_id).order_by(living_users.c.create_time)
        return [self._user(r) for r in (await conn.execute(q)).mappings()]

    async def insert_code(self, conn: AsyncConnection, code: str, identity_id: str, expire: int) -> None:
        await conn.execute(insert(living_auth_codes).values(code_hash=digest(code), identity_id=identity_id,
                                                            expire_time=expire, used_time=None))

    async def take_code(self, conn: AsyncConnection, code: str, now: int) -> str | None:
        """The identity of an unused, unexpired code, which is used up by this call; None otherwise."""
        res = await conn.execute(
            update(living_auth_codes)
            .where(living_auth_codes.c.code_hash == digest(code), living_auth_codes.c.used_time.is_(None),
                   living_auth_codes.c.expire_time > now)
            .values(used_time=now).returning(living_auth_codes.c.identity_id))
        row = res.first()
        return str(row[0]) if row else None

    async def insert_session(self, conn: AsyncConnection, token: str, refresh: str, identity_id: str, app_key: str,
                             now: int, token_expire: int, refresh_expire: int) -> None:
        await conn.execute(insert(living_sessions).values(
            token_hash=digest(token), refresh_hash=digest(refresh), identity_id=identity_id, app_key=app_key,
            create_time=now, token_expire=token_expire, refresh_expire=refresh_expire))

    @staticmethod
    def _session_q() -> Any:
        return select(living_sessions, living_users.c.org_id).join(
            living_users, living_users.c.identity_id == living_sessions.c.identity_id)

    @staticmethod
    def _session(r: RowMapping) -> Session:
        return Session(r["identity_id"], r["org_id"], r["app_key"], r["token_expire"], r["refresh_expire"])

    async def session_by_token(self, conn: AsyncConnection, token: str) -> Session | None:
        q = self._session_q().where(living_sessions.c.token_hash == digest(token))
        row = (await conn.execute(q)).mappings().first()
        return self._session(row) if row else None

    async def take_session_by_refresh(self, conn: AsyncConnection, refresh: str) -> Session | None:
        """Remove and return the session of a refresh token (a refresh token is single use)."""
        row = (await conn.execute(self._session_q().where(living_sessions.c.refresh_hash == digest(refresh)))
               ).mappings().first()
        if row is None:
            return None
        await conn.execute(delete(living_sessions).where(living_sessions.c.refresh_hash == digest(refresh)))
        return self._session(row)

    async def delete_session(self, conn: AsyncConnection, token: str) -> bool:
        res = await conn.execute(delete(living_sessions).where(living_sessions.c.token_hash == digest(token)))
        return bool(res.rowcount)

    async def delete_sessions_of(self, conn: AsyncConnection, identity_id: str) -> int:
        res = await conn.execute(delete(living_sessions).where(living_sessions.c.identity_id == identity_id))
        return int(res.rowcount or 0)

    async def sweep_sessions(self, conn: AsyncConnection, now: int) -> None:
        await conn.execute(delete(living_sessions).where(living_sessions.c.refresh_expire <= now))

    # homes ------------------------------------------------------------------------------------
    async def insert_home(self, conn: AsyncConnection, h: Home) -> None:
        await conn.execute(insert(living_homes).values(home_id=h.home_id, org_id=h.org_id, owner_id=h.owner_id,
                                                       name=h.name, create_time=h.create_time))

    @staticmethod
    def _home(r: RowMapping) -> Home:
        return Home(r["home_id"], r["org_id"], r["owner_id"], r["name"], r["create_time"])

    async def get_home(self, conn: AsyncConnection, home_id: str) -> Home | None:
        row = (await conn.execute(select(living_homes).where(living_homes.c.home_id == home_id))).mappings().first()
        return self._home(row) if row else None

    async def homes_of(self, conn: AsyncConnection, owner_id: str, page: Page) -> tuple[list[Home], int]:
        where = living_homes.c.owner_id == owner_id
        total = int((await conn.execute(select(func.count()).select_from(living_homes).where(where))).scalar_one())
        q = (select(living_homes).where(where).order_by(living_homes.c.create_time, living_homes.c.home_id)
             .limit(page.size).offset(page.offset))
        return [self._home(r) for r in (await conn.execute(q)).mappings()], total

    async def first_home(self, conn: AsyncConnection, owner_id: str) -> str | None:
        q = (select(living_homes.c.home_id).where(living_homes.c.owner_id == owner_id)
             .order_by(living_homes.c.create_time, living_homes.c.home_id).limit(1))
        return (await conn.execute(q)).scalar_one_or_none()

    async def home_device_counts(self, conn: AsyncConnection, home_id: str) -> tuple[int, int]:
        joined = living_bindings.join(devices, devices.c.asset_id == living_bindings.c.asset_id)
        q = (select(func.count(), func.coalesce(func.sum(case((devices.c.online, 1), else_=0)), 0))
             .select_from(joined).where(living_bindings.c.home_id == home_id))
        total, online = (await conn.execute(q)).one()
        return int(total), int(online)

    # bindings ---------------------------------------------------------------------------------
    @staticmethod
    def _binding(r: RowMapping) -> Binding:
        return Binding(r["asset_id"], r["identity_id"], r["org_id"], r["home_id"], bool(r["owned"]), r["bind_time"])

    async def bindings_of_device(self, conn: AsyncConnection, asset_id: str) -> list[Binding]:
        q = (select(living_bindings).where(living_bindings.c.asset_id == asset_id)
             .order_by(living_bindings.c.bind_time, living_bindings.c.identity_id))
        return [self._binding(r) for r in (await conn.execute(q)).mappings()]

    async def get_binding(self, conn: AsyncConnection, asset_id: str, identity_id: str) -> Binding | None:
        q = select(living_bindings).where(living_bindings.c.asset_id == asset_id,
                                          living_bindings.c.identity_id == identity_id)
        row = (await conn.execute(q)).mappings().first()
        return self._binding(row) if row else None

    async def put_binding(self, conn: AsyncConnection, b: Binding) -> None:
        await conn.execute(delete(living_bindings).where(living_bindings.c.asset_id == b.asset_id,
                                                         living_bindings.c.identity_id == b.identity_id))
        await conn.execute(insert(living_bindings).values(
            asset_id=b.asset_id, identity_id=b.identity_id, org_id=b.org_id, home_id=b.home_id, owned=b.owned,
            bind_time=b.bind_time))

    async def delete_binding(self, conn: AsyncConnection, asset_id: str, identity_id: str) -> None:
        await conn.execute(delete(living_bindings).where(living_bindings.c.asset_id == asset_id,
                                                         living_bindings.c.identity_id == identity_id))

    async def bindings_of_user(self, conn: AsyncConnection, identity_id: str, page: Page, *, owned: bool | None = None,
                               asset_ids: list[str] | None = None) -> tuple[list[Binding], int]:
        where = living_bindings.c.identity_id == identity_id
        if owned is not None:
            where = and_(where, living_bindings.c.owned == owned)
        if asset_ids is not None:
            where = and_(where, living_bindings.c.asset_id.in_(asset_ids))
        total = int((await conn.execute(select(func.count()).select_from(living_bindings).where(where))).scalar_one())
        q = (select(living_bindings).where(where).order_by(living_bindings.c.bind_time, living_bindings.c.asset_id)
             .limit(page.size).offset(page.offset))
        return [self._binding(r) for r in (await conn.execute(q)).mappings()], total

    async def bound_asset_ids(self, conn: AsyncConnection, identity_id: str) -> list[str]:
        q = select(living_bindings.c.asset_id).where(living_bindings.c.identity_id == identity_id)
        return [str(r[0]) for r in await conn.execute(q)]

    async def bound_any(self, conn: AsyncConnection, asset_ids: list[str]) -> set[str]:
        if not asset_ids:
            return set()
        q = select(living_bindings.c.asset_id).where(living_bindings.c.asset_id.in_(asset_ids)).distinct()
        return {str(r[0]) for r in await conn.execute(q)}

    # product metadata -------------------------------------------------------------------------
    async def product_meta(self, conn: AsyncConnection, product_key: str) -> ProductMeta:
        row = (await conn.execute(select(living_products).where(living_products.c.product_key == product_key))
               ).mappings().first()
        if row is None:
            return ProductMeta(product_key)
        return ProductMeta(row["product_key"], row["status"], row["net_type"], row["category_key"],
                           row["category_name"], row["category_id"], row["bind_window_s"],
                           bool(row["require_permit_join"]))

    async def put_product_meta(self, conn: AsyncConnection, m: ProductMeta) -> None:
        await conn.execute(delete(living_products).where(living_products.c.product_key == m.product_key))
        await conn.execute(insert(living_products).values(
            product_key=m.product_key, status=m.status, net_type=m.net_type, category_key=m.category_key,
            category_name=m.category_name, category_id=m.category_id, bind_window_s=m.bind_window_s,
            require_permit_join=m.require_permit_join))
