"""Northbound request bodies as msgspec structs; unknown keys are ignored (docs/reference/oceanconnect.md §3)."""

from __future__ import annotations

from typing import Any

import msgspec


class DeviceInfoIn(msgspec.Struct):
    """The writable ``deviceInfo`` fields (docs/reference/oceanconnect.md §6)."""

    nodeId: str | None = None
    name: str | None = None
    description: str | None = None
    manufacturerId: str | None = None
    manufacturerName: str | None = None
    mac: str | None = None
    location: str | None = None
    deviceType: str | None = None
    model: str | None = None
    swVersion: str | None = None
    fwVersion: str | None = None
    hwVersion: str | None = None
    protocolType: str | None = None
    bridgeId: str | None = None
    signalStrength: str | None = None
    sigVersion: str | None = None
    serialNumber: str | None = None
    batteryLevel: str | None = None
    isHD: str | None = None


class RegisterVerifyCode(msgspec.Struct):
    nodeId: str | None = None
    verifyCode: str | None = None
    timeout: int | None = None
    psk: str | None = None
    endUserId: str | None = None
    imsi: str | None = None
    isSecure: bool | None = None
    productId: str | None = None
    deviceInfo: DeviceInfoIn | None = None
    customFields: list[dict[str, Any]] | None = None


class RegisterPassword(msgspec.Struct):
    deviceInfo: DeviceInfoIn | None = None
    endUserId: str | None = None
    organization: str | None = None
    region: str | None = None
    timezone: str | None = None
    productId: str | None = None
    mqttConnect: bool | None = None
    secret: str | None = None
    psk: str | None = None


class RefreshKey(msgspec.Struct):
    verifyCode: str | None = None
    nodeId: str | None = None
    timeout: int | None = None


class ModifyDevice(msgspec.Struct):
    name: str | None = None
    deviceType: str | None = None
    location: str | None = None
    manufacturerId: str | None = None
    manufacturerName: str | None = None
    model: str | None = None
    protocolType: str | None = None
    endUser: str | None = None
    organization: str | None = None
    region: str | None = None
    timezone: str | None = None
    imsi: str | None = None
    ip: str | None = None
    mute: str | None = None
    isSecure: bool | None = None
    productId: str | None = None
    psk: str | None = None
    customFields: list[dict[str, Any]] | None = None
    tags: list[dict[str, Any]] | None = None
    deviceConfig: dict[str, Any] | None = None


class Subscribe(msgspec.Struct):
    notifyType: str | None = None
    callbackUrl: str | None = None
    appId: str | None = None
    channel: str | None = None


class RefreshToken(msgspec.Struct):
    appId: str | None = None
    secret: str | None = None
    refreshToken: str | None = None


class Logout(msgspec.Struct):
    accessToken: str | None = None
