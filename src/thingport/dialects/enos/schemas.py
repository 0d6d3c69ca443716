"""Request bodies of the Connect Service, as msgspec structs (decoding names the bad field)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

#: Paths in a projection: each is applied to every item of a page (up to ``max_page_size``).
MAX_PROJECTION = 100
Projection = Annotated[list[str], msgspec.Meta(max_length=MAX_PROJECTION)]


class I18n(msgspec.Struct, forbid_unknown_fields=False):
    defaultValue: str | None = None
    i18nValue: dict[str, str] | None = None


Name = str | I18n


class Pagination(msgspec.Struct):
    pageNo: int = 1
    pageSize: int = 10
    sorters: list[dict[str, Any]] | None = None


class SearchBody(msgspec.Struct):
    expression: str | None = None
    pagination: Pagination | None = None
    projection: Projection | None = None
    requireSecret: bool = False
    populateLastUpdateInfo: bool = False


class ProductCreate(msgspec.Struct):
    productName: Name | None = None
    productType: str | None = None
    dataFormat: str | None = None
    modelId: str | None = None
    biDirectionalAuth: bool | None = None
    productDesc: str | None = None
    dynamicActivateEnabled: bool | None = None
    dynamicActiveEnabled: bool | None = None
    productTags: dict[str, Any] | None = None


class DeviceCreate(msgspec.Struct):
    productKey: str | None = None
    deviceName: Name | None = None
    timezone: str | None = None
    deviceKey: str | None = None
    deviceAttributes: dict[str, Any] | None = None
    deviceDesc: str | None = None
    deviceTags: dict[str, Any] | None = None
    requireSecret: bool = False


class BatchCreate(msgspec.Struct):
    deviceList: list[dict[str, Any]] | None = None
    requireSecret: bool = False


class DeviceUpdate(msgspec.Struct):
    deviceName: Name | None = None
    timezone: str | None = None
    deviceAttributes: dict[str, Any] | None = None
    deviceTags: dict[str, Any] | None = None
    deviceDesc: str | None = None


class ReplaceBody(msgspec.Struct):
    newDeviceKey: str | None = None
    requireSecret: bool = False
    #: Thingport's extension: seconds the old key and secret keep logging in (default 0, EnOS's behaviour).
    gracePeriod: int = 0


class Identifier(msgspec.Struct):
    assetId: str | None = None
    productKey: str | None = None
    deviceKey: str | None = None


class TopologyBody(msgspec.Struct):
    gateway: Identifier | None = None
    subDevices: list[Identifier] | None = None


class GatewayQuery(msgspec.Struct):
    subDevice: Identifier | None = None
    requireSecret: bool = False
    projection: Projection | None = None


class SubDeviceSearch(msgspec.Struct):
    gateway: Identifier | None = None
    expression: str | None = None
    pagination: Pagination | None = None
    projection: Projection | None = None
    requireSecret: bool = False


class TokenRequest(msgspec.Struct):
    appKey: str | None = None
    encryption: str | None = None
    timestamp: int | str | None = None
    accessToken: str | None = None


class CertApply(msgspec.Struct):
    """Apply Certificate (and Renew's fields besides ``certSn``); docs/enos.md, "Certificates"."""

    csr: str | None = None
    validDay: int | None = None
    issueAuthority: str | None = None


class CertRenew(CertApply):
    certSn: int | str | None = None
    #: Thingport's extension: seconds the renewed certificate stays valid (default 0, EnOS's behaviour).
    gracePeriod: int = 0


class CertRevoke(msgspec.Struct):
    certSn: int | str | None = None
    reason: int | None = None
