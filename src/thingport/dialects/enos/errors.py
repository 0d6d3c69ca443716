"""The EnOS error table: every domain error kind to its Connect Service code (docs/enos.md).

Every kind has an entry (``tests/dialects/test_error_tables.py``), so a new kind cannot silently
become some default code.
"""

from __future__ import annotations

from thingport.domain.errors import DomainError, ErrorKind

CODES: dict[ErrorKind, int] = {
    ErrorKind.INVALID_ARGUMENT: 99400,
    ErrorKind.UNAUTHENTICATED: 401,  # a gateway-level answer, with HTTP 401 (UNAUTHENTICATED_HTTP)
    ErrorKind.PERMISSION_DENIED: 99403,
    ErrorKind.NOT_FOUND: 99404,
    ErrorKind.INTERNAL: 99500,
    ErrorKind.UNAVAILABLE: 99500,  # the service's own failure, answered as its documented internal error
    ErrorKind.DEVICE_NOT_FOUND: 11404,
    ErrorKind.PRODUCT_NOT_FOUND: 11404,
    ErrorKind.PRODUCT_HAS_DEVICES: 11619,
    ErrorKind.MODEL_NOT_FOUND: 11699,
    ErrorKind.DEVICE_KEY_EXISTS: 11702,
    ErrorKind.DEVICE_KEY_UNCHANGED: 11704,
    ErrorKind.DEVICE_KEY_GENERATION_FAILED: 11714,
    ErrorKind.NOT_GATEWAY: 11738,
    ErrorKind.LIMIT_EXCEEDED: 11739,
    ErrorKind.DEVICE_STATUS_INVALID: 11794,
    ErrorKind.TOPOLOGY_CONFLICT: 11795,
    ErrorKind.PUBLIC_KEY_MISSING: 11858,
    ErrorKind.CONFLICT: 99400,
    # OceanConnect and Living kinds: no Connect Service operation raises them, so one that did would
    # be a server fault.
    ErrorKind.DEVICE_ONLINE: 99500,
    ErrorKind.VERIFY_CODE_EXISTS: 99500,
    ErrorKind.REGISTRATION_NOT_FOUND: 99500,
    ErrorKind.REFRESH_TOKEN_INVALID: 99500,
    ErrorKind.BIND_TOKEN_NOT_FOUND: 99500,
    ErrorKind.NOT_IN_BIND_WINDOW: 99500,
    ErrorKind.NOT_BOUND: 99500,
    ErrorKind.NOT_OWNER: 99500,
    ErrorKind.BOUND_TO_OTHER: 99500,
    ErrorKind.PERMIT_JOIN_CLOSED: 99500,
}

PREFIX: dict[int, str] = {99400: "Invalid Argument ", 99403: "", 99404: "Not Found: ", 99500: ""}

#: Product-not-found differs per operation across doc versions (docs/reference/enos.md §7.8).
PRODUCT_NOT_FOUND_BY_ACTION = {("v2.1", "get"): 11611, ("v2.1", "update"): 11651, ("v2.1", "delete"): 11651}

#: HTTP status and code of a failed authentication (a gateway-level failure, not a business code).
UNAUTHENTICATED_HTTP = 401
UNAUTHENTICATED_CODE = CODES[ErrorKind.UNAUTHENTICATED]


def code_for(err: DomainError, version: str = "", action: str = "") -> int:
    if err.kind is ErrorKind.PRODUCT_NOT_FOUND:
        return PRODUCT_NOT_FOUND_BY_ACTION.get((version, action), 11404)
    return CODES[err.kind]


def message_for(err: DomainError, code: int) -> str:
    return PREFIX.get(code, "") + err.message
