"""The Living error table: every domain error kind to its business code (docs/living.md).

Business errors are answered with HTTP 200 and the code in the body; gateway failures (signature,
nonce, time) are HTTP statuses (``auth.GatewayError``). Every kind has an entry
(``tests/dialects/test_error_tables.py``).
"""

from __future__ import annotations

from thingport.domain.errors import DomainError, ErrorKind

CODES: dict[ErrorKind, int] = {
    ErrorKind.INVALID_ARGUMENT: 460,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.NOT_FOUND: 460,
    ErrorKind.PRODUCT_NOT_FOUND: 5005,
    ErrorKind.DEVICE_NOT_FOUND: 6100,
    ErrorKind.NOT_GATEWAY: 460,
    ErrorKind.TOPOLOGY_CONFLICT: 460,
    ErrorKind.LIMIT_EXCEEDED: 460,
    ErrorKind.CONFLICT: 460,
    ErrorKind.REFRESH_TOKEN_INVALID: 2401,
    ErrorKind.BIND_TOKEN_NOT_FOUND: 6608,
    ErrorKind.NOT_IN_BIND_WINDOW: 6618,
    ErrorKind.NOT_BOUND: 2065,
    ErrorKind.NOT_OWNER: 2066,
    ErrorKind.BOUND_TO_OTHER: 403,
    ErrorKind.PERMIT_JOIN_CLOSED: 460,
    ErrorKind.INTERNAL: 500,
    ErrorKind.UNAVAILABLE: 503,
    # No Living API raises these (EnOS and OceanConnect kinds): one that did would be a server fault.
    ErrorKind.PRODUCT_HAS_DEVICES: 500,
    ErrorKind.MODEL_NOT_FOUND: 500,
    ErrorKind.DEVICE_KEY_EXISTS: 500,
    ErrorKind.DEVICE_KEY_UNCHANGED: 500,
    ErrorKind.DEVICE_KEY_GENERATION_FAILED: 500,
    ErrorKind.DEVICE_STATUS_INVALID: 500,
    ErrorKind.PUBLIC_KEY_MISSING: 500,
    ErrorKind.DEVICE_ONLINE: 500,
    ErrorKind.VERIFY_CODE_EXISTS: 500,
    ErrorKind.REGISTRATION_NOT_FOUND: 500,
}

#: The documented short texts, sent as ``localizedMsg`` beside the precise ``message``.
TEXTS: dict[int, str] = {
    401: "request auth error", 403: "request forbidden", 460: "request parameter error", 500: "service error",
    503: "service not available",
    2065: "identityId and iotId not bound", 2066: "identityId is not manager", 2401: "refreshToken invalid",
    5005: "product not found", 6100: "device not found", 6608: "token not found",
    6618: "NOT_IN_BIND_WINDOW",
}


def code_for(err: DomainError) -> int:
    return CODES[err.kind]
