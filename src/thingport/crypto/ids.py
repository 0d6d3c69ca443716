"""Server-generated identifiers and secrets, from the OS CSPRNG."""

from __future__ import annotations

import secrets
import string

ALNUM = string.ascii_letters + string.digits


def random_alnum(length: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(length))


def product_key() -> str:
    """8 alphanumerics, as every EnOS sample shows (``2zp6A70r``)."""
    return random_alnum(8)


def asset_id() -> str:
    return random_alnum(8)


def device_key() -> str:
    return random_alnum(10)


def device_secret() -> str:
    """20 alphanumerics, as in the EnOS samples."""
    return random_alnum(20)


def product_secret() -> str:
    return random_alnum(16)


def app_key() -> str:
    """EnOS app keys and secrets are UUIDs."""
    import uuid

    return str(uuid.uuid4())


def app_secret() -> str:
    import uuid

    return str(uuid.uuid4())


def org_id() -> str:
    return "o" + secrets.token_hex(8)


def token() -> str:
    return secrets.token_hex(32)
