"""Connect Service calls written the way a user of ``enos-api-sdk-python`` 0.0.4 writes them.

The SDK ships request classes only for the EnOS 1.x paths; Connect Service calls are user-written
``EnOSRequest`` subclasses. ``EnOSDefaultClient`` signs ``get_params()`` plus ``requestTimestamp``
and ``orgId`` (and the body from ``get_context_body()``), then

* GET: appends ``?accessKey=…&requestTimestamp=…&orgId=…&sign=…`` and ``&k=v`` for every param;
* POST: appends the same signature query to ``get_request_url()`` and sends
  ``requests.post(url, json=get_replace_params())``.

A POST URL therefore carries its own ``?action=…`` and then a second ``?accessKey=…``; Thingport
reads the second ``?`` as ``&``. ``action`` and addressing params go into the URL *and* into
``get_params()`` so that they are signed, and ``get_context_body()`` is ``json.dumps`` of the body,
byte-identical to what ``requests`` sends.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from enosapi.request.EnOSRequest import EnOSRequest
from enosapi.util.const import Const


class ConnectServiceRequest(EnOSRequest):  # type: ignore[misc]
    """One ``/connect-service/{version}/{resource}?action=…`` call."""

    def __init__(self, org_id: str, method: str, version: str, resource: str, action: str,
                 query: dict[str, str] | None = None, body: dict[str, Any] | None = None) -> None:
        self.org_id = org_id
        self.method = method
        self.path = f"/connect-service/{version}/{resource}"
        self.query = {"action": action, **(query or {})}
        self.body = body

    def get_request_url(self) -> str:
        if self.method == Const.request_get:
            return self.path  # the client appends every param of get_params() itself
        return f"{self.path}?{urlencode(self.query)}"

    def get_request_type(self) -> str:
        return self.method

    def get_content_type(self) -> str:
        return "application/json;charset=UTF-8"

    def get_params(self) -> dict[str, str]:
        return dict(self.query)  # a copy: the client adds requestTimestamp and orgId to it

    def replace_params(self) -> bool:
        return self.method == Const.request_post

    def get_replace_params(self) -> dict[str, Any]:
        return self.body or {}

    def get_context_body(self) -> str | None:
        if self.method == Const.request_get:
            return None
        return json.dumps(self.get_replace_params())


class CreateProductV21Request(ConnectServiceRequest):
    def __init__(self, org_id: str, model_id: str, *, name: str = "Meter", product_type: str = "Device",
                 **extra: Any) -> None:
        body = {"productName": {"defaultValue": name}, "productType": product_type, "dataFormat": "Json",
                "modelId": model_id, "biDirectionalAuth": False, **extra}
        super().__init__(org_id, Const.request_post, "v2.1", "products", "create", body=body)


class GetProductRequest(ConnectServiceRequest):
    def __init__(self, org_id: str, product_key: str) -> None:
        super().__init__(org_id, Const.request_get, "v2.1", "products", "get", query={"productKey": product_key})


class CreateDeviceRequest(ConnectServiceRequest):
    def __init__(self, org_id: str, product_key: str, device_key: str | None = None, *, version: str = "v2.1",
                 timezone: str = "+08:00", **extra: Any) -> None:
        body: dict[str, Any] = {"productKey": product_key, "deviceName": {"defaultValue": "meter"},
                                "timezone": timezone, **extra}
        if device_key is not None:
            body["deviceKey"] = device_key
        super().__init__(org_id, Const.request_post, version, "devices", "create", body=body)


def addressing(asset_id: str | None, product_key: str | None, device_key: str | None) -> dict[str, str]:
    """``assetId``, or ``productKey`` + ``deviceKey`` (docs/reference/enos.md §1.2)."""
    if asset_id is not None:
        return {"assetId": asset_id}
    assert product_key is not None and device_key is not None
    return {"productKey": product_key, "deviceKey": device_key}


class GetDeviceRequest(ConnectServiceRequest):
    def __init__(self, org_id: str, *, asset_id: str | None = None, product_key: str | None = None,
                 device_key: str | None = None, version: str = "v2.1") -> None:
        super().__init__(org_id, Const.request_get, version, "devices", "get",
                         query=addressing(asset_id, product_key, device_key))


class SearchDevicesRequest(ConnectServiceRequest):
    def __init__(self, org_id: str, expression: str | None = None, *, page_no: int = 1, page_size: int = 10,
                 version: str = "v2.1") -> None:
        body: dict[str, Any] = {"pagination": {"pageNo": page_no, "pageSize": page_size}}
        if expression is not None:
            body["expression"] = expression
        super().__init__(org_id, Const.request_post, version, "devices", "search", body=body)


class ReplaceDeviceRequest(ConnectServiceRequest):
    def __init__(self, org_id: str, new_device_key: str, *, asset_id: str | None = None,
                 product_key: str | None = None, device_key: str | None = None, version: str = "v2.1") -> None:
        super().__init__(org_id, Const.request_post, version, "devices", "replaceDevice",
                         query=addressing(asset_id, product_key, device_key),
                         body={"newDeviceKey": new_device_key})


class CertificateRequest(ConnectServiceRequest):
    """``/connect-service/v2.0/certificates?action=apply|renew|revoke`` for one device (by asset id)."""

    def __init__(self, org_id: str, action: str, asset_id: str, body: dict[str, Any]) -> None:
        super().__init__(org_id, Const.request_post, "v2.0", "certificates", action, {"assetId": asset_id}, body)
