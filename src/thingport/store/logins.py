"""What device logins are checked against, read in bulk for the login cache (``services/credentials.py``).

Reads the devices' and products' tables, owning none, so functions (the store rule,
``store/__init__.py``). Only the columns a login needs are read, and secrets are decrypted with the
contexts of :data:`thingport.store.rekey.SECRET_COLUMNS`, the catalogue every ciphertext column is in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto.keyring import Keyring, KeyringError
from thingport.domain.models import ProductType
from thingport.store.rekey import SECRET_COLUMNS
from thingport.store.schema import devices, products


@dataclass(frozen=True, slots=True)
class ProductLoginRow:
    org_id: str
    product_key: str
    secret: str | None  # None: the keyring cannot decrypt it (``unreadable=True``)
    is_gateway: bool
    dynamic_activate_enabled: bool
    #: Its devices log in with a client certificate on the TLS listener (docs/certificates.md).
    bidirectional_auth: bool = False


@dataclass(frozen=True, slots=True)
class DeviceLoginRow:
    asset_id: str
    org_id: str
    product_key: str
    device_key: str
    secret: str | None  # as ProductLoginRow's
    enabled: bool
    active: bool
    #: The credential a rotation with a grace period replaced: key, secret, end (ms); None if none.
    previous: tuple[str, str, int] | None = None
    #: Rotated at least once, so it has a credential history whose last use a login updates.
    rotated: bool = False


def _context(table: Table, key: str, column: str = "secret_enc") -> str:
    prefix = next(p for t, _, col, p in SECRET_COLUMNS if t is table and col == column)
    return prefix + key


async def product_logins(conn: AsyncConnection, keyring: Keyring, product_key: str | None = None, *,
                         unreadable: bool = False) -> list[ProductLoginRow]:
    """Every product (or the one named), as logins see it. ``unreadable``: a secret the keyring cannot
    decrypt is None rather than a :class:`KeyringError`."""
    c = products.c
    q = select(c.org_id, c.product_key, c.secret_enc, c.product_type, c.dynamic_activate_enabled,
               c.bidirectional_auth)
    if product_key is not None:
        q = q.where(c.product_key == product_key)
    return [ProductLoginRow(r.org_id, r.product_key, _decrypt(keyring, r.secret_enc, _context(products, r.product_key),
                                                               unreadable),
                            r.product_type == ProductType.GATEWAY.value, bool(r.dynamic_activate_enabled),
                            bool(r.bidirectional_auth))
            for r in await conn.execute(q)]


async def device_logins(conn: AsyncConnection, keyring: Keyring, *, after: str = "", limit: int = 5000,
                        asset_id: str | None = None, login: tuple[str, str] | None = None,
                        unreadable: bool = False) -> list[DeviceLoginRow]:
    """Devices as logins see them: a page in asset-id order after ``after``, or the one device named by
    ``asset_id`` or by ``login`` (its product and key). ``unreadable`` as for :func:`product_logins`."""
    c = devices.c
    q = select(c.asset_id, c.org_id, c.product_key, c.device_key, c.secret_enc, c.enabled, c.active_time,
               c.prev_device_key, c.prev_secret_enc, c.prev_until)
    if asset_id is not None:
        q = q.where(c.asset_id == asset_id)
    elif login is not None:
        q = q.where(c.product_key == login[0], c.device_key == login[1])
    else:
        q = q.where(c.asset_id > after).order_by(c.asset_id).limit(limit)
    rows = (await conn.execute(q)).all()
    if not rows and login is not None:  # the key a rotation replaced, in its grace period (no other has it)
        rows = (await conn.execute(select(*q.selected_columns).where(
            c.product_key == login[0], c.prev_device_key == login[1], c.prev_until.is_not(None)))).all()
    return [DeviceLoginRow(r.asset_id, r.org_id, r.product_key, r.device_key,
                           _decrypt(keyring, r.secret_enc, _context(devices, r.asset_id), unreadable), bool(r.enabled),
                           r.active_time is not None, _previous(keyring, r, unreadable), r.prev_until is not None)
            for r in rows]


def _previous(keyring: Keyring, r: Any, unreadable: bool) -> tuple[str, str, int] | None:
    if r.prev_secret_enc is None or r.prev_until is None:
        return None
    secret = _decrypt(keyring, r.prev_secret_enc, _context(devices, r.asset_id, "prev_secret_enc"), unreadable)
    return None if secret is None else (r.prev_device_key, secret, int(r.prev_until))


def _decrypt(keyring: Keyring, token: str, context: str, unreadable: bool) -> str | None:
    try:
        return keyring.decrypt(token, context=context)
    except KeyringError:
        if unreadable:
            return None
        raise
