"""The API-gateway signature every Living call carries (docs/reference/living.md §1.2).

A request is accepted when ``X-Ca-Signature`` is the HMAC-SHA256 of the server's string-to-sign
under the secret of the application ``X-Ca-Key``, the signed headers include ``x-ca-key`` and
``x-ca-nonce``, ``Content-MD5`` matches the body, the time (``X-Ca-Timestamp`` in ms, else the
``Date`` header the SDK sends) is within the window, and the nonce was not used within it.
Failures are gateway-level: an HTTP status plus ``X-Ca-Error-Message``, like the vendor's gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from thingport.crypto import apigateway
from thingport.dialects.common import digits
from thingport.domain.errors import Unauthenticated
from thingport.domain.models import Application, now_ms
from thingport.services import audit
from thingport.services.container import Services

SIGNATURE_METHODS = frozenset({"hmacsha256"})


class GatewayError(Exception):
    """Refused before the API runs: HTTP ``status`` with ``X-Ca-Error-Message: message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def request_time_ms(headers: Mapping[str, str]) -> int:
    stamp = headers.get("x-ca-timestamp")
    if stamp:
        ms = digits(stamp)
        if ms is None:
            raise GatewayError(400, "Invalid Timestamp: X-Ca-Timestamp must be epoch milliseconds")
        return ms
    date = headers.get("date")
    if not date:
        raise GatewayError(400, "Invalid Timestamp: send X-Ca-Timestamp or Date")
    try:
        return int(parsedate_to_datetime(date).timestamp() * 1000)
    except (TypeError, ValueError, OverflowError):  # a year or offset of twenty digits overflows
        raise GatewayError(400, "Invalid Date: not an RFC 1123 date") from None


async def authenticate(services: Services, method: str, path: str, query: list[tuple[str, str]],
                       headers: Mapping[str, str], body: bytes) -> Application:
    """The calling application, or a :class:`GatewayError`. ``headers`` is looked up by lower-case name."""
    given = headers.get("x-ca-signature")
    if not given:
        raise GatewayError(401, "Empty Signature: X-Ca-Signature is missing")
    app_key = headers.get("x-ca-key")
    try:
        app = await services.accounts.active_app(app_key or "")
    except Unauthenticated:
        raise GatewayError(400, "Invalid AppKey: X-Ca-Key is missing, unknown or disabled") from None
    sign_method = headers.get("x-ca-signaturemethod", "HmacSHA256")
    if sign_method.lower() not in SIGNATURE_METHODS:
        raise GatewayError(400, f"Invalid SignatureMethod: {sign_method} (HmacSHA256 is supported)")
    signed = apigateway.signed_header_names(headers.get("x-ca-signature-headers", ""))
    if "x-ca-key" not in signed or "x-ca-nonce" not in signed or not headers.get("x-ca-nonce"):
        raise GatewayError(400, "Invalid Signature Headers: X-Ca-Key and X-Ca-Nonce must be sent and listed in "
                                "X-Ca-Signature-Headers")
    md5 = headers.get("content-md5")
    if (body or md5) and md5 != apigateway.content_md5(body):
        raise GatewayError(400, "Invalid Content-MD5: it does not match the body")
    text = apigateway.string_to_sign(method, headers, signed, path, query)
    if not any(apigateway.equal(apigateway.signature(s, text), given)  # the previous one in its grace period
               for s in app.secrets_at(now_ms())):
        raise GatewayError(400, "Invalid Signature, Server StringToSign:`" + text.replace("\n", "#") + "`")
    window_ms = services.core.settings.living_signature_window_s * 1000
    if abs(now_ms() - request_time_ms(headers)) > window_ms:
        raise GatewayError(400, "Invalid Timestamp: the request time is more than "
                                f"{window_ms // 60_000} minutes from the server clock")
    nonce = headers.get("x-ca-nonce", "")
    if not await services.accounts.use_nonce(f"living:{app.app_key}:{nonce}", 2 * window_ms):
        raise GatewayError(400, "Nonce Used: X-Ca-Nonce was used before; a replayed request is refused")
    audit.identify(f"app:{app.app_key}", app.org_id)
    return app
