"""The SHA-256 digest the stores keep of tokens and codes: a stolen database reveals none, and a
presented value is still found by one indexed lookup. A shared helper (it owns no table), so a function."""

from __future__ import annotations

import hashlib


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
