"""Wire structs of the Living app API: the envelope and each API's ``params``."""

from __future__ import annotations

from typing import Any

import msgspec


class CommonParams(msgspec.Struct, omit_defaults=True):
    """The envelope's ``request``; ``appKey`` (seed document) is accepted, the key is ``X-Ca-Key``."""

    apiVer: str | None = None
    iotToken: str | None = None
    cloudToken: str | None = None
    language: str | None = None
    locale: str | None = None
    appKey: str | None = None


class Envelope(msgspec.Struct):
    id: str | int | None = None
    version: str | None = None
    request: CommonParams | None = None
    params: dict[str, Any] | None = None


class AuthCodeRequest(msgspec.Struct):
    authCode: str | None = None
    accountType: str | None = None
    appKey: str | None = None


class CreateSession(msgspec.Struct):
    """``params.request`` per the SDKs; a flat ``params.authCode`` is accepted too."""

    request: AuthCodeRequest | None = None
    authCode: str | None = None


class RefreshRequest(msgspec.Struct):
    refreshToken: str | None = None
    identityId: str | None = None
    iotToken: str | None = None


class Refresh(msgspec.Struct):
    request: RefreshRequest | None = None
    refreshToken: str | None = None
    identityId: str | None = None
    iotToken: str | None = None


class HomeCreate(msgspec.Struct):
    name: str | None = None


class Paging(msgspec.Struct):
    pageNo: int = 1
    pageSize: int = 20


class HomeGet(msgspec.Struct):
    homeId: str | None = None


class BindingsByAccount(msgspec.Struct):
    pageNo: int = 1
    pageSize: int = 20
    owned: int | None = None
    nodeType: str | None = None
    thingType: str | None = None


class BindingsByDevice(msgspec.Struct):
    iotId: str | None = None
    pageNo: int = 1
    pageSize: int = 20


class Unbind(msgspec.Struct):
    iotId: str | None = None
    homeId: str | None = None
    unbindSubdevice: bool = False


class EnrolleeList(msgspec.Struct):
    pageNum: int | None = None
    pageSize: int | None = None
    groupId: str | None = None
    productStatusEnv: str | None = None


class IotDevice(msgspec.Struct):
    productKey: str | None = None
    deviceName: str | None = None


class ProductFilter(msgspec.Struct):
    iotDevices: list[IotDevice] | None = None
    reset: bool = False
    productId: str | None = None
    productStatusEnv: str | None = None


class TokenCheck(msgspec.Struct):
    token: str | None = None
    productKey: str | None = None
    deviceName: str | None = None


class TokenBind(msgspec.Struct):
    productKey: str | None = None
    deviceName: str | None = None
    token: str | None = None
    homeId: str | None = None
    groupIds: list[str] | None = None


class WindowBind(msgspec.Struct):
    productKey: str | None = None
    deviceName: str | None = None
    homeId: str | None = None
    groupIds: list[str] | None = None


class CipherParams(msgspec.Struct):
    mac: str | None = None


class DeviceInfoForCipher(msgspec.Struct):
    deviceName: str | None = None
    productKey: str | None = None
    productId: str | None = None
    cipherType: int | None = None
    random: str | None = None
    params: CipherParams | None = None


class CipherGet(msgspec.Struct):
    deviceInfoForCipher: DeviceInfoForCipher | None = None


class Permit(msgspec.Struct):
    iotId: str | None = None
    productKey: str | None = None
    time: int | None = None


class TopoRemove(msgspec.Struct):
    """The seed's table spells ``subIotid``, its example ``subIotId``: both are read."""

    iotId: str | None = None
    subIotId: str | None = None
    subIotid: str | None = None
