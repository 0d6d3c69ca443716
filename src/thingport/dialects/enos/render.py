"""Domain objects to Connect Service structs (Device, Product, DeviceCreateResult)."""

from __future__ import annotations

from typing import Any

from thingport.crypto import caller_secret
from thingport.domain.models import Application, Device, I18nText, Permission, Product
from thingport.services.devices import DeviceView

#: What a v2.4 secret field carries when the caller may not see secrets (the vendor returns "an error").
SECRET_DENIED = "error: the application lacks the permission to read secrets"


def i18n(text: I18nText) -> dict[str, Any]:
    return {"defaultValue": text.default, "i18nValue": dict(text.translations)}


class SecretPolicy:
    """How a response shows secrets: plain (v2.1), encrypted for the caller (v2.4), or not at all."""

    def __init__(self, version: str, require_secret: bool, app: Application | None,
                 needed: Permission) -> None:
        self.version = version
        self.require = require_secret
        self.app = app
        self.allowed = app is None or needed.satisfied_by(app.permissions)

    def fields(self, name: str, secret: str) -> dict[str, Any]:
        if self.version != "v2.4":
            return {name: secret if self.allowed else None}
        if not self.require:
            return {}
        if not self.allowed:
            return {name: SECRET_DENIED, "sessionKey": SECRET_DENIED}
        assert self.app is not None and self.app.rsa_public_key is not None  # checked before the call
        encrypted, session_key = caller_secret.encrypt(self.app.rsa_public_key, secret)
        return {name: encrypted, "sessionKey": session_key}


def device(view: DeviceView, secrets: SecretPolicy) -> dict[str, Any]:
    d, p = view.device, view.product
    out: dict[str, Any] = {
        "orgId": d.org_id, "assetId": d.asset_id, "modelId": p.model_id, "modelIdPath": f"/{p.model_id}",
        "productKey": d.product_key, "productName": i18n(p.name), "productType": p.product_type.value,
        "dataFormat": p.data_format, "deviceKey": d.device_key, "deviceName": i18n(d.name),
    }
    out.update(secrets.fields("deviceSecret", d.secret))
    out.update({
        "deviceDesc": d.description, "timezone": d.timezone, "deviceAttributes": d.attributes,
        "deviceTags": d.tags, "createTime": d.create_time, "status": d.status.value,
        "activeTime": d.active_time or 0, "lastOnlineTime": d.last_online_time or 0,
        "lastOfflineTime": d.last_offline_time, "measurepointLastUpdate": None, "eventLastUpdate": None,
        "attributeLastUpdate": None, "featureLastUpdate": None, "mirrorSource": None,
    })
    return out


def create_result(d: Device, secrets: SecretPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {"assetId": d.asset_id, "productKey": d.product_key, "deviceKey": d.device_key}
    out.update(secrets.fields("deviceSecret", d.secret))
    return out


def product(p: Product, secrets: SecretPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {
        "orgId": p.org_id, "productKey": p.product_key, "productName": i18n(p.name),
    }
    out.update(secrets.fields("productSecret", p.secret))
    out.update({
        "productDesc": p.description, "productType": p.product_type.value, "dataFormat": p.data_format,
        "productTags": p.tags, "modelId": p.model_id, "dynamicActiveEnabled": p.dynamic_activate_enabled,
        "biDirectionalAuth": p.bidirectional_auth, "createTime": p.create_time, "createBy": p.create_by,
        "updateTime": p.update_time, "updateBy": p.update_by, "defaultValidDay": None, "maxValidDay": None,
    })
    if secrets.version == "v2.4":
        out["protocolGatewayIds"] = []
    return out
