"""Organizations, applications, access tokens and single-use nonces.

Owns these tables, so a class (the store rule, ``store/__init__.py``).
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto.keyring import Keyring
from thingport.domain.models import Application, Organization, Permission
from thingport.store.driver import Driver
from thingport.store.hashes import digest
from thingport.store.schema import access_tokens, applications, organizations, used_nonces

_UPSERT_NONCE = ("ON CONFLICT (nonce) DO UPDATE SET expire_time = EXCLUDED.expire_time "
                 "WHERE used_nonces.expire_time <= ? RETURNING nonce")
#: One nonce: taken (a row back) unless a live one holds the value.
_USE_NONCE = f"INSERT INTO used_nonces (nonce, expire_time) VALUES (?, ?) {_UPSERT_NONCE}"
#: A batch of distinct nonces in one statement (PostgreSQL): the rows back are the ones taken.
_PG_USE_NONCES = (f"INSERT INTO used_nonces (nonce, expire_time) SELECT * FROM unnest(?::varchar[], ?::bigint[]) "
                  f"{_UPSERT_NONCE}")


class AccountStore:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    # organizations -------------------------------------------------------------------------
    async def insert_org(self, conn: AsyncConnection, org: Organization) -> None:
        await conn.execute(insert(organizations).values(org_id=org.org_id, name=org.name, create_time=org.create_time))

    async def get_org(self, conn: AsyncConnection, org_id: str) -> Organization | None:
        row = (await conn.execute(select(organizations).where(organizations.c.org_id == org_id))).mappings().first()
        return Organization(row["org_id"], row["name"], row["create_time"]) if row else None

    async def list_orgs(self, conn: AsyncConnection) -> list[Organization]:
        rows = (await conn.execute(select(organizations).order_by(organizations.c.create_time))).mappings()
        return [Organization(r["org_id"], r["name"], r["create_time"]) for r in rows]

    # applications --------------------------------------------------------------------------
    def _app(self, r: RowMapping) -> Application:
        perms = frozenset(Permission(p) for p in r["permissions"].split(",") if p)
        return Application(
            app_key=r["app_key"], org_id=r["org_id"], name=r["name"],
            secret=self.keyring.decrypt(r["secret_enc"], context=f"app:{r['app_key']}"),
            permissions=perms, rsa_public_key=r["rsa_public_key"], disabled=bool(r["disabled"]),
            create_time=r["create_time"],
            previous_secret=(None if r["prev_secret_enc"] is None else
                             self.keyring.decrypt(r["prev_secret_enc"], context=f"app-prev:{r['app_key']}")),
            previous_until=r["prev_until"],
        )

    async def insert_app(self, conn: AsyncConnection, app: Application) -> None:
        await conn.execute(insert(applications).values(
            app_key=app.app_key, org_id=app.org_id, name=app.name,
            secret_enc=self.keyring.encrypt(app.secret, context=f"app:{app.app_key}"),
            permissions=",".join(sorted(p.value for p in app.permissions)),
            rsa_public_key=app.rsa_public_key, disabled=app.disabled, create_time=app.create_time,
        ))

    async def get_app(self, conn: AsyncConnection, app_key: str) -> Application | None:
        row = (await conn.execute(select(applications).where(applications.c.app_key == app_key))).mappings().first()
        return self._app(row) if row else None

    async def list_apps(self, conn: AsyncConnection, org_id: str | None) -> list[Application]:
        q = select(applications).order_by(applications.c.create_time)
        if org_id is not None:
            q = q.where(applications.c.org_id == org_id)
        return [self._app(r) for r in (await conn.execute(q)).mappings()]

    async def set_app_secret(self, conn: AsyncConnection, app_key: str, secret: str, *, previous: str | None = None,
                             until: int | None = None) -> None:
        """Store a new secret, encrypted under the master key like :meth:`insert_app`'s, and the one it
        replaces while its grace period runs (``until``; None: none is kept)."""
        prev = None if previous is None else self.keyring.encrypt(previous, context=f"app-prev:{app_key}")
        await self.update_app(conn, app_key, secret_enc=self.keyring.encrypt(secret, context=f"app:{app_key}"),
                              prev_secret_enc=prev, prev_until=until if previous is not None else None)

    async def update_app(self, conn: AsyncConnection, app_key: str, **values: object) -> None:
        await conn.execute(update(applications).where(applications.c.app_key == app_key).values(**values))

    # access tokens -------------------------------------------------------------------------
    async def current_token(self, conn: AsyncConnection, app_key: str, now: int) -> tuple[str, int] | None:
        q = (select(access_tokens).where(access_tokens.c.app_key == app_key, access_tokens.c.expire_time > now)
             .order_by(access_tokens.c.expire_time.desc()))
        row = (await conn.execute(q)).mappings().first()
        if row is None:
            return None
        return self.keyring.decrypt(row["token_enc"], context="token"), int(row["expire_time"])

    async def insert_token(self, conn: AsyncConnection, app_key: str, token: str, now: int, expire: int) -> None:
        await conn.execute(delete(access_tokens).where(access_tokens.c.expire_time <= now))
        await conn.execute(insert(access_tokens).values(
            token_hash=digest(token), token_enc=self.keyring.encrypt(token, context="token"),
            app_key=app_key, create_time=now, expire_time=expire,
        ))

    async def token_owner(self, conn: AsyncConnection, token: str, now: int) -> tuple[str, int] | None:
        """The app key a token belongs to and when it expires, or None if unknown."""
        q = select(access_tokens.c.app_key, access_tokens.c.expire_time).where(
            access_tokens.c.token_hash == digest(token))
        row = (await conn.execute(q)).first()
        return (row[0], int(row[1])) if row else None

    async def revoke_tokens(self, conn: AsyncConnection, app_key: str) -> None:
        await conn.execute(delete(access_tokens).where(access_tokens.c.app_key == app_key))

    async def cap_tokens(self, conn: AsyncConnection, app_key: str, until: int) -> None:
        """The application's access tokens end by ``until`` at the latest (a secret's grace period)."""
        t = access_tokens.c
        await conn.execute(update(access_tokens).where(t.app_key == app_key, t.expire_time > until)
                           .values(expire_time=until))

    # nonces --------------------------------------------------------------------------------
    async def use_nonces(self, raw: Driver, rows: list[tuple[str, int]], now: int) -> set[str]:
        """Record nonces (hashed, distinct) with their expiry; the ones taken, i.e. not live already
        (the others are replays). An expired row with the same value is taken over. On the driver,
        and on PostgreSQL one statement for the whole batch."""
        if raw.pg is not None:
            taken = await raw.all(_PG_USE_NONCES, [k for k, _ in rows], [e for _, e in rows], now)
            return {r[0] for r in taken}
        out = set()
        for key, expire in rows:
            if await raw.one(_USE_NONCE, key, expire, now) is not None:
                out.add(key)
        return out

    async def store_nonces(self, conn: AsyncConnection, batch: list[tuple[str, int]]) -> None:
        """Every signed write records its value with what it writes: on the driver (store/driver.py)."""
        raw = await Driver.of(conn)
        await raw.many("INSERT INTO used_nonces (nonce, expire_time) VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING",
                       batch)

    async def live_nonces(self, conn: AsyncConnection, now: int) -> list[tuple[str, int]]:
        q = select(used_nonces.c.nonce, used_nonces.c.expire_time).where(used_nonces.c.expire_time > now)
        return [(r[0], int(r[1])) for r in (await conn.execute(q)).all()]

    async def sweep_nonces(self, conn: AsyncConnection, now: int) -> int:
        result = await conn.execute(delete(used_nonces).where(used_nonces.c.expire_time <= now))
        return int(result.rowcount or 0)
