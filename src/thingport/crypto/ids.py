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


#: Byte → alphanumeric for :func:`alnum_many`: the 248 bytes below 4 × 62 map evenly (4 each); the
#: 8 above are dropped, so every character stays equally likely (rejection sampling).
_FAIR = 4 * len(ALNUM)
_TO_ALNUM = bytes(ALNUM.encode()[b % len(ALNUM)] if b < _FAIR else 0 for b in range(256))
_UNFAIR = bytes(range(_FAIR, 256))


def alnum_many(count: int, length: int) -> list[str]:
    """``count`` random alphanumeric strings of ``length``, as :func:`random_alnum` draws them, from
    one CSPRNG read: a bulk import draws millions, and one ``secrets.choice`` per character is
    most of its time."""
    need = count * length
    text = b""
    while len(text) < need:
        text += secrets.token_bytes(need - len(text) + 64).translate(_TO_ALNUM, _UNFAIR)
    chars = text[:need].decode()
    return [chars[i:i + length] for i in range(0, need, length)]


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
