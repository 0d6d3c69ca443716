"""Console sign-in: a signed session cookie, and the CSRF token every form and htmx action carries.

The cookie is stateless: ``<payload>.<mac>`` where the payload holds a random session id and an
expiry and the MAC is HMAC-SHA256 under a key derived from the operator token. Nothing is stored,
so a session survives a restart or a second node for free, and changing the operator token ends
every session at once. The price is that signing out only deletes the cookie in that browser: a
copy taken before stays valid until it expires (:data:`LIFETIME_MS`); docs/console.md says so.

The CSRF token is a second MAC of the session id (the synchroniser-token pattern without a table):
another site can make the browser send the cookie (it cannot with SameSite=Strict, which is the
first line) but cannot read a page to learn the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from thingport.domain.models import now_ms

COOKIE = "thingport_console"
#: A session lasts a working day; sign in again after.
LIFETIME_MS = 12 * 3600 * 1000
#: The form field and the header (htmx ``hx-headers``) that carry the CSRF token.
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    sid: str
    expires: int
    csrf: str


class Sessions:
    """Issues and checks console session cookies for one operator token."""

    def __init__(self, operator_token: str) -> None:
        self._key = hmac.new(operator_token.encode(), b"thingport console session v1", hashlib.sha256).digest()

    def _mac(self, what: bytes) -> str:
        return _b64(hmac.new(self._key, what, hashlib.sha256).digest())

    def issue(self, now: int | None = None) -> tuple[str, ConsoleSession]:
        """A new session: the cookie value and what it stands for."""
        sid = secrets.token_urlsafe(18)
        expires = (now if now is not None else now_ms()) + LIFETIME_MS
        payload = _b64(json.dumps({"sid": sid, "exp": expires}, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload.encode())}", ConsoleSession(sid, expires, self._csrf(sid))

    def check(self, cookie: str | None, now: int | None = None) -> ConsoleSession | None:
        """The session a cookie stands for, or None when it is absent, forged, malformed or expired."""
        if not cookie or len(cookie) > 512:
            return None
        payload, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload.encode()).encode()):
            return None
        try:
            data = json.loads(_unb64(payload))
            sid, expires = data["sid"], data["exp"]
        except (ValueError, KeyError, TypeError):
            return None
        if not isinstance(sid, str) or not isinstance(expires, int):
            return None
        if expires <= (now if now is not None else now_ms()):
            return None
        return ConsoleSession(sid, expires, self._csrf(sid))

    def _csrf(self, sid: str) -> str:
        return self._mac(f"csrf:{sid}".encode())

    @staticmethod
    def csrf_ok(session: ConsoleSession, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), session.csrf.encode())
