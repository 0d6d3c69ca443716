"""What the OpenAPI document says EnOS answers: the envelopes, their real status codes, examples.

Connect Service answers HTTP 200 with ``code`` 0 on success and, for a refused request, HTTP 200
with the error's code (docs/enos.md, "Errors"); only a failed authentication (401), a body over the
limit (413) and a fault of ours (500) change the status. The examples are made by the renderers and
the error table the routes use, from one sample device, so they cannot drift from the answers.
"""

from __future__ import annotations

from typing import Any

from thingport.dialects import openapi
from thingport.dialects.enos import errors, render
from thingport.domain.errors import DeviceNotFound, InvalidArgument, Unauthenticated
from thingport.domain.models import Device, I18nText, Permission, Product, ProductType
from thingport.services.devices import DeviceView

_PAGINATION = {
    "type": "object", "description": "list and search actions: the page returned",
    "properties": {"sortedBy": {"type": ["string", "null"]}, "pageNo": {"type": "integer"},
                   "pageSize": {"type": "integer"}, "totalSize": {"type": "integer"}},
}

#: Every Connect Service answer, success or error.
ENVELOPE: dict[str, Any] = {
    "type": "object", "required": ["code", "msg", "requestId", "data"],
    "properties": {
        "code": {"type": "integer", "description": "0 on success, else the error code (docs/enos.md, \"Errors\")"},
        "msg": {"type": "string", "description": "OK, or the reason, naming the field at fault"},
        "requestId": {"type": "string", "description": "this request's id, also in Thingport's log"},
        "data": {"description": "the action's result (an object, a list, a string), null on an error"},
        "pagination": _PAGINATION,
        "successSize": {"type": "integer", "description": "batchCreate: items created"},
        "totalSize": {"type": "integer", "description": "batchCreate: items sent"},
        "status": {"type": "integer", "description": "calls signed with accessKey (enos-api-sdk-python): code again"},
        "submsg": {"type": ["string", "null"], "description": "calls signed with accessKey: msg on an error"},
    },
}

#: The APIM token service's own envelope.
TOKEN_ENVELOPE: dict[str, Any] = {
    "type": "object", "required": ["status", "msg", "business", "data"],
    "properties": {
        "status": {"type": "integer", "description": "0 on success, else the token service's error code"},
        "msg": {"type": "string"}, "business": {"type": "string", "const": "apim-token-service"},
        "data": {"type": ["object", "null"], "properties": {
            "accessToken": {"type": "string"}, "expire": {"type": "integer", "description": "seconds left"}}},
    },
}

_RID = "0f8e2c7a-3d4b-4c1e-9a55-6b7f1d2e3c4a"
_T = 1_764_633_600_000
_PRODUCT = Product(org_id="o15724268424841", product_key="Yq3kPsD2", name=I18nText("Meter", {"zh_CN": "电表"}),
                   secret="5tAcX9rG2pQ", description="an example product", product_type=ProductType.DEVICE,
                   data_format="Json", model_id="meter_model", bidirectional_auth=False,
                   dynamic_activate_enabled=True, tags={}, create_time=_T, create_by="appKey-1", update_time=_T,
                   update_by="appKey-1")
_DEVICE = Device(asset_id="Ab3dEf6h", org_id=_PRODUCT.org_id, product_key=_PRODUCT.product_key,
                 device_key="meter-0001", name=I18nText("Meter 1"), secret="kYn8Wq2xLr5T", description=None,
                 timezone="+08:00", attributes={"capacity": 40}, tags={"site": "north"}, create_time=_T, enabled=True,
                 online=True, active_time=_T + 60_000, last_online_time=_T + 60_000, last_offline_time=None,
                 gateway_asset_id=None, update_time=_T)


def _ok(data: Any, **extra: Any) -> dict[str, Any]:
    return {"code": 0, "msg": "OK", "requestId": _RID, "data": data, **extra}


def _error(err: Any, code: int) -> dict[str, Any]:
    return {"code": code, "msg": errors.message_for(err, code), "requestId": _RID, "data": None}


def _examples() -> dict[str, Any]:
    plain = render.SecretPolicy("v2.1", False, None, Permission.DEVICE_READ)
    page = {"pagination": {"sortedBy": None, "pageNo": 1, "pageSize": 10, "totalSize": 1}}
    invalid = InvalidArgument("deviceKey: must be 1-64 of A-Z a-z 0-9 _ - . @ : /", field="deviceKey")
    missing = DeviceNotFound("device assetId=Zz9yXw8v cannot be found", field="assetId")
    return {
        "getDevice": _ok(render.device(DeviceView(_DEVICE, _PRODUCT), plain)),
        "createDevice": _ok(render.create_result(_DEVICE, plain)),
        "searchProduct": _ok([render.product(_PRODUCT, plain)], **page),
        "an invalid field": _error(invalid, errors.code_for(invalid)),
        "no such device": _error(missing, errors.code_for(missing)),
    }


def _status_examples() -> dict[int, dict[str, Any]]:
    code = errors.UNAUTHENTICATED_CODE
    return {
        401: {"code": code, "msg": "Invalid authentication credentials: "
              + Unauthenticated("apim-signature: does not match").message, "requestId": _RID, "data": None},
        413: _error(InvalidArgument("body: at most 1048576 bytes", field="body"), 99400),
        500: {"code": 99500, "msg": "Internal Server Error", "requestId": _RID, "data": None},
    }


def connect_answers() -> dict[int, openapi.Answer]:
    """The responses of every Connect Service operation."""
    by_status = _status_examples()
    return {
        200: openapi.Answer("Answered: code 0 and the action's data, or a refusal's code and msg", ENVELOPE,
                            _examples()),
        401: openapi.Answer("The signature, token or application was refused", ENVELOPE,
                            {"refused": by_status[401]}),
        413: openapi.Answer("The body is over max_body_bytes", ENVELOPE, {"too large": by_status[413]}),
        500: openapi.Answer("A fault of Thingport's (logged with this requestId)", ENVELOPE,
                            {"fault": by_status[500]}),
    }


def token_answers() -> dict[int, openapi.Answer]:
    """The responses of the APIM token service: HTTP 200 whatever the outcome."""
    return {200: openapi.Answer("Answered: status 0 and the token, or the token service's error", TOKEN_ENVELOPE, {
        "issued": {"status": 0, "msg": "SUCCESS", "business": "apim-token-service",
                   "data": {"accessToken": "9c1e5b7d-2a4f-4e8b-b0c3-7d6a5f4e3b2a", "expire": 7200}},
        "bad signature": {"status": 1003, "msg": "invalid encryption", "business": "apim-token-service",
                          "data": None},
    })}
