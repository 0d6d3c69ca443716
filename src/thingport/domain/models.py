"""Entities of the registry, shared by every dialect.

One device has one identity (``asset_id``: EnOS ``assetId`` = Alibaba ``iotId`` = OceanConnect
``deviceId``) and one login key per product (``device_key``: EnOS ``deviceKey`` = Alibaba
``deviceName`` = OceanConnect ``nodeId``). Times are UTC epoch milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class I18nText:
    """A name in a default language plus translations keyed by locale (``en_US``, ``zh_CN``)."""

    default: str
    translations: dict[str, str] = field(default_factory=dict)

    def localized(self, locale: str | None) -> str:
        if locale and locale in self.translations:
            return self.translations[locale]
        return self.default


class Permission(str, Enum):
    """What an application (service account) may do; EnOS service permissions."""

    DEVICE_FULL = "device:full"
    DEVICE_READ = "device:read"
    PRODUCT_CREATE = "product:create"
    PRODUCT_UPDATE = "product:update"
    PRODUCT_DELETE = "product:delete"

    @classmethod
    def all(cls) -> frozenset[Permission]:
        return frozenset(cls)

    def satisfied_by(self, granted: frozenset[Permission]) -> bool:
        """Full access implies read; everything else must be granted as is."""
        if self is Permission.DEVICE_READ and Permission.DEVICE_FULL in granted:
            return True
        return self in granted


@dataclass(slots=True)
class Organization:
    org_id: str
    name: str
    create_time: int


@dataclass(slots=True)
class Application:
    """A service account: app key + app secret, owned by one organization."""

    app_key: str
    org_id: str
    name: str
    secret: str
    permissions: frozenset[Permission]
    rsa_public_key: str | None
    disabled: bool
    create_time: int
    #: The secret a rotation with a grace period replaced, and when it stops signing (ms).
    previous_secret: str | None = field(default=None, repr=False)
    previous_until: int | None = None

    def secrets_at(self, now: int) -> tuple[str, ...]:
        """The secrets a signature may be made with at ``now``: the current one, and the previous one
        during its grace period (so an integration can roll its secret with no failed call)."""
        if self.previous_secret is not None and self.previous_until is not None and now < self.previous_until:
            return self.secret, self.previous_secret
        return (self.secret,)


@dataclass(slots=True)
class ThingModel:
    org_id: str
    model_id: str
    name: str
    create_time: int


class ProductType(str, Enum):
    DEVICE = "Device"
    GATEWAY = "Gateway"


@dataclass(slots=True)
class Product:
    org_id: str
    product_key: str
    name: I18nText
    secret: str
    description: str | None
    product_type: ProductType
    data_format: str
    model_id: str
    bidirectional_auth: bool
    dynamic_activate_enabled: bool
    tags: dict[str, str]
    create_time: int
    create_by: str | None
    update_time: int
    update_by: str | None

    @property
    def is_gateway(self) -> bool:
        return self.product_type is ProductType.GATEWAY


class DeviceStatus(str, Enum):
    INACTIVE = "inactive"
    ONLINE = "online"
    OFFLINE = "offline"
    DISABLED = "disabled"


@dataclass(slots=True)
class Device:
    asset_id: str
    org_id: str
    product_key: str
    device_key: str
    name: I18nText
    secret: str
    description: str | None
    timezone: str
    attributes: dict[str, Any]
    tags: dict[str, str]
    create_time: int
    enabled: bool
    online: bool
    active_time: int | None
    last_online_time: int | None
    last_offline_time: int | None
    gateway_asset_id: str | None
    update_time: int

    @property
    def status(self) -> DeviceStatus:
        """Derived, never stored: disabled wins, then never-activated, then the live session."""
        if not self.enabled:
            return DeviceStatus.DISABLED
        if not self.active_time:
            return DeviceStatus.INACTIVE
        return DeviceStatus.ONLINE if self.online else DeviceStatus.OFFLINE


@dataclass(slots=True)
class DeviceStats:
    total: int
    online: int
    offline: int
    inactive: int
    disabled: int


@dataclass(slots=True)
class Page:
    """1-based page request."""

    number: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size
