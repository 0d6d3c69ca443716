"""The OceanConnect error table: error kinds to ``{error_code, error_desc}`` (docs/reference/oceanconnect.md §9).

Business errors carry ``error_code`` as a JSON string; gateway errors (token, throttle) use the
``{resultcode, resultmsg}`` body the API gateway sends. The documented ``error_desc`` comes first;
what Thingport knows about the field at fault follows it.
"""

from __future__ import annotations

import msgspec
from litestar import Response

from thingport.domain.errors import DomainError, ErrorKind

DESC: dict[str, str] = {
    "50252": "Internal server error.",
    "50400": "The input is invalid.",
    "100003": "Invalid verify code.",
    "100007": "Bad request message.",
    "100025": "AppId for auth not exist.",
    "100203": "The application is not existed.",
    "100208": "AppId or secret is not right.",
    "100216": "The application input is invalid.",
    "100217": "The application hasn't been authorized.",
    "100218": "The gatewayId and pageNo can't be both null.",
    "100222": "The request callbackurl is illegal.",
    "100225": "The resource is not found",
    "100227": "The resource is conflicted.",
    "100247": "Operation not allowed. The application has been frozen.",
    "100403": "The device is not existed.",
    "100405": "The request parameter is invalid.",
    "100412": "The amount of device has reached the limit.",
    "100416": "The device has already been binded.",
    "100418": "The deviceData is not existed.",
    "100426": "The nodeId is duplicated.",
    "100611": "Device is online.",
    "102202": "Required Parameter is null or empty.",
    "600002": "The product not existed.",
    "1010005": "Invalid access token or appId.",
    "1010009": "app throttle exceed.",
}

GATEWAY_CODES = frozenset({"1010005", "1010009"})


class OcError(Exception):
    """An answer decided by the dialect itself (authentication, paging rules)."""

    def __init__(self, status: int, code: str, detail: str = "") -> None:
        super().__init__(f"{code} {detail}")
        self.status = status
        self.code = code
        self.detail = detail


#: kind -> (HTTP status, code), for every operation unless ``OVERRIDES`` says otherwise; every kind
#: has an entry (``tests/dialects/test_error_tables.py``).
TABLE: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.INVALID_ARGUMENT: (400, "50400"),
    ErrorKind.UNAUTHENTICATED: (403, "1010005"),
    ErrorKind.PERMISSION_DENIED: (403, "100217"),
    ErrorKind.NOT_FOUND: (404, "100225"),
    ErrorKind.DEVICE_NOT_FOUND: (404, "100403"),
    ErrorKind.PRODUCT_NOT_FOUND: (403, "600002"),
    ErrorKind.DEVICE_KEY_EXISTS: (400, "100426"),
    ErrorKind.LIMIT_EXCEEDED: (500, "100412"),
    ErrorKind.CONFLICT: (409, "100227"),
    ErrorKind.DEVICE_ONLINE: (400, "100611"),
    ErrorKind.VERIFY_CODE_EXISTS: (400, "100003"),
    ErrorKind.REGISTRATION_NOT_FOUND: (404, "100418"),
    ErrorKind.INTERNAL: (500, "50252"),
    ErrorKind.UNAVAILABLE: (503, "50252"),  # HTTP 503 (documented): a client or balancer retries elsewhere
    # No OceanConnect operation raises these (EnOS and Living kinds): one that did would be a server fault.
    ErrorKind.PRODUCT_HAS_DEVICES: (500, "50252"),
    ErrorKind.MODEL_NOT_FOUND: (500, "50252"),
    ErrorKind.DEVICE_KEY_UNCHANGED: (500, "50252"),
    ErrorKind.DEVICE_KEY_GENERATION_FAILED: (500, "50252"),
    ErrorKind.NOT_GATEWAY: (500, "50252"),
    ErrorKind.DEVICE_STATUS_INVALID: (500, "50252"),
    ErrorKind.TOPOLOGY_CONFLICT: (500, "50252"),
    ErrorKind.PUBLIC_KEY_MISSING: (500, "50252"),
    ErrorKind.REFRESH_TOKEN_INVALID: (500, "50252"),
    ErrorKind.BIND_TOKEN_NOT_FOUND: (500, "50252"),
    ErrorKind.NOT_IN_BIND_WINDOW: (500, "50252"),
    ErrorKind.NOT_BOUND: (500, "50252"),
    ErrorKind.NOT_OWNER: (500, "50252"),
    ErrorKind.BOUND_TO_OTHER: (500, "50252"),
    ErrorKind.PERMIT_JOIN_CLOSED: (500, "50252"),
}

#: Operation-specific codes: registration reports a verify code in use as 100416.
OVERRIDES: dict[str, dict[ErrorKind, tuple[int, str]]] = {
    "register": {ErrorKind.VERIFY_CODE_EXISTS: (400, "100416")},
    "queryDevices": {ErrorKind.INVALID_ARGUMENT: (400, "100405")},
    "queryDevice": {ErrorKind.INVALID_ARGUMENT: (400, "100405")},
    "login": {ErrorKind.UNAUTHENTICATED: (401, "100208"), ErrorKind.PERMISSION_DENIED: (400, "100247")},
}

#: An invalid value of these fields has its own code.
BY_FIELD: dict[str, tuple[int, str]] = {
    "verifyCode": (400, "100003"),
    "callbackUrl": (400, "100222"),
    "body": (400, "100007"),
    "deviceId": (400, "100007"),
}


def for_domain(err: DomainError, operation: str) -> OcError:
    if err.kind is ErrorKind.INVALID_ARGUMENT and err.field in BY_FIELD:
        status, code = BY_FIELD[err.field]
    else:
        status, code = OVERRIDES.get(operation, {}).get(err.kind) or TABLE[err.kind]
    return OcError(status, code, err.message)


def respond(err: OcError) -> Response[bytes]:
    desc = DESC[err.code]
    if err.code in GATEWAY_CODES:
        body = {"resultcode": err.code, "resultmsg": desc}
    else:
        body = {"error_code": err.code, "error_desc": f"{desc} {err.detail}".strip()}
    return Response(msgspec.json.encode(body), status_code=err.status, media_type="application/json")
