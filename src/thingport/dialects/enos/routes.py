"""Connect Service routes: ``/connect-service/{version}/{products|devices|device-topos}?action=…``.

Each action is one small function: decode the body, call one service, render the answer. The
dispatcher handles what they share: versions, authentication, the envelope and errors.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Parameter, SecurityScheme
from litestar.params import FromPath

from thingport.crypto import signing
from thingport.dialects import lane, openapi
from thingport.dialects.common import (
    BodyTooLarge,
    ErrorHandlers,
    convert,
    decode,
    int_param,
    project,
    query_pairs,
    read_body,
    request_id,
    scoped,
)
from thingport.dialects.enos import answers, errors, render, schemas
from thingport.dialects.enos.auth import Authenticated, authenticate, check_timestamp
from thingport.domain import expression, validate
from thingport.domain.errors import DomainError, InvalidArgument, PublicKeyMissing, Unauthenticated
from thingport.domain.models import I18nText, Page, Permission, ProductType, now_ms
from thingport.services.container import Services
from thingport.services.devices import DevicePatch, DeviceRef, DeviceSpec
from thingport.services.products import ProductPatch, ProductSpec

log = logging.getLogger(__name__)
JSON = "application/json;charset=UTF-8"
T = TypeVar("T")


@dataclass(slots=True)
class Call:
    """One decoded Connect Service request, authenticated."""

    services: Services
    auth: Authenticated
    version: str
    action: str
    query: dict[str, str]
    body: bytes
    #: The body type the action documents (``action(…, body=…)``), the one :meth:`read` decodes.
    declared: type[Any] | None = None

    @property
    def caller(self) -> Any:
        return self.auth.caller

    def read(self, kind: type[T]) -> T:
        """The body as ``kind``, which must be the type the action documents: what the OpenAPI
        document shows for an action and what it decodes cannot drift apart."""
        if kind is not self.declared:
            raise TypeError(f"action {self.action} documents {self.declared}, reads {kind}")
        return decode(self.body, kind)

    def ref(self) -> DeviceRef:
        q = self.query
        return DeviceRef(q.get("assetId") or None, q.get("productKey") or None, q.get("deviceKey") or None)

    def secrets(self, require: bool, needed: Permission = Permission.DEVICE_FULL) -> render.SecretPolicy:
        """The secret policy for this answer; 11858 before any change when no public key is on file."""
        if self.version == "v2.4" and require and not self.auth.app.rsa_public_key:
            raise PublicKeyMissing("requireSecret: the application has no RSA public key to encrypt secrets for",
                                   field="requireSecret")
        return render.SecretPolicy(self.version, require, self.auth.app, needed)

    def flag(self, name: str) -> bool:
        value = self.query.get(name, "false").lower()
        if value not in ("true", "false"):
            raise InvalidArgument(f"{name}: must be true or false", field=name)
        return value == "true"


@dataclass(slots=True)
class Reply:
    data: Any
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Action:
    method: str
    versions: frozenset[str]
    handler: Handler
    #: The JSON body it reads (None: none), and the query parameters it reads besides orgId.
    body: type[Any] | None = None
    query: tuple[str, ...] = ()


V21 = frozenset({"v2.1"})
V21_24 = frozenset({"v2.1", "v2.4"})
ACTIONS: dict[tuple[str, str], Action] = {}
#: The query parameters actions read, as the OpenAPI document describes them.
QUERY = {
    "assetId": "the device (or productKey + deviceKey)",
    "productKey": "the product; with deviceKey, the device",
    "deviceKey": "the device, with productKey",
    "requireSecret": "true: include secrets (v2.4: encrypted for the application's public key)",
    "pageNo": "page number, from 1", "pageSize": "page size",
}
DEVICE = ("assetId", "productKey", "deviceKey")


def action(resource: str, names: str, method: str, versions: frozenset[str], *, body: type[Any] | None = None,
           query: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names.split("|"):
            ACTIONS[(resource, name)] = Action(method, versions, fn, body, query)
        return fn
    return register


# ---------------------------------------------------------------------------------------------
# shared decoding

def page_of(p: schemas.Pagination | None, max_size: int) -> Page:
    p = p or schemas.Pagination()
    if p.sorters:
        raise InvalidArgument("pagination.sorters: not supported; results are sorted by createTime descending",
                              field="pagination.sorters")
    return validate.page(p.pageNo, p.pageSize, max_size, names=("pagination.pageNo", "pagination.pageSize"))


def paged(items: list[Any], total: int, page: Page) -> dict[str, Any]:
    return {"pagination": {"sortedBy": None, "pageNo": page.number, "pageSize": page.size, "totalSize": total}}


def name_of(value: schemas.Name | None, field: str) -> I18nText:
    if value is None:
        raise InvalidArgument(f"{field}: is required", field=field)
    raw = value if isinstance(value, str) else {"defaultValue": value.defaultValue, "i18nValue": value.i18nValue}
    return validate.i18n(raw, field=field)


def device_spec(body: schemas.DeviceCreate, prefix: str = "") -> DeviceSpec:
    if not body.productKey:
        raise InvalidArgument(f"{prefix}productKey: is required", field=f"{prefix}productKey")
    if body.timezone is None:
        raise InvalidArgument(f"{prefix}timezone: is required", field=f"{prefix}timezone")
    return DeviceSpec(
        product_key=body.productKey,
        name=name_of(body.deviceName, f"{prefix}deviceName"),
        timezone=validate.timezone(body.timezone, field=f"{prefix}timezone"),
        device_key=body.deviceKey,
        attributes=validate.attributes(body.deviceAttributes, field=f"{prefix}deviceAttributes"),
        tags=validate.tags(body.deviceTags, field=f"{prefix}deviceTags"),
        description=validate.text(body.deviceDesc, field=f"{prefix}deviceDesc"),
    )


def identifier(ident: schemas.Identifier | None, field: str) -> DeviceRef:
    if ident is None:
        raise InvalidArgument(f"{field}: is required ({{assetId}} or {{productKey, deviceKey}})", field=field)
    try:
        return DeviceRef(ident.assetId or None, ident.productKey or None, ident.deviceKey or None)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{field}: give assetId, or productKey and deviceKey", field=field) from exc


# ---------------------------------------------------------------------------------------------
# products

@action("products", "create", "POST", V21, body=schemas.ProductCreate)
async def create_product(c: Call) -> Reply:
    b = c.read(schemas.ProductCreate)
    if b.productType not in ("Device", "Gateway"):
        raise InvalidArgument("productType: must be 'Device' or 'Gateway'", field="productType")
    if b.dataFormat not in ("Custom", "Json"):
        raise InvalidArgument("dataFormat: must be 'Custom' or 'Json'", field="dataFormat")
    if not b.modelId:
        raise InvalidArgument("modelId: is required", field="modelId")
    if b.biDirectionalAuth is None:
        raise InvalidArgument("biDirectionalAuth: is required", field="biDirectionalAuth")
    spec = ProductSpec(
        name=name_of(b.productName, "productName"), product_type=ProductType(b.productType),
        data_format=b.dataFormat, model_id=b.modelId, bidirectional_auth=b.biDirectionalAuth,
        description=validate.text(b.productDesc, field="productDesc"),
        dynamic_activate_enabled=bool(b.dynamicActivateEnabled if b.dynamicActivateEnabled is not None
                                      else b.dynamicActiveEnabled),
        tags=validate.tags(b.productTags, field="productTags"),
    )
    product = await c.services.products.create(c.caller, spec)
    return Reply(product.product_key)


def product_key_param(c: Call) -> str:
    key = c.query.get("productKey")
    if not key:
        raise InvalidArgument("productKey: is required", field="productKey")
    return key


@action("products", "get", "GET", V21_24, query=("productKey", "requireSecret"))
async def get_product(c: Call) -> Reply:
    secrets = c.secrets(c.flag("requireSecret"), Permission.PRODUCT_UPDATE)
    product = await c.services.products.get(c.caller, product_key_param(c))
    return Reply(render.product(product, secrets))


@action("products", "search", "POST", V21_24, body=schemas.SearchBody)
async def search_products(c: Call) -> Reply:
    b = c.read(schemas.SearchBody)
    secrets = c.secrets(b.requireSecret, Permission.PRODUCT_UPDATE)
    expr = expression.parse(b.expression, expression.PRODUCT_FIELDS)
    page = page_of(b.pagination, c.services.core.settings.max_page_size)
    found, total = await c.services.products.search(c.caller, expr, page)
    return Reply(project([render.product(p, secrets) for p in found], b.projection), paged(found, total, page))


@action("products", "update", "POST", V21, body=schemas.ProductCreate, query=("productKey",))
async def update_product(c: Call) -> Reply:
    b = c.read(schemas.ProductCreate)
    if b.biDirectionalAuth is None:
        raise InvalidArgument("biDirectionalAuth: is required", field="biDirectionalAuth")
    patch = ProductPatch(
        name=name_of(b.productName, "productName"), bidirectional_auth=b.biDirectionalAuth,
        description=validate.text(b.productDesc, field="productDesc"),
        dynamic_activate_enabled=b.dynamicActivateEnabled if b.dynamicActivateEnabled is not None
        else b.dynamicActiveEnabled,
        tags=validate.tags(b.productTags, field="productTags") if b.productTags is not None else None,
    )
    product = await c.services.products.update(c.caller, product_key_param(c), patch)
    return Reply(product.product_key)


@action("products", "delete", "POST", V21, query=("productKey",))
async def delete_product(c: Call) -> Reply:
    key = product_key_param(c)
    await c.services.products.delete(c.caller, key)
    return Reply(key)


# ---------------------------------------------------------------------------------------------
# devices

@action("devices", "create", "POST", V21_24, body=schemas.DeviceCreate)
async def create_device(c: Call) -> Reply:
    b = c.read(schemas.DeviceCreate)
    secrets = c.secrets(b.requireSecret)
    view = await c.services.devices.create(c.caller, device_spec(b), key_version=c.version)
    return Reply(render.create_result(view.device, secrets))


@action("devices", "batchCreate", "POST", frozenset({"v2.0", "v2.1", "v2.4"}), body=schemas.BatchCreate)
async def batch_create(c: Call) -> Reply:
    b = c.read(schemas.BatchCreate)
    if not b.deviceList:
        raise InvalidArgument("deviceList: is required and must not be empty", field="deviceList")
    secrets = c.secrets(b.requireSecret)
    specs: list[DeviceSpec | DomainError] = []
    for i, raw in enumerate(b.deviceList):
        try:
            item = convert(raw, schemas.DeviceCreate, prefix=f"deviceList[{i}]")
            specs.append(device_spec(item, f"deviceList[{i}]."))
        except DomainError as err:
            specs.append(err)
    results = await c.services.devices.batch_create(c.caller, specs, key_version=c.version)
    data: list[dict[str, Any]] = []
    for r in results:
        if isinstance(r, DomainError):
            code = errors.code_for(r)
            data.append({"code": code, "msg": errors.message_for(r, code), "data": None})
        else:
            data.append({"code": 0, "msg": "OK", "data": render.create_result(r.device, secrets)})
    ok = sum(1 for d in data if d["code"] == 0)
    return Reply(data, {"successSize": ok, "totalSize": len(data)})


@action("devices", "get", "GET", V21_24, query=(*DEVICE, "requireSecret"))
async def get_device(c: Call) -> Reply:
    secrets = c.secrets(c.flag("requireSecret"))
    view = await c.services.devices.get(c.caller, c.ref())
    return Reply(render.device(view, secrets))


@action("devices", "search", "POST", V21_24, body=schemas.SearchBody)
async def search_devices(c: Call) -> Reply:
    b = c.read(schemas.SearchBody)
    secrets = c.secrets(b.requireSecret)
    expr = expression.parse(b.expression, expression.DEVICE_FIELDS)
    page = page_of(b.pagination, c.services.core.settings.max_page_size)
    found, total = await c.services.devices.search(c.caller, expr, page)
    return Reply(project([render.device(v, secrets) for v in found], b.projection), paged(found, total, page))


@action("devices", "update", "POST", V21, body=schemas.DeviceUpdate, query=DEVICE)
async def update_device(c: Call) -> Reply:
    b = c.read(schemas.DeviceUpdate)
    ref = c.ref()
    if b.timezone is None:
        raise InvalidArgument("timezone: is required", field="timezone")
    patch = DevicePatch(
        name=name_of(b.deviceName, "deviceName"),
        timezone=validate.timezone(b.timezone),
        attributes=validate.attributes(b.deviceAttributes) if b.deviceAttributes is not None else None,
        tags=validate.tags(b.deviceTags, field="deviceTags") if b.deviceTags is not None else None,
        description=validate.text(b.deviceDesc, field="deviceDesc"),
    )
    await c.services.devices.update(c.caller, ref, patch)
    return Reply(None)


@action("devices", "delete", "POST", V21, query=DEVICE)
async def delete_device(c: Call) -> Reply:
    await c.services.devices.delete(c.caller, c.ref())
    return Reply(None)


@action("devices", "enable", "POST", V21, query=DEVICE)
async def enable_device(c: Call) -> Reply:
    await c.services.devices.set_enabled(c.caller, c.ref(), True)
    return Reply(None)


@action("devices", "disable", "POST", V21, query=DEVICE)
async def disable_device(c: Call) -> Reply:
    await c.services.devices.set_enabled(c.caller, c.ref(), False)
    return Reply(None)


@action("devices", "replaceDevice", "POST", V21_24, body=schemas.ReplaceBody, query=DEVICE)
async def replace_device(c: Call) -> Reply:
    b = c.read(schemas.ReplaceBody)
    ref = c.ref()
    if not b.newDeviceKey:
        raise InvalidArgument("newDeviceKey: is required", field="newDeviceKey")
    secrets = c.secrets(b.requireSecret)
    view = await c.services.devices.replace_key(c.caller, ref, b.newDeviceKey, key_version=c.version,
                                                grace_s=b.gracePeriod, grace_field="gracePeriod")
    return Reply(render.create_result(view.device, secrets))


@action("devices", "getStats", "GET", V21, query=("productKey",))
async def get_stats(c: Call) -> Reply:
    s = await c.services.devices.stats(c.caller, c.query.get("productKey") or None)
    return Reply({"totalCount": s.total, "onlineCount": s.online, "offlineCount": s.offline,
                  "inactiveCount": s.inactive, "disabledCount": s.disabled})


# ---------------------------------------------------------------------------------------------
# topology

@action("device-topos", "addSubDevice", "POST", V21, body=schemas.TopologyBody)
async def add_sub_device(c: Call) -> Reply:
    b = c.read(schemas.TopologyBody)
    subs = [identifier(s, f"subDevices[{i}]") for i, s in enumerate(b.subDevices or [])]
    await c.services.topology.add_sub_devices(c.caller, identifier(b.gateway, "gateway"), subs)
    return Reply(None)


@action("device-topos", "removeSubDevice|remove", "POST", V21, body=schemas.TopologyBody)
async def remove_sub_device(c: Call) -> Reply:
    b = c.read(schemas.TopologyBody)
    subs = [identifier(s, f"subDevices[{i}]") for i, s in enumerate(b.subDevices or [])]
    await c.services.topology.remove_sub_devices(c.caller, identifier(b.gateway, "gateway"), subs)
    return Reply(None)


@action("device-topos", "getGateway", "POST", V21_24, body=schemas.GatewayQuery)
async def get_gateway(c: Call) -> Reply:
    b = c.read(schemas.GatewayQuery)
    secrets = c.secrets(b.requireSecret)
    view = await c.services.topology.gateway_of(c.caller, identifier(b.subDevice, "subDevice"))
    return Reply(project(render.device(view, secrets), b.projection))


@action("device-topos", "searchSubDevice|searchSubDevices", "POST", V21_24,
        body=schemas.SubDeviceSearch)
async def search_sub_devices(c: Call) -> Reply:
    b = c.read(schemas.SubDeviceSearch)
    secrets = c.secrets(b.requireSecret)
    gateway = identifier(b.gateway, "gateway")
    expr = expression.parse(b.expression, expression.DEVICE_FIELDS)
    page = page_of(b.pagination, c.services.core.settings.max_page_size)
    found, total = await c.services.topology.search_sub_devices(c.caller, gateway, expr, page)
    return Reply(project([render.device(v, secrets) for v in found], b.projection), paged(found, total, page))


# ---------------------------------------------------------------------------------------------
# the dispatcher

VERSIONS = frozenset({"v2.0", "v2.1", "v2.4"})


def envelope(code: int, msg: str, rid: str, data: Any = None, extra: dict[str, Any] | None = None,
             legacy: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "msg": msg, "requestId": rid, "data": data}
    if extra:
        out.update(extra)
    if legacy:  # enos-api-sdk-python reads the 1.x keys; they ride along for that scheme only
        out.update({"status": code, "submsg": None if code == 0 else msg})
    return out


def respond(body: dict[str, Any], status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(body), status_code=status, media_type=JSON)


def resolve_action(resource: str, version: str, method: str, name: str) -> Action:
    """The action the ``action`` query parameter names, checked against version and HTTP method."""
    available = ", ".join(sorted(n for (r, n), a in ACTIONS.items() if r == resource and version in a.versions))
    if not name:
        raise InvalidArgument(f"action: action is missing (available in {version}: {available})", field="action")
    act = ACTIONS.get((resource, name))
    if act is None:
        raise InvalidArgument(f"action: '{name}' is not an action of {resource} (available in {version}: "
                              f"{available})", field="action")
    if version not in act.versions:
        raise InvalidArgument(
            f"action: '{name}' is not available in {version} (available in "
            f"{', '.join(sorted(act.versions))})", field="action")
    if method != act.method:
        raise InvalidArgument(f"action: '{name}' must be called with {act.method}", field="action")
    return act


@dataclass(slots=True)
class Exchange:
    """What an error envelope needs of its request, filled in as the dispatcher learns it."""

    rid: str = field(default_factory=request_id)
    legacy: bool = False
    version: str = ""
    action: str = ""


async def dispatch(request: Request[Any, Any, Any], version: str, resource: str,
                   fixed: tuple[str, Action] | None = None) -> Response[bytes]:
    """Answer one Connect Service call; ``fixed`` names the action of a path that implies it."""
    x = scoped(request, Exchange)
    x.version = version
    services: Services = request.app.state.services
    if version not in VERSIONS:
        raise InvalidArgument(f"version: '{version}' is not a Connect Service version "
                              f"({', '.join(sorted(VERSIONS))})", field="version")
    body = await read_body(request, services)
    query = query_pairs(request.scope["query_string"])
    params = dict(query)
    x.legacy = "accessKey" in params
    if fixed is None:
        x.action = params.get("action", "")
        act = resolve_action(resource, version, request.method, x.action)
    else:
        x.action, act = fixed
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument("body: is not UTF-8", field="body") from exc
    auth = await authenticate(services, request.headers, query, text)
    reply = await act.handler(Call(services, auth, version, x.action, params, body, act.body))
    return respond(envelope(0, "OK", x.rid, reply.data, reply.extra, x.legacy))


connect_errors = ErrorHandlers()


@connect_errors.on(Unauthenticated)
def unauthenticated(request: Request[Any, Any, Any], err: Unauthenticated) -> Response[bytes]:
    x = scoped(request, Exchange)
    body = envelope(errors.UNAUTHENTICATED_CODE, f"Invalid authentication credentials: {err.message}", x.rid,
                    legacy=x.legacy)
    return respond(body, errors.UNAUTHENTICATED_HTTP)


@connect_errors.on(DomainError)
def domain_error(request: Request[Any, Any, Any], err: DomainError) -> Response[bytes]:
    x = scoped(request, Exchange)
    code = errors.code_for(err, x.version, x.action)
    status = 413 if isinstance(err, BodyTooLarge) else 200
    return respond(envelope(code, errors.message_for(err, code), x.rid, legacy=x.legacy), status)


@connect_errors.unexpected(log, lambda request: f"request {scoped(request, Exchange).rid}")
def internal_error(request: Request[Any, Any, Any]) -> Response[bytes]:
    x = scoped(request, Exchange)
    return respond(envelope(99500, "Internal Server Error", x.rid, legacy=x.legacy), 500)


#: How a Connect Service call proves its caller (docs/enos.md, "Authentication").
SECURITY_SCHEMES = {
    "enosApimToken": SecurityScheme(
        type="apiKey", name="apim-accesstoken", security_scheme_in="header",
        description="An access token from /apim-token-service/v2.0/token/get, with the headers apim-timestamp "
                    "(epoch ms) and apim-signature: SHA-256 of token + sorted query name+value pairs + body + "
                    "timestamp + app secret, in hex"),
    "enosAccessKey": SecurityScheme(
        type="apiKey", name="accessKey", security_scheme_in="query",
        description="enos-api-sdk-python's query signature: accessKey, requestTimestamp (epoch ms) and sign, "
                    "SHA-1 of accessKey + sorted query pairs + body + app secret, upper-case hex"),
}
ENOS_SECURITY: list[dict[str, list[str]]] = [{"enosApimToken": []}, {"enosAccessKey": []}]


def _parameters(actions: dict[str, Action], fixed: bool) -> list[Parameter]:
    """The query parameters of a path's actions: ``action`` (unless the path implies it), orgId, and
    what each action reads, with the actions that read it."""
    readers: dict[str, list[str]] = {}
    for name, act in actions.items():
        for q in act.query:
            readers.setdefault(q, []).append(name)
    out = [] if fixed else [openapi.query("action", "the operation", required=True, enum=sorted(actions))]
    out.append(openapi.query("orgId", "the organization of the calling application", required=True))
    for q, names in readers.items():
        used = "" if fixed else f" (actions {', '.join(sorted(names))})"
        out.append(openapi.query(q, QUERY[q] + used))
    return out


def _connect_route(resource: str, method: str, base: str) -> HTTPRouteHandler:
    """The GET or POST operation of ``/connect-service/{version}/{resource}``, documented per action."""
    actions = {name: act for (res, name), act in ACTIONS.items() if res == resource and act.method == method}

    async def handler(request: Request[Any, Any, Any], version: FromPath[str]) -> Response[bytes]:
        return await dispatch(request, version, resource)

    handler.__name__ = f"{base}{method.capitalize()}"
    lane.bare(handler, lambda request, params: dispatch(request, params["version"], resource))
    decorator = get if method == "GET" else post
    return decorator(
        f"/connect-service/{{version:str}}/{resource}", operation_id=handler.__name__, status_code=200, tags=["EnOS"],
        summary=f"EnOS {resource} ({method})", security=ENOS_SECURITY,
        description=f"Connect Service {resource}: the `action` query parameter selects the operation "
                    f"({', '.join(sorted(actions))}); `x-thingport-actions` gives each one's body.",
        operation_class=openapi.documented(bodies={name: act.body for name, act in actions.items()},
                                           params=_parameters(actions, fixed=False),
                                           enums={"version": sorted(VERSIONS)},
                                           answers=answers.connect_answers()))(handler)


# The Certificate APIs live in a module of their own; importing it registers its actions here.
from thingport.dialects.enos import certificates as _certificates  # noqa: E402,F401

CONNECT_ROUTES = [_connect_route(resource, method, base) for resource, base in (
    ("products", "enosProducts"), ("devices", "enosDevices"), ("device-topos", "enosTopology"),
    ("certificates", "enosCertificates"))
    for method in ("GET", "POST")]


# ---------------------------------------------------------------------------------------------
# the EnOS 1.x product paths of enos-api-sdk-python (CreateProductRequest, ListProductsRequest)

async def list_products_legacy(c: Call) -> Reply:
    """Every product of the organization, paged by the optional ``pageNo``/``pageSize`` query params."""
    max_size = c.services.core.settings.max_page_size
    page = Page(int_param(c.query, "pageNo", 1, 1, validate.MAX_PAGE_NUMBER),
                int_param(c.query, "pageSize", 10, 1, max_size))
    secrets = c.secrets(False, Permission.PRODUCT_UPDATE)
    found, total = await c.services.products.search(c.caller, None, page)
    return Reply([render.product(p, secrets) for p in found], paged(found, total, page))


LEGACY_CREATE_PRODUCT = ("create", Action("POST", V21, create_product, schemas.ProductCreate))
LEGACY_LIST_PRODUCTS = ("search", Action("GET", V21, list_products_legacy, query=("pageNo", "pageSize")))


@get("/connectService/products", operation_id="enosLegacyProductsGet", tags=["EnOS"], security=ENOS_SECURITY,
     summary="EnOS 1.x product list (enos-api-sdk-python)",
     description="The organization's products, paged by the optional pageNo and pageSize query parameters.",
     operation_class=openapi.documented(params=_parameters(dict([LEGACY_LIST_PRODUCTS]), fixed=True),
                                        answers=answers.connect_answers()))
async def legacy_list_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await dispatch(request, "v2.1", "products", LEGACY_LIST_PRODUCTS)


@post("/connectService/products", operation_id="enosLegacyProductsPost", tags=["EnOS"], security=ENOS_SECURITY,
      summary="EnOS 1.x product creation (enos-api-sdk-python)", status_code=200,
      description="Creates a product from the v2.1 create body.",
      operation_class=openapi.documented(schemas.ProductCreate, params=_parameters({}, fixed=True),
                                         answers=answers.connect_answers()))
async def legacy_create_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await dispatch(request, "v2.1", "products", LEGACY_CREATE_PRODUCT)


# ---------------------------------------------------------------------------------------------
# the APIM token service

TOKEN_ERRORS = {1001: "duplicated encryption", 1002: "appKey does not exist", 1003: "invalid encryption",
                1004: "invalid parameter", 1005: "internal error", 1202: "parameter empty",
                1203: "token expired", 1204: "refresh token failed"}


class TokenError(Exception):
    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def token_envelope(status: int, data: Any = None, detail: str = "") -> Response[bytes]:
    msg = "SUCCESS" if status == 0 else TOKEN_ERRORS[status] + (f": {detail}" if detail else "")
    return respond({"status": status, "msg": msg, "business": "apim-token-service", "data": data})


async def _token(request: Request[Any, Any, Any], refresh: bool) -> Response[bytes]:
    services: Services = request.app.state.services
    b = decode(await read_body(request, services), schemas.TokenRequest)
    missing = [n for n in ("appKey", "encryption", "timestamp") + (("accessToken",) if refresh else ())
               if not getattr(b, n)]
    if missing:
        raise TokenError(1202, f"{', '.join(missing)} required")
    assert b.appKey and b.encryption and b.timestamp is not None
    try:
        app = await services.accounts.active_app(b.appKey)
    except Unauthenticated as exc:
        raise TokenError(1002) from exc
    try:
        check_timestamp(str(b.timestamp), services.core.settings.signature_window_s, field="timestamp")
    except Unauthenticated as exc:
        raise TokenError(1004, exc.message) from exc
    if not any(signing.equal(signing.apim_token_encryption(app.app_key, str(b.timestamp), s), b.encryption)
               for s in app.secrets_at(now_ms())):  # the previous secret too in its grace period
        raise TokenError(1003)
    ttl = 2 * services.core.settings.signature_window_s * 1000
    if not await services.accounts.use_nonce(f"enos:token:{b.encryption.lower()}", ttl):
        raise TokenError(1001)
    if refresh:
        try:
            owner, _ = await services.accounts.app_for_token(b.accessToken or "")
        except Unauthenticated as exc:
            raise TokenError(1204, "accessToken is not a token of this application") from exc
        if owner.app_key != app.app_key:
            raise TokenError(1204, "accessToken is not a token of this application")
    token, expire = await services.accounts.issue_token(app, renew=refresh)
    return token_envelope(0, {"accessToken": token, "expire": max(0, (expire - now_ms()) // 1000)})


token_errors = ErrorHandlers()


@token_errors.on(TokenError)
def token_error(_: Request[Any, Any, Any], err: TokenError) -> Response[bytes]:
    return token_envelope(err.status, detail=err.detail)


@token_errors.on(DomainError)
def token_invalid(_: Request[Any, Any, Any], err: DomainError) -> Response[bytes]:
    return token_envelope(1004, detail=err.message)


@token_errors.unexpected(log, lambda _: "APIM token request")
def token_internal(_: Request[Any, Any, Any]) -> Response[bytes]:
    return token_envelope(1005)


@post("/apim-token-service/v2.0/token/get", operation_id="enosTokenGet", summary="Get an APIM access token",
      tags=["EnOS"], status_code=200,
      operation_class=openapi.documented(schemas.TokenRequest, answers=answers.token_answers()))
async def token_get(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _token(request, refresh=False)


@post("/apim-token-service/v2.0/token/refresh", operation_id="enosTokenRefresh", tags=["EnOS"],
      summary="Refresh an APIM access token", status_code=200,
      operation_class=openapi.documented(schemas.TokenRequest, answers=answers.token_answers()))
async def token_refresh(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _token(request, refresh=True)


router = Router(path="/", tags=["EnOS"], route_handlers=[
    Router(path="/", route_handlers=[*CONNECT_ROUTES, legacy_list_route, legacy_create_route],
           exception_handlers=connect_errors.map),
    Router(path="/", route_handlers=[token_get, token_refresh], exception_handlers=token_errors.map),
])
