"""Server-generated identifiers and secrets, from the OS CSPRNG."""

from __future__ import annotations

import secrets
import string

ALNUM = string.ascii_letters + string.digits


#: Bytes below this map evenly onto ALNUM (4 × 62); the rest are drawn again, so no letter is likelier.
_EVEN = 256 - 256 % len(ALNUM)


def random_alnum(length: int) -> str:
    """Uniform alphanumerics from the CSPRNG's bytes (a ``secrets.choice`` per character costs
    several times more, and every create draws three of these)."""
    out: list[str] = []
    while len(out) < length:
        out.extend(ALNUM[b % len(ALNUM)] for b in secrets.token_bytes(length + 8) if b < _EVEN)
    return "".join(out[:length])


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
