"""OceanConnect northbound routes (``/iocm/app/...``): authentication, devices, subscriptions.

Each route is one small function: decode, call one service, render. :func:`handle` does what
they share: the body limit, authentication and flow control; :data:`oc_errors` answers every error
with the OceanConnect error body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, Response, Router, delete, get, post, put
from litestar.openapi.spec import OpenAPIType, SecurityScheme
from litestar.params import FromPath

from thingport.dialects import openapi
from thingport.dialects.common import (
    ErrorHandlers,
    decode,
    form_pairs,
    int_param,
    path_params,
    query_pairs,
    read_body,
    scoped,
)
from thingport.dialects.oceanconnect import errors, render, schemas
from thingport.dialects.oceanconnect.auth import act_for, authenticate
from thingport.dialects.oceanconnect.errors import OcError
from thingport.domain.errors import DomainError, InvalidArgument
from thingport.domain.models import Application
from thingport.services.container import OceanConnectServices, Services
from thingport.services.context import Caller
from thingport.services.oceanconnect.registrations import PASSWORD, VERIFY_CODE, DevicePatchOc, RegistrationSpec
from thingport.services.oceanconnect.tokens import TokenPair
from thingport.services.oceanconnect.views import OcView
from thingport.store.oceanconnect import DeviceQuery

log = logging.getLogger(__name__)

SEC = "/iocm/app/sec/v1.1.0"
REG = "/iocm/app/reg"
DM = "/iocm/app/dm/v1.4.0/devices"
SUB = "/iocm/app/sub/v1.2.0/subscriptions"
NOTIFY_TYPES = ("deviceAdded", "bindDevice", "deviceInfoChanged", "deviceDeleted")
MAX_DEVICE_PAGE = 250
#: The largest pageNo taken (pages count from 0 here).
MAX_PAGE_NO = 1_000_000
STATUS_VALUES = {"ONLINE": "ONLINE", "OFFLINE": "OFFLINE", "INACTIVE": "INACTIVE", "INBOX": "INACTIVE",
                 "ABNORMAL": "ABNORMAL"}
#: deviceInfo fields kept as given, with their longest allowed length.
INFO_LIMITS = {"description": 2048, "location": 1024}


@dataclass(slots=True)
class Ctx:
    services: Services
    app: Application | None
    caller: Caller
    query: dict[str, str]
    body: bytes

    @property
    def oc(self) -> OceanConnectServices:
        return self.services.oceanconnect


Handler = Callable[[Ctx], Awaitable[Response[bytes]]]


def json_response(body: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def no_content() -> Response[bytes]:
    return Response(b"", status_code=204)


@dataclass(slots=True)
class Operation:
    """The operation a request runs, which picks operation-specific error codes (``errors.OVERRIDES``)."""

    name: str = ""


def operation_of(request: Request[Any, Any, Any]) -> str:
    return scoped(request, Operation).name


async def handle(request: Request[Any, Any, Any], operation: str, fn: Handler, *,
                 authenticated: bool = True) -> Response[bytes]:
    scoped(request, Operation).name = operation
    services: Services = request.app.state.services
    path_params(request)
    body = await read_body(request, services)
    query = dict(query_pairs(request.scope["query_string"]))
    if authenticated:
        app, caller = await authenticate(services, request.headers, query, request.app.state.oceanconnect_throttle)
    else:
        app, caller = None, Caller("", None, frozenset())
    return await fn(Ctx(services, app, caller, query, body))


oc_errors = ErrorHandlers()


@oc_errors.on(OcError)
def oc_error(_: Request[Any, Any, Any], err: OcError) -> Response[bytes]:
    return errors.respond(err)


@oc_errors.on(DomainError)
def domain_error(request: Request[Any, Any, Any], err: DomainError) -> Response[bytes]:
    return errors.respond(errors.for_domain(err, operation_of(request)))


@oc_errors.unexpected(log, lambda request: f"OceanConnect {operation_of(request)}")
def internal_error(_: Request[Any, Any, Any]) -> Response[bytes]:
    return errors.respond(OcError(500, "50252"))


# ---------------------------------------------------------------------------------------------
# shared decoding

def tokens(pair: TokenPair) -> Response[bytes]:
    return json_response({"scope": "default", "tokenType": "bearer", "expiresIn": pair.expires_in,
                          "accessToken": pair.access_token, "refreshToken": pair.refresh_token})


def required(values: dict[str, str | None], *names: str) -> list[str]:
    missing = [n for n in names if not values.get(n)]
    if missing:
        raise OcError(400, "102202", f"{', '.join(missing)}: required")
    return [str(values[n]) for n in names]


def text_field(value: str | None, field: str, limit: int = 256) -> str | None:
    if value is not None and len(value) > limit:
        raise InvalidArgument(f"{field}: at most {limit} characters", field=field)
    return value


def info_of(info: schemas.DeviceInfoIn | None, prefix: str = "deviceInfo.") -> dict[str, str]:
    """The given deviceInfo strings, each checked against its documented length."""
    out: dict[str, str] = {}
    for key, value in msgspec.structs.asdict(info or schemas.DeviceInfoIn()).items():
        if value is not None:
            out[key] = str(text_field(value, prefix + key, INFO_LIMITS.get(key, 256)))
    return out


def spec_from(mode: str, node_id: str | None, info: dict[str, str], product_id: str | None,
              extra: dict[str, Any]) -> RegistrationSpec:
    if not node_id:
        raise InvalidArgument("nodeId: is required", field="nodeId")
    kept = {k: v for k, v in info.items() if k not in ("nodeId", "name", "description", "location", "deviceType")}
    kept.update({k: v for k, v in extra.items() if v is not None})
    return RegistrationSpec(mode=mode, node_id=node_id, product_key=product_id, name=info.get("name"),
                            description=info.get("description"), device_type=info.get("deviceType"),
                            location=info.get("location"), info=kept)


def flag(value: bool | None) -> str | None:
    return None if value is None else ("TRUE" if value else "FALSE")


# ---------------------------------------------------------------------------------------------
# what the OpenAPI document says of requests

SECURITY_SCHEMES = {
    "ocAppKey": SecurityScheme(type="apiKey", name="app_key", security_scheme_in="header",
                               description="The application id (x-app-key is accepted too)"),
    "ocToken": SecurityScheme(type="http", scheme="bearer",
                              description="The accessToken of /iocm/app/sec/v1.1.0/login"),
}
OC_SECURITY: list[dict[str, list[str]]] = [{"ocAppKey": [], "ocToken": []}]
LOGIN_FORM = {"type": "object", "required": ["appId", "secret"],
              "properties": {"appId": {"type": "string"}, "secret": {"type": "string"}}}
APP_ID = openapi.query("appId", "the application acted for (another of the caller's organization)")
SELECT = openapi.query("select", "imsi: include the IMSI", enum=["imsi", "IMSI"])
CASCADE = openapi.query("cascade", "true (the default): delete a gateway's sub-devices too", enum=["true", "false"])
PAGE_NO = openapi.query("pageNo", f"page number, from 0 to {MAX_PAGE_NO}", kind=OpenAPIType.INTEGER)
PAGE_SIZE = openapi.query("pageSize", f"page size, 1 to {MAX_DEVICE_PAGE}", kind=OpenAPIType.INTEGER)
DEVICE_FILTERS = [
    openapi.query("gatewayId", "devices of this gateway (gatewayId or pageNo is required)"), PAGE_NO, PAGE_SIZE,
    openapi.query("nodeType", "ENDPOINT, GATEWAY or UNKNOW", enum=["ENDPOINT", "GATEWAY", "UNKNOW", "UNKNOWN"]),
    openapi.query("deviceType", "device type"), openapi.query("location", "location"), openapi.query("name", "name"),
    openapi.query("status", "device status", enum=sorted(STATUS_VALUES)),
    openapi.query("startTime", "created at or after, yyyyMMdd'T'HHmmss'Z'"),
    openapi.query("endTime", "created at or before, yyyyMMdd'T'HHmmss'Z'"),
    openapi.query("sort", "by creation time", enum=["ASC", "DESC"]),
]
SUBSCRIPTION_FILTERS = [openapi.query("notifyType", "notify type", enum=list(NOTIFY_TYPES)),
                        openapi.query("callbackUrl", "callback URL"), openapi.query("channel", "HTTP")]


# ---------------------------------------------------------------------------------------------
# application authentication

@post(f"{SEC}/login", operation_id="ocLogin", summary="Log in (form: appId, secret)", status_code=200,
      operation_class=openapi.documented(LOGIN_FORM, media_type=openapi.FORM))
async def login(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        form = dict(form_pairs(c.body.decode("utf-8", "replace")))
        form.setdefault("secret", form.get("Secret", ""))
        app_id, secret = required(dict(form), "appId", "secret")
        return tokens(await c.oc.tokens.login(app_id, secret))
    return await handle(request, "login", run, authenticated=False)


@post(f"{SEC}/refreshToken", operation_id="ocRefreshToken", summary="Refresh the access token", status_code=200,
      operation_class=openapi.documented(schemas.RefreshToken))
async def refresh_token(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        b = decode(c.body, schemas.RefreshToken)
        app_id, secret, refresh = required({"appId": b.appId, "secret": b.secret, "refreshToken": b.refreshToken},
                                           "appId", "secret", "refreshToken")
        return tokens(await c.oc.tokens.refresh(app_id, secret, refresh))
    return await handle(request, "login", run, authenticated=False)


@post(f"{SEC}/logout", operation_id="ocLogout", summary="Revoke an access token", status_code=200,
      operation_class=openapi.documented(schemas.Logout))
async def logout(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        b = decode(c.body, schemas.Logout)
        (token,) = required({"accessToken": b.accessToken}, "accessToken")
        await c.oc.tokens.logout(token)
        return no_content()
    return await handle(request, "logout", run, authenticated=False)


# ---------------------------------------------------------------------------------------------
# registration and credentials

@post(f"{REG}/v1.1.0/deviceCredentials", operation_id="ocRegister", status_code=200, security=OC_SECURITY,
      summary="Register a device (verification-code mode)",
      operation_class=openapi.documented(schemas.RegisterVerifyCode, params=[APP_ID]))
async def register(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        b = decode(c.body, schemas.RegisterVerifyCode)
        spec = spec_from(VERIFY_CODE, b.nodeId, info_of(b.deviceInfo), b.productId, {
            "endUserId": text_field(b.endUserId, "endUserId"), "imsi": text_field(b.imsi, "imsi", 64),
            "isSecurity": flag(b.isSecure), "supportedSecurity": flag(b.isSecure), "customFields": b.customFields})
        spec.verify_code, spec.timeout, spec.psk = b.verifyCode, b.timeout, b.psk
        r = await c.oc.registrations.register(c.caller, spec)
        return json_response({"deviceId": r.asset_id, "verifyCode": r.verify_code, "timeout": r.timeout,
                              "psk": r.psk})
    return await handle(request, "register", run)


@post(f"{REG}/v2.0.0/deviceCredentials", operation_id="ocRegisterPassword", status_code=200, security=OC_SECURITY,
      summary="Register a device (password mode, one device one secret)",
      operation_class=openapi.documented(schemas.RegisterPassword, params=[APP_ID]))
async def register_password(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        b = decode(c.body, schemas.RegisterPassword)
        if b.deviceInfo is None:
            raise InvalidArgument("deviceInfo: is required", field="deviceInfo")
        if b.mqttConnect is False:
            raise InvalidArgument("mqttConnect: only true (deviceId + secret) is supported on v2.0.0; register "
                                  "verify-code devices with v1.1.0", field="mqttConnect")
        info = info_of(b.deviceInfo)
        if not info.get("nodeId"):
            raise InvalidArgument("deviceInfo.nodeId: is required", field="deviceInfo.nodeId")
        spec = spec_from(PASSWORD, info.get("nodeId"), info, b.productId, {
            "endUserId": text_field(b.endUserId, "endUserId"), "organization": text_field(b.organization,
                                                                                          "organization"),
            "region": text_field(b.region, "region"), "timezone": text_field(b.timezone, "timezone")})
        spec.secret, spec.psk = b.secret, b.psk
        r = await c.oc.registrations.register(c.caller, spec)
        return json_response({"deviceId": r.asset_id, "psk": r.psk, "secret": r.secret})
    return await handle(request, "register", run)


@put(f"{REG}/v1.1.0/deviceCredentials/{{device_id:str}}", operation_id="ocRefreshDeviceKey", status_code=200,
     summary="Refresh a device key (the device re-binds under the same deviceId)", security=OC_SECURITY,
     operation_class=openapi.documented(schemas.RefreshKey, params=[APP_ID]))
async def refresh_device_key(request: Request[Any, Any, Any], device_id: FromPath[str]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        b = decode(c.body, schemas.RefreshKey)
        text_field(b.nodeId, "nodeId")
        code, timeout = await c.oc.registrations.refresh_key(c.caller, device_id, b.nodeId or None,
                                                      b.verifyCode or None, b.timeout)
        return json_response({"verifyCode": code, "timeout": timeout})
    return await handle(request, "refresh", run)


@put(f"{REG}/v1.1.0/deviceCredentials", operation_id="ocRefreshDeviceKeyNoId", status_code=200,
     include_in_schema=False)
async def refresh_without_id(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        raise OcError(400, "100007", "deviceId: the path names no device")
    return await handle(request, "refresh", run)


@get(f"{REG}/v1.1.0/deviceCredentials/{{device_id:str}}", operation_id="ocActivation", security=OC_SECURITY,
     summary="Query a device's activation status", operation_class=openapi.documented(params=[APP_ID]))
async def activation(request: Request[Any, Any, Any], device_id: FromPath[str]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        view = await c.oc.registrations.activation(c.caller, device_id)
        return json_response({"deviceId": view.device.asset_id, "activated": view.activated,
                              "name": view.device.name.default})
    return await handle(request, "activation", run)


# ---------------------------------------------------------------------------------------------
# device management

def select_imsi(query: dict[str, str]) -> bool:
    value = query.get("select")
    if value not in (None, "", "imsi", "IMSI"):
        raise InvalidArgument("select: the only value is imsi", field="select")
    return bool(value)


@get(f"{DM}/{{device_id:str}}", operation_id="ocQueryDevice", summary="Query one device", security=OC_SECURITY,
     operation_class=openapi.documented(params=[APP_ID, SELECT]))
async def query_device(request: Request[Any, Any, Any], device_id: FromPath[str]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        imsi = select_imsi(c.query)
        return json_response(render.query_device(await c.oc.registrations.get(c.caller, device_id), imsi=imsi))
    return await handle(request, "queryDevice", run)


def device_query(q: dict[str, str]) -> DeviceQuery:
    def choice(name: str, allowed: dict[str, str]) -> str | None:
        value = q.get(name) or None
        if value is not None and value not in allowed:
            raise InvalidArgument(f"{name}: must be one of {', '.join(sorted(set(allowed)))}", field=name)
        return allowed[value] if value is not None else None

    def time_of(name: str) -> int | None:
        value = q.get(name) or None
        if value is None:
            return None
        try:
            return render.parse_time(value, name)
        except ValueError as exc:
            raise InvalidArgument(str(exc), field=name) from None

    sort = choice("sort", {"ASC": "ASC", "DESC": "DESC"})
    return DeviceQuery(
        gateway_id=q.get("gatewayId") or None,
        node_type=choice("nodeType", {"ENDPOINT": "ENDPOINT", "GATEWAY": "GATEWAY", "UNKNOW": "UNKNOWN",
                                      "UNKNOWN": "UNKNOWN"}),
        device_type=q.get("deviceType") or None, location=q.get("location") or None, name=q.get("name") or None,
        status=choice("status", STATUS_VALUES), start_time=time_of("startTime"), end_time=time_of("endTime"),
        ascending=sort == "ASC")


@get(DM, operation_id="ocQueryDevices", summary="Query devices in batches", security=OC_SECURITY,
     operation_class=openapi.documented(params=[APP_ID, SELECT, *DEVICE_FILTERS]))
async def query_devices(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        if not c.query.get("gatewayId") and not c.query.get("pageNo"):
            raise OcError(400, "100218", "gatewayId, pageNo: give at least one")
        page_no = int_param(c.query, "pageNo", 0, 0, MAX_PAGE_NO)
        page_size = int_param(c.query, "pageSize", 25, 1, MAX_DEVICE_PAGE)
        imsi = select_imsi(c.query)
        query = device_query(c.query)
        views: list[OcView] = []
        total = 0
        if query.node_type != "UNKNOWN":  # every Thingport device is an endpoint or a gateway
            views, total = await c.oc.registrations.search(c.caller, query, page_no, page_size)
        return json_response({"totalCount": total, "pageNo": page_no, "pageSize": page_size,
                              "devices": [render.query_device(v, imsi=imsi) for v in views]})
    return await handle(request, "queryDevices", run)


@put(f"{DM}/{{device_id:str}}", operation_id="ocModifyDevice", status_code=200, summary="Modify device information",
     security=OC_SECURITY, operation_class=openapi.documented(schemas.ModifyDevice, params=[APP_ID]))
async def modify_device(request: Request[Any, Any, Any], device_id: FromPath[str]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        b = decode(c.body, schemas.ModifyDevice)
        if b.productId is not None:
            raise InvalidArgument("productId: a device cannot move to another product", field="productId")
        if b.psk is not None:
            raise InvalidArgument("psk: the psk is set at registration and cannot be changed", field="psk")
        if b.mute not in (None, "TRUE", "FALSE"):
            raise InvalidArgument("mute: must be TRUE or FALSE", field="mute")
        info: dict[str, Any] = {}
        for key in ("manufacturerId", "manufacturerName", "model", "protocolType", "endUser", "organization",
                    "region", "timezone", "ip"):
            value = text_field(getattr(b, key), key)
            if value is not None:
                info[key] = value
        if b.imsi is not None:
            info["imsi"] = text_field(b.imsi, "imsi", 64)
        if b.isSecure is not None:
            info["isSecurity"] = info["supportedSecurity"] = flag(b.isSecure)
        for key in ("customFields", "tags", "deviceConfig"):
            if getattr(b, key) is not None:
                info[key] = getattr(b, key)
        patch = DevicePatchOc(name=text_field(b.name, "name"),
                              enabled=None if b.mute is None else b.mute == "FALSE",
                              device_type=text_field(b.deviceType, "deviceType"),
                              location=text_field(b.location, "location", 1024), info=info)
        await c.oc.registrations.modify(c.caller, device_id, patch)
        return no_content()
    return await handle(request, "modify", run)


@delete(f"{DM}/{{device_id:str}}", operation_id="ocDeleteDevice", status_code=200, summary="Delete a device",
        security=OC_SECURITY, operation_class=openapi.documented(params=[APP_ID, CASCADE]))
async def delete_device(request: Request[Any, Any, Any], device_id: FromPath[str]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        cascade = c.query.get("cascade", "true").lower()
        if cascade not in ("true", "false"):
            raise InvalidArgument("cascade: must be true or false", field="cascade")
        await c.oc.registrations.delete(c.caller, device_id, cascade == "true")
        return no_content()
    return await handle(request, "delete", run)


# ---------------------------------------------------------------------------------------------
# subscriptions

def check_callback(url: str | None) -> str:
    if not url:
        raise InvalidArgument("callbackUrl: is required", field="callbackUrl")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port raises here
    except ValueError:
        parts = None
    if len(url) > 1024 or parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument("callbackUrl: must be an http:// or https:// URL of at most 1024 characters",
                              field="callbackUrl")
    return url


def subscription(s: Any) -> dict[str, Any]:
    return {"subscriptionId": s.subscription_id, "notifyType": s.notify_type, "callbackUrl": s.callback_url}


@post(SUB, operation_id="ocSubscribe", status_code=201, summary="Subscribe to pushes of one notifyType",
      security=OC_SECURITY, operation_class=openapi.documented(schemas.Subscribe, params=[APP_ID]))
async def subscribe(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        b = decode(c.body, schemas.Subscribe)
        if b.notifyType not in NOTIFY_TYPES:
            raise InvalidArgument(f"notifyType: Thingport pushes {', '.join(NOTIFY_TYPES)}", field="notifyType")
        if (b.channel or "HTTP") != "HTTP":
            raise InvalidArgument("channel: only HTTP callbacks are supported", field="channel")
        url = check_callback(b.callbackUrl)
        caller = c.caller
        if b.appId and b.appId != caller.app_key:
            assert c.app is not None
            caller = await act_for(c.services, c.app, b.appId)
        sub = await c.oc.subscriptions.subscribe(caller, b.notifyType, url, "HTTP")
        return json_response(subscription(sub), 201)
    return await handle(request, "subscribe", run)


@get(f"{SUB}/{{subscription_id:str}}", operation_id="ocQuerySubscription", summary="Query one subscription",
     security=OC_SECURITY, operation_class=openapi.documented(params=[APP_ID]))
async def query_subscription(request: Request[Any, Any, Any], subscription_id: FromPath[str]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        return json_response(subscription(await c.oc.subscriptions.get(c.caller, subscription_id)))
    return await handle(request, "subscription", run)


def sub_filters(q: dict[str, str]) -> dict[str, str | None]:
    return {"notify_type": q.get("notifyType") or None, "callback_url": q.get("callbackUrl") or None,
            "channel": q.get("channel") or None}


@get(SUB, operation_id="ocQuerySubscriptions", summary="Query subscriptions in batches", security=OC_SECURITY,
     operation_class=openapi.documented(params=[APP_ID, *SUBSCRIPTION_FILTERS, PAGE_NO, PAGE_SIZE]))
async def query_subscriptions(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        page_no = int_param(c.query, "pageNo", 0, 0, MAX_PAGE_NO)
        page_size = int_param(c.query, "pageSize", 10, 1, MAX_DEVICE_PAGE)
        subs, total = await c.oc.subscriptions.search(c.caller, sub_filters(c.query), page_no, page_size)
        return json_response({"totalCount": total, "pageNo": page_no, "pageSize": page_size,
                              "subscriptions": [subscription(s) for s in subs]})
    return await handle(request, "subscriptions", run)


@delete(f"{SUB}/{{subscription_id:str}}", operation_id="ocDeleteSubscription", status_code=200,
        summary="Delete one subscription", security=OC_SECURITY, operation_class=openapi.documented(params=[APP_ID]))
async def delete_subscription(request: Request[Any, Any, Any], subscription_id: FromPath[str]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        await c.oc.subscriptions.unsubscribe(c.caller, subscription_id)
        return no_content()
    return await handle(request, "unsubscribe", run)


@delete(SUB, operation_id="ocDeleteSubscriptions", status_code=200, security=OC_SECURITY,
        summary="Delete subscriptions in batches (by notifyType, callbackUrl, channel)",
        operation_class=openapi.documented(params=[APP_ID, *SUBSCRIPTION_FILTERS]))
async def delete_subscriptions(request: Request[Any, Any, Any]) -> Response[bytes]:
    async def run(c: Ctx) -> Response[bytes]:
        await c.oc.subscriptions.unsubscribe_all(c.caller, sub_filters(c.query))
        return no_content()
    return await handle(request, "unsubscribe", run)


router = Router(path="/", tags=["OceanConnect"], exception_handlers=oc_errors.map, route_handlers=[
    login, refresh_token, logout, register, register_password, refresh_device_key, refresh_without_id, activation,
    query_device, query_devices, modify_device, delete_device, subscribe, query_subscription, query_subscriptions,
    delete_subscription, delete_subscriptions,
])
