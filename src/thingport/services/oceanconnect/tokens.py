"""OceanConnect application tokens: log in, refresh, log out, and the check of each call's token.

An application holds one token pair at a time: a new login or refresh ends the previous pair.
The flow control that follows the token check is the dialect's (``dialects/oceanconnect/throttle.py``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from thingport.crypto.signing import equal
from thingport.domain.errors import PermissionDenied, Unauthenticated
from thingport.domain.models import Application, now_ms
from thingport.services.accounts import AccountService
from thingport.services.context import Core, Tx

ACCESS_TOKEN_TTL_S = 3600  # fixed by the vendor, whatever the settings (docs/oceanconnect.md)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


class TokenService:
    def __init__(self, core: Core, accounts: AccountService) -> None:
        self.core = core
        self.accounts = accounts
        self.store = core.oceanconnect

    async def _check_app(self, app_id: str, secret: str) -> Application:
        try:
            app = await self.accounts.active_app(app_id)
        except Unauthenticated:
            async with self.core.read() as conn:
                found = await self.core.accounts.get_app(conn, app_id)
            if found is not None and found.disabled and equal(found.secret, secret):
                raise PermissionDenied(f"appId: application {app_id} is disabled") from None
            raise Unauthenticated("appId or secret is not right") from None
        if not any(equal(s, secret) for s in app.secrets_at(now_ms())):  # the previous one in its grace period
            raise Unauthenticated("appId or secret is not right")
        return app

    async def _issue(self, tx: Tx, app: Application) -> TokenPair:
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        ttl_refresh = self.core.settings.oceanconnect_refresh_token_ttl_s * 1000
        await self.store.put_tokens(tx.conn, app.app_key, access, refresh, tx.now,
                                    tx.now + ACCESS_TOKEN_TTL_S * 1000, tx.now + ttl_refresh)
        return TokenPair(access, refresh, ACCESS_TOKEN_TTL_S)

    async def login(self, app_id: str, secret: str) -> TokenPair:
        """A new token pair; the app's earlier access token stops working (only the latest is valid)."""
        app = await self._check_app(app_id, secret)
        async with self.core.write(app.org_id) as tx:
            return await self._issue(tx, app)

    async def refresh(self, app_id: str, secret: str, refresh_token: str) -> TokenPair:
        """A new pair for a valid refreshToken; both old tokens stop working."""
        app = await self._check_app(app_id, secret)
        async with self.core.write(app.org_id) as tx:
            expire = await self.store.refresh_expiry(tx.conn, app.app_key, refresh_token)
            if expire is None or expire <= tx.now:
                raise Unauthenticated("refreshToken is not the application's current refresh token")
            return await self._issue(tx, app)

    async def logout(self, access_token: str) -> None:
        async with self.core.write() as tx:
            if not await self.store.drop_access_token(tx.conn, access_token):
                raise Unauthenticated("accessToken is not a valid access token")

    async def app_for_token(self, app_key: str, access_token: str) -> Application:
        """The enabled app whose latest, unexpired access token this is, and which ``app_key`` names."""
        async with self.core.read() as conn:
            found = await self.store.token_app(conn, access_token)
        if found is None or found[0] != app_key or found[1] <= now_ms():
            raise Unauthenticated("invalid access token or appId")
        return await self.accounts.active_app(app_key)
