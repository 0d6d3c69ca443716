"""Who is calling: ``app_key`` (or ``x-app-key``) plus ``Authorization: Bearer <accessToken>``.

Checked in the order a gateway would: the app id header (401 100025), the application (403
100203), the token (403 1010005, gateway body), the app's flow control (403 1010009, the HTTP
application's :class:`~thingport.dialects.oceanconnect.throttle.Throttle`), then the optional
``appId`` query parameter naming the application acted for (100203 / 100217).
"""

from __future__ import annotations

from collections.abc import Mapping

from thingport.dialects.oceanconnect.errors import OcError
from thingport.dialects.oceanconnect.throttle import Throttle
from thingport.domain.errors import Unauthenticated
from thingport.domain.models import Application
from thingport.services import audit
from thingport.services.container import Services
from thingport.services.context import Caller


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of ``Authorization: Bearer x`` (any case), or the legacy ``access_token`` header."""
    value = headers.get("authorization", "").strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("access_token") or None


async def authenticate(services: Services, headers: Mapping[str, str], query: Mapping[str, str],
                       throttle: Throttle) -> tuple[Application, Caller]:
    app_key = headers.get("app_key") or headers.get("x-app-key")
    if not app_key:
        raise OcError(401, "100025", "app_key: the app_key (or x-app-key) header is missing")
    try:
        await services.accounts.active_app(app_key)
    except Unauthenticated:
        raise OcError(403, "100203", f"app_key: application {app_key} does not exist or is disabled") from None
    token = bearer(headers)
    if token is None:
        raise OcError(403, "1010005", "Authorization: Bearer access token missing")
    try:
        app = await services.oceanconnect.tokens.app_for_token(app_key, token)
    except Unauthenticated as exc:
        raise OcError(403, "1010005", exc.message) from None
    if not await throttle.allow(app.app_key, core=services.core):
        raise OcError(403, "1010009")
    return app, await act_for(services, app, query.get("appId"))


async def act_for(services: Services, app: Application, app_id: str | None) -> Caller:
    """The caller acting for ``app_id``: the app itself, or another app of its organization."""
    if not app_id or app_id == app.app_key:
        return services.accounts.caller(app)
    try:
        other = await services.accounts.active_app(app_id)
    except Unauthenticated:
        raise OcError(403, "100203", f"appId: application {app_id} does not exist") from None
    if other.org_id != app.org_id:
        raise OcError(403, "100217", f"appId: application {app_id} has not authorized {app.app_key}")
    audit.identify(f"app:{app.app_key}", other.org_id)
    return Caller(other.org_id, other.app_key, app.permissions)
