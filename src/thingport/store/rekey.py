"""Re-encrypt every stored secret under the keyring's current primary key.

One operation across other stores' tables, owning none, so a function (the store rule,
``store/__init__.py``).
"""

from __future__ import annotations

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto.keyring import Keyring
from thingport.store.schema import access_tokens, applications, device_cas, devices, oc_devices, products

#: Every ciphertext column: table, primary-key column, ciphertext column, associated-data prefix
#: ("" = fixed context). A secret column missing here becomes unreadable after a rotation, which
#: ``tests/store/test_secrets_at_rest.py`` checks against the schema's ``*_enc`` columns.
SECRET_COLUMNS: list[tuple[Table, str, str, str]] = [
    (applications, "app_key", "secret_enc", "app:"),
    (applications, "app_key", "prev_secret_enc", "app-prev:"),
    (products, "product_key", "secret_enc", "product:"),
    (devices, "asset_id", "secret_enc", "device:"),
    (devices, "asset_id", "prev_secret_enc", "device-prev:"),
    (access_tokens, "token_hash", "token_enc", ""),
    (oc_devices, "asset_id", "verify_code_enc", "oc-verify:"),
    (oc_devices, "asset_id", "psk_enc", "oc-psk:"),
    (device_cas, "ca_id", "key_enc", "device-ca:"),
]


def _context(prefix: str, key: str) -> str:
    return prefix + key if prefix else "token"


async def reencrypt_all(conn: AsyncConnection, keyring: Keyring) -> int:
    """Returns how many secrets were re-encrypted (those not under the primary key already)."""
    count = 0
    for table, pk, col, prefix in SECRET_COLUMNS:
        rows = (await conn.execute(select(table.c[pk], table.c[col]))).all()
        for key, token in rows:
            if token is None or keyring.key_id_of(token) == keyring.primary:  # optional secrets may be absent
                continue
            plain = keyring.decrypt(token, context=_context(prefix, key))
            new = keyring.encrypt(plain, context=_context(prefix, key))
            await conn.execute(update(table).where(table.c[pk] == key).values({col: new}))
            count += 1
    return count
