"""The one domain error catalogue.

Services raise these; every dialect owns one table that maps an :class:`ErrorKind` to its own
wire code and envelope. A message always names the field at fault so a user can fix the request.
"""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    INVALID_ARGUMENT = "invalid_argument"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    PRODUCT_NOT_FOUND = "product_not_found"
    DEVICE_NOT_FOUND = "device_not_found"
    PRODUCT_HAS_DEVICES = "product_has_devices"
    MODEL_NOT_FOUND = "model_not_found"
    DEVICE_KEY_EXISTS = "device_key_exists"
    DEVICE_KEY_UNCHANGED = "device_key_unchanged"
    DEVICE_KEY_GENERATION_FAILED = "device_key_generation_failed"
    NOT_GATEWAY = "not_gateway"
    LIMIT_EXCEEDED = "limit_exceeded"
    DEVICE_STATUS_INVALID = "device_status_invalid"
    TOPOLOGY_CONFLICT = "topology_conflict"
    PUBLIC_KEY_MISSING = "public_key_missing"
    CONFLICT = "conflict"
    INTERNAL = "internal"
    #: The database is out of reach (this node lost it): nothing was written; try again, or another node.
    UNAVAILABLE = "unavailable"
    # OceanConnect
    DEVICE_ONLINE = "device_online"
    VERIFY_CODE_EXISTS = "verify_code_exists"
    REGISTRATION_NOT_FOUND = "registration_not_found"
    # Living Platform binding and provisioning
    REFRESH_TOKEN_INVALID = "refresh_token_invalid"
    BIND_TOKEN_NOT_FOUND = "bind_token_not_found"
    NOT_IN_BIND_WINDOW = "not_in_bind_window"
    NOT_BOUND = "not_bound"
    NOT_OWNER = "not_owner"
    BOUND_TO_OTHER = "bound_to_other"
    PERMIT_JOIN_CLOSED = "permit_join_closed"


class DomainError(Exception):
    """A failure a user can cause and fix; carries the kind and a message naming the field."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(DomainError):
    kind = ErrorKind.INVALID_ARGUMENT


class Unauthenticated(DomainError):
    kind = ErrorKind.UNAUTHENTICATED


class PermissionDenied(DomainError):
    kind = ErrorKind.PERMISSION_DENIED


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND


class ProductNotFound(DomainError):
    kind = ErrorKind.PRODUCT_NOT_FOUND


class DeviceNotFound(DomainError):
    kind = ErrorKind.DEVICE_NOT_FOUND


class ProductHasDevices(DomainError):
    kind = ErrorKind.PRODUCT_HAS_DEVICES


class ModelNotFound(DomainError):
    kind = ErrorKind.MODEL_NOT_FOUND


class DeviceKeyExists(DomainError):
    kind = ErrorKind.DEVICE_KEY_EXISTS


class DeviceKeyUnchanged(DomainError):
    kind = ErrorKind.DEVICE_KEY_UNCHANGED


class DeviceKeyGenerationFailed(DomainError):
    kind = ErrorKind.DEVICE_KEY_GENERATION_FAILED


class NotGateway(DomainError):
    kind = ErrorKind.NOT_GATEWAY


class LimitExceeded(DomainError):
    kind = ErrorKind.LIMIT_EXCEEDED


class DeviceStatusInvalid(DomainError):
    kind = ErrorKind.DEVICE_STATUS_INVALID


class TopologyConflict(DomainError):
    kind = ErrorKind.TOPOLOGY_CONFLICT


class PublicKeyMissing(DomainError):
    kind = ErrorKind.PUBLIC_KEY_MISSING


class Conflict(DomainError):
    kind = ErrorKind.CONFLICT


# --- OceanConnect -------------------------------------------------------------------------------

class DeviceOnline(DomainError):
    """The change needs the device offline (OceanConnect refresh device key)."""

    kind = ErrorKind.DEVICE_ONLINE


class VerifyCodeExists(DomainError):
    """Another pending registration waits with this verify code."""

    kind = ErrorKind.VERIFY_CODE_EXISTS


class RegistrationNotFound(DomainError):
    """The device exists but was not registered through OceanConnect (no nodeId/verify code)."""

    kind = ErrorKind.REGISTRATION_NOT_FOUND
# --- Living Platform binding and provisioning ---------------------------------------------------

class RefreshTokenInvalid(DomainError):
    kind = ErrorKind.REFRESH_TOKEN_INVALID


class BindTokenNotFound(DomainError):
    """The token is unknown, not the device's latest, expired or already used."""

    kind = ErrorKind.BIND_TOKEN_NOT_FOUND


class NotInBindWindow(DomainError):
    kind = ErrorKind.NOT_IN_BIND_WINDOW


class NotBound(DomainError):
    kind = ErrorKind.NOT_BOUND


class NotOwner(DomainError):
    kind = ErrorKind.NOT_OWNER


class BoundToOther(DomainError):
    kind = ErrorKind.BOUND_TO_OTHER


class PermitJoinClosed(DomainError):
    kind = ErrorKind.PERMIT_JOIN_CLOSED


class Unavailable(DomainError):
    """The database cannot be reached: the request changed nothing and may be retried (``/ready``
    says the node is not ready meanwhile). Not the caller's fault, but not a server fault either."""

    kind = ErrorKind.UNAVAILABLE
