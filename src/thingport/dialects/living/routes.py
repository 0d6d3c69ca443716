"""Living Platform app API: one POST route per API path, the vendor's envelope on every one.

The dispatcher does what all APIs share (gateway signature, envelope, ``apiVer``, iotToken);
:data:`living_errors` answers every error; each API is one small function: decode ``params``, call
one service, shape ``data``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, Router, post
from litestar.openapi.spec import SecurityScheme

from thingport.dialects import openapi
from thingport.dialects.common import (
    BodyTooLarge,
    ErrorHandlers,
    convert,
    decode,
    query_pairs,
    read_body,
    request_id,
    scoped,
)
from thingport.dialects.living import errors, schemas
from thingport.dialects.living.auth import GatewayError, authenticate
from thingport.domain import validate
from thingport.domain.errors import DomainError, InvalidArgument
from thingport.domain.models import Application, DeviceStatus, Page
from thingport.services.container import Services
from thingport.services.living_accounts import NET_TYPES, BoundDevice, EndUser, SessionTokens
from thingport.services.provisioning import CipherRequest

log = logging.getLogger(__name__)
JSON = "application/json;charset=UTF-8"
API_VER = re.compile(r"1\.[0-9]{1,9}\.[0-9]{1,9}")
S = TypeVar("S")
STATUS = {DeviceStatus.INACTIVE: 0, DeviceStatus.ONLINE: 1, DeviceStatus.OFFLINE: 3, DeviceStatus.DISABLED: 8}


@dataclass(slots=True)
class Call:
    services: Services
    app: Application
    user: EndUser | None
    params: dict[str, Any]
    #: The ``params`` type the API documents, the one :meth:`decode` converts to.
    declared: type[Any]

    @property
    def me(self) -> EndUser:
        assert self.user is not None
        return self.user

    def decode(self, kind: type[S]) -> S:
        """``params`` as ``kind``, which must be the type the API documents; a type error names the
        field (``params.time``)."""
        if kind is not self.declared:
            raise TypeError(f"the API documents {self.declared}, reads {kind}")
        return convert(self.params, kind, prefix="params")


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Api:
    path: str
    handler: Handler
    user: bool  # needs an iotToken
    summary: str
    params: type[Any]


APIS: list[Api] = []


def api(path: str, summary: str, params: type[Any], *, user: bool = True) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        APIS.append(Api(path, fn, user, summary, params))
        return fn
    return register


def page_of(number: int | None, size: int | None, max_size: int, *, names: tuple[str, str] = ("pageNo", "pageSize")
            ) -> Page:
    return validate.page(number, size, max_size, names=names, prefix="params.")


def required(value: str | None, name: str) -> str:
    if not value:
        raise InvalidArgument(f"params.{name}: is required", field=name)
    return value


def development(env: str | None) -> bool:
    if env not in (None, "", "dev", "release"):
        raise InvalidArgument("params.productStatusEnv: 'dev' or 'release'", field="productStatusEnv")
    return env == "dev"


# ---------------------------------------------------------------------------------------------
# accounts

def session_data(s: SessionTokens) -> dict[str, Any]:
    return {"identityId": s.identity_id, "iotToken": s.iot_token, "iotTokenExpire": s.iot_token_expire_s,
            "refreshToken": s.refresh_token, "refreshTokenExpire": s.refresh_token_expire_s}


@api("/account/createSessionByAuthCode", "Exchange an operator-minted auth code for an iotToken session",
     schemas.CreateSession, user=False)
async def create_session(c: Call) -> Any:
    p = c.decode(schemas.CreateSession)
    code = (p.request.authCode if p.request else None) or p.authCode
    return session_data(await c.services.living.create_session(c.app, code or ""))


@api("/account/checkOrRefreshSession", "Renew a session with its refreshToken", schemas.Refresh, user=False)
async def refresh_session(c: Call) -> Any:
    p = c.decode(schemas.Refresh)
    r = p.request or schemas.RefreshRequest()
    refresh = r.refreshToken or p.refreshToken
    identity = r.identityId or p.identityId or ""
    return session_data(await c.services.living.refresh_session(c.app, refresh or "", identity))


@api("/iotx/account/invalidSession", "End a session (log out)", schemas.Refresh, user=False)
async def invalidate_session(c: Call) -> Any:
    p = c.decode(schemas.Refresh)
    r = p.request or schemas.RefreshRequest()
    await c.services.living.invalidate_session(c.app, r.iotToken or p.iotToken or "",
                                               r.identityId or p.identityId or "")
    return None


# ---------------------------------------------------------------------------------------------
# homes and bindings

@api("/living/home/create", "Create a home", schemas.HomeCreate)
async def home_create(c: Call) -> Any:
    p = c.decode(schemas.HomeCreate)
    if p.name is None:
        raise InvalidArgument("params.name: is required", field="name")
    return (await c.services.living.create_home(c.me, p.name)).home_id


@api("/living/home/query", "The caller's homes, paged", schemas.Paging)
async def home_query(c: Call) -> Any:
    p = c.decode(schemas.Paging)
    page = page_of(p.pageNo, p.pageSize, 20)
    homes, total, current = await c.services.living.homes(c.me, page)
    return {"total": total, "pageNo": page.number, "pageSize": page.size,
            "data": [{"homeId": h.home_id, "name": h.name, "myRole": "ADMIN", "currentHome": h.home_id == current,
                      "createMillis": h.create_time} for h in homes]}


@api("/living/home/get", "One home with its device counts", schemas.HomeGet)
async def home_get(c: Call) -> Any:
    p = c.decode(schemas.HomeGet)
    home, current, devices, online = await c.services.living.home(c.me, required(p.homeId, "homeId"))
    return {"homeId": home.home_id, "name": home.name, "myRole": "ADMIN", "currentHome": current,
            "createMillis": home.create_time, "roomCnt": 0, "deviceCnt": devices, "deviceOnlineCnt": online}


def binding_data(b: BoundDevice) -> dict[str, Any]:
    d, p, m = b.device, b.product, b.meta
    return {
        "identityId": b.binding.identity_id, "iotId": d.asset_id, "productKey": d.product_key,
        "deviceName": d.device_key, "productName": p.name.default, "nickName": d.name.default,
        "netType": NET_TYPES.get(m.net_type, "NET_OTHER"), "thingType": "DEVICE",
        "nodeType": "GATEWAY" if p.is_gateway else "DEVICE", "status": STATUS[d.status],
        "owned": 1 if b.binding.owned else 0, "subDevice": d.gateway_asset_id is not None,
        "categoryKey": m.category_key, "categoryName": m.category_name, "homeId": b.binding.home_id,
        "bindTime": b.binding.bind_time, "gmtModified": d.update_time,
    }


@api("/uc/listBindingByAccount", "Devices bound to the caller, paged", schemas.BindingsByAccount)
async def list_by_account(c: Call) -> Any:
    p = c.decode(schemas.BindingsByAccount)
    page = page_of(p.pageNo, p.pageSize, 100)
    if p.owned not in (None, 0, 1):
        raise InvalidArgument("params.owned: 0, 1 or absent", field="owned")
    if p.nodeType not in (None, "DEVICE", "GATEWAY"):
        raise InvalidArgument("params.nodeType: 'DEVICE' or 'GATEWAY'", field="nodeType")
    if p.thingType not in (None, "DEVICE"):  # Thingport binds real devices only
        return {"total": 0, "pageNo": page.number, "pageSize": page.size, "data": []}
    found, total = await c.services.living.bindings(c.me, page, owned=None if p.owned is None else bool(p.owned),
                                                    node_type=p.nodeType)
    return {"total": total, "pageNo": page.number, "pageSize": page.size, "data": [binding_data(b) for b in found]}


@api("/uc/listBindingByDev", "Users bound to a device the caller is bound to", schemas.BindingsByDevice)
async def list_by_device(c: Call) -> Any:
    p = c.decode(schemas.BindingsByDevice)
    page = page_of(p.pageNo, p.pageSize, 100)
    rows, total = await c.services.living.device_users(c.me, required(p.iotId, "iotId"), page)
    return {"total": total, "pageNo": page.number, "pageSize": page.size,
            "data": [{"identityId": b.identity_id, "identityAlias": u.login, "owned": 1 if b.owned else 0,
                      "bindTime": b.bind_time} for b, u in rows]}


@api("/uc/unbindAccountAndDev", "Unbind: a member their own binding, the owner everyone's", schemas.Unbind)
async def unbind(c: Call) -> Any:
    p = c.decode(schemas.Unbind)
    await c.services.living.unbind(c.me, required(p.iotId, "iotId"), unbind_sub_devices=p.unbindSubdevice)
    return None


# ---------------------------------------------------------------------------------------------
# the provisioning service (seed document)

@api("/awss/enrollee/list/get", "Devices discovered nearby by the caller's devices", schemas.EnrolleeList)
async def enrollee_list(c: Call) -> Any:
    p = c.decode(schemas.EnrolleeList)
    page = page_of(p.pageNum, p.pageSize, 100, names=("pageNum", "pageSize"))
    found, total = await c.services.provisioning.enrollees(c.me, page,
                                                           include_development=development(p.productStatusEnv))
    return {"totalNum": total, "items": [{
        "gmtCreate": v.row.create_time, "gmtModified": v.row.update_time,
        "regIotId": v.registrar.asset_id, "regProductKey": v.registrar.product_key,
        "regDeviceName": v.registrar.device_key, "regProductName": v.registrar_product.name.default,
        "enrolleeIotId": v.enrollee.asset_id, "enrolleeProductKey": v.enrollee.product_key,
        "enrolleeDeviceName": v.enrollee.device_key, "enrolleeProductName": v.enrollee_product.name.default,
        "bssid": v.row.bssid, "ssid": v.row.ssid, "rssi": v.row.rssi, "type": v.row.type, "status": v.row.status,
    } for v in found]}


MAX_FILTER = 100


@api("/awss/enrollee/product/filter", "Keep the locally found devices that may be bound", schemas.ProductFilter)
async def product_filter(c: Call) -> Any:
    p = c.decode(schemas.ProductFilter)
    if not p.iotDevices:
        raise InvalidArgument("params.iotDevices: is required and must not be empty", field="iotDevices")
    if len(p.iotDevices) > MAX_FILTER:
        raise InvalidArgument(f"params.iotDevices: at most {MAX_FILTER} devices", field="iotDevices")
    items = [(required(d.productKey, f"iotDevices[{i}].productKey"),
              required(d.deviceName, f"iotDevices[{i}].deviceName")) for i, d in enumerate(p.iotDevices)]
    found = await c.services.provisioning.filter_devices(c.me, items, reset=p.reset,
                                                         include_development=development(p.productStatusEnv))
    return [{"productKey": f.product_key, "deviceName": f.device_name, "productName": f.product.name.default,
             "netType": f.meta.net_type, "nodeType": 1 if f.product.is_gateway else 0,
             "categoryKey": f.meta.category_key, "categoryName": f.meta.category_name,
             "categoryId": f.meta.category_id} for f in found]


@api("/awss/token/check", "Which device reported this bind token", schemas.TokenCheck)
async def token_check(c: Call) -> Any:
    p = c.decode(schemas.TokenCheck)
    d = await c.services.provisioning.check_token(c.me, required(p.token, "token"), p.productKey, p.deviceName)
    return {"productKey": d.product_key, "deviceName": d.device_key, "iotId": d.asset_id}


@api("/awss/token/user/bind", "Bind a device by the token it reported", schemas.TokenBind)
async def token_bind(c: Call) -> Any:
    p = c.decode(schemas.TokenBind)
    d = await c.services.provisioning.bind_by_token(c.me, required(p.productKey, "productKey"),
                                                    required(p.deviceName, "deviceName"),
                                                    required(p.token, "token"), p.homeId)
    return d.asset_id


@api("/awss/time/window/user/bind", "Bind a device within its bind window after power-on", schemas.WindowBind)
async def window_bind(c: Call) -> Any:
    p = c.decode(schemas.WindowBind)
    d = await c.services.provisioning.bind_by_window(c.me, required(p.productKey, "productKey"),
                                                     required(p.deviceName, "deviceName"), p.homeId)
    return d.asset_id


@api("/awss/cipher/get", "The provisioning key for a device", schemas.CipherGet)
async def cipher_get(c: Call) -> Any:
    p = c.decode(schemas.CipherGet)
    info = p.deviceInfoForCipher
    if info is None:
        raise InvalidArgument("params.deviceInfoForCipher: is required", field="deviceInfoForCipher")
    if not info.productKey:
        what = "productId lookup (Bluetooth) is not supported; send productKey" if info.productId else "is required"
        raise InvalidArgument(f"params.deviceInfoForCipher.productKey: {what}", field="deviceInfoForCipher.productKey")
    req = CipherRequest(info.productKey, info.deviceName or None, 3 if info.cipherType is None else info.cipherType,
                        info.random or "", info.params.mac if info.params else None)
    try:
        return await c.services.provisioning.app_cipher(c.me, req)
    except InvalidArgument as err:  # name the field where the client put it
        raise InvalidArgument(f"params.deviceInfoForCipher.{err.message}",
                              field=f"deviceInfoForCipher.{err.field}") from err


@api("/thing/gateway/permit", "Let a gateway accept sub-devices for a while (owner only)", schemas.Permit)
async def gateway_permit(c: Call) -> Any:
    p = c.decode(schemas.Permit)
    if p.time is None:
        raise InvalidArgument("params.time: is required", field="time")
    await c.services.provisioning.permit(c.me, required(p.iotId, "iotId"), p.productKey, p.time)
    return None


@api("/thing/topo/remove", "Remove a sub-device from a gateway (owner only)", schemas.TopoRemove)
async def topo_remove(c: Call) -> Any:
    p = c.decode(schemas.TopoRemove)
    await c.services.provisioning.remove_sub_device(c.me, required(p.iotId, "iotId"),
                                                    required(p.subIotId or p.subIotid, "subIotId"))
    return None


# ---------------------------------------------------------------------------------------------
# the dispatcher

def respond(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type=JSON, headers=headers)


def failure(code: int, message: str, rid: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "localizedMsg": errors.TEXTS.get(code, message), "data": None, "id": rid}


@dataclass(slots=True)
class Exchange:
    """The ``id`` of the answer: the request's ``id``, else its ``X-Ca-Nonce``, else a fresh one."""

    rid: Any = field(default_factory=request_id)


def rid_of(request: Request[Any, Any, Any]) -> Any:
    return scoped(request, Exchange).rid


async def dispatch(request: Request[Any, Any, Any], target: Api) -> Response[bytes]:
    x = scoped(request, Exchange)
    services: Services = request.app.state.services
    body = await read_body(request, services)
    headers = {k.lower(): v for k, v in request.headers.items()}
    app = await authenticate(services, request.method, request.url.path,
                             query_pairs(request.scope["query_string"]), headers, body)
    env = decode(body, schemas.Envelope)
    x.rid = env.id if env.id not in (None, "") else headers.get("x-ca-nonce", x.rid)
    meta = env.request or schemas.CommonParams()
    if not meta.apiVer or not API_VER.fullmatch(meta.apiVer):
        raise InvalidArgument(f"request.apiVer: '{meta.apiVer or ''}' is not a 1.x.y version", field="apiVer")
    user = await services.living.authenticate(app, meta.iotToken or "") if target.user else None
    data = await target.handler(Call(services, app, user, env.params or {}, target.params))
    return respond({"code": 200, "message": "success", "data": data, "id": x.rid})


living_errors = ErrorHandlers()


@living_errors.on(GatewayError)
def gateway_error(request: Request[Any, Any, Any], err: GatewayError) -> Response[bytes]:
    msg = err.message.encode("latin-1", "replace").decode("latin-1")
    return respond(failure(err.status, err.message, rid_of(request)), err.status, {"X-Ca-Error-Message": msg})


@living_errors.on(BodyTooLarge)
def too_large(request: Request[Any, Any, Any], err: BodyTooLarge) -> Response[bytes]:
    """Refused like the vendor's gateway refuses it, before the signature is checked."""
    return gateway_error(request, GatewayError(413, f"Request Body Too Large: at most {err.limit} bytes"))


@living_errors.on(DomainError)
def domain_error(request: Request[Any, Any, Any], err: DomainError) -> Response[bytes]:
    return respond(failure(errors.code_for(err), err.message, rid_of(request)))


@living_errors.unexpected(log, lambda request: f"request {rid_of(request)}")
def internal_error(request: Request[Any, Any, Any]) -> Response[bytes]:
    return respond(failure(500, "service error", rid_of(request)))


SECURITY_SCHEMES = {
    "livingGateway": SecurityScheme(
        type="apiKey", name="X-Ca-Key", security_scheme_in="header",
        description="The API-gateway signature: X-Ca-Key, X-Ca-Nonce, X-Ca-Timestamp or Date, Content-MD5, "
                    "X-Ca-Signature-Headers and X-Ca-Signature (HMAC-SHA256 of the string to sign), docs/living.md"),
}


def envelope_schema(params: type[Any], user: bool) -> Callable[[], dict[str, Any]]:
    """The body schema of one API: the vendor's envelope around its ``params``."""
    def write() -> dict[str, Any]:
        return {"type": "object", "required": ["request"], "properties": {
            "id": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "version": {"type": "string"},
            "request": openapi.ref(schemas.CommonParams), "params": openapi.ref(params)},
            "description": "request.apiVer is 1.x.y" + ("; request.iotToken the caller's session" if user else "")}
    return write


def _route(target: Api) -> Any:
    async def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await dispatch(request, target)

    name = "living" + "".join(part[:1].upper() + part[1:] for part in re.split(r"[/_]", target.path) if part)
    handler.__name__ = name
    return post(target.path, operation_id=name, summary=target.summary, status_code=200,
                security=[{"livingGateway": []}],
                operation_class=openapi.documented(envelope_schema(target.params, target.user),
                                                   uses=[schemas.CommonParams, target.params]),
                description="Signed with the API-gateway scheme (X-Ca-*); envelope "
                            "{id, version, request: {apiVer, iotToken}, params}.")(handler)


router = Router(path="/", route_handlers=[_route(a) for a in APIS], tags=["Living"],
                exception_handlers=living_errors.map)
