"""Who is calling the Connect Service, proven by one of the two verifiable EnOS schemes.

* APIM token: headers ``apim-accesstoken`` + ``apim-timestamp`` + ``apim-signature``
  (docs/reference/enos.md §3.2), the token from ``/apim-token-service/v2.0/token/get``.
* Query signature of ``enos-api-sdk-python``: ``accessKey``, ``requestTimestamp``, ``sign``.

A signature is accepted once (a replay is refused) and only while its timestamp is within the
configured window of the server clock. Stock Poseidon clients put a token encrypted for
Envision's private key in ``apim-accesstoken``; no third party can verify it, so it is refused
with a message that names the supported schemes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from thingport.crypto import signing
from thingport.domain.errors import InvalidArgument, PermissionDenied, Unauthenticated
from thingport.domain.models import Application, now_ms
from thingport.services.container import Services
from thingport.services.context import Caller

POSEIDON_REFUSED = (
    "Poseidon self-issued tokens (apim-accesstoken without apim-signature) cannot be verified by "
    "Thingport. Sign requests with an APIM access token (apim-accesstoken + apim-timestamp + "
    "apim-signature, token from /apim-token-service/v2.0/token/get) or with the accessKey/"
    "requestTimestamp/sign query signature."
)


@dataclass(frozen=True, slots=True)
class Authenticated:
    app: Application
    caller: Caller
    scheme: str  # "apim" or "accessKey"


#: Epoch milliseconds in ASCII digits; a fraction (a client's float) is accepted and dropped.
_EPOCH_MS = re.compile(r"([0-9]{1,18})(?:\.[0-9]{0,9})?")


def check_timestamp(value: str | None, window_s: int, *, field: str) -> None:
    """A timestamp in epoch ms within the window; stale or future ones are refused.

    Parsed by pattern, not ``int(float(…))``: ``inf``, ``1e400`` and 400 digits overflow that.
    """
    m = _EPOCH_MS.fullmatch(value) if value is not None else None
    if m is None:
        raise Unauthenticated(f"{field}: must be epoch milliseconds")
    ts = int(m.group(1))
    if abs(now_ms() - ts) > window_s * 1000:
        raise Unauthenticated(f"{field}: the timestamp is outside the allowed window of {window_s} s")


async def authenticate(services: Services, headers: Mapping[str, str], query: list[tuple[str, str]],
                       body: str) -> Authenticated:
    settings = services.core.settings
    window = settings.signature_window_s
    token = headers.get("apim-accesstoken")
    params = dict(query)
    if token is not None:
        signature, timestamp = headers.get("apim-signature"), headers.get("apim-timestamp")
        if signature is None and timestamp is None:
            raise Unauthenticated(POSEIDON_REFUSED)
        if not signature or not timestamp:
            raise Unauthenticated("apim-signature and apim-timestamp are required with apim-accesstoken")
        app, expire = await services.accounts.app_for_token(token)
        if expire <= now_ms():
            raise Unauthenticated("apim-accesstoken: the access token has expired; get a new one")
        check_timestamp(timestamp, window, field="apim-timestamp")
        expected = [signing.apim_signature(token, query, body, timestamp, s) for s in app.secrets_at(now_ms())]
        scheme = "apim"
    elif "accessKey" in params and "sign" in params:
        app = await services.accounts.active_app(params["accessKey"])
        signature, timestamp = params["sign"], params.get("requestTimestamp")
        check_timestamp(timestamp, window, field="requestTimestamp")
        signed = [(k, v) for k, v in query if k not in ("accessKey", "sign")]
        expected = [signing.access_key_signature(app.app_key, signed, body, s) for s in app.secrets_at(now_ms())]
        scheme = "accessKey"
    else:
        raise Unauthenticated(
            "no credentials: send apim-accesstoken, apim-timestamp and apim-signature headers, or the "
            "accessKey, requestTimestamp and sign query parameters")
    if not any(signing.equal(e, signature) for e in expected):  # the previous secret too in its grace period
        raise Unauthenticated("the signature does not match the request")
    if not await services.accounts.use_nonce(f"enos:{scheme}:{signature.lower()}", 2 * window * 1000):
        raise Unauthenticated("the signature was used before; a replayed request is refused")
    org_id = params.get("orgId")
    if not org_id:
        raise InvalidArgument("orgId: orgId is missing", field="orgId")
    if org_id != app.org_id:
        raise PermissionDenied(f"Denied resource: orgId {org_id}")
    return Authenticated(app, services.accounts.caller(app), scheme)
