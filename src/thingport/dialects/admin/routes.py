"""Admin HTTP API under ``/admin/v1``, for what no vendor API covers.

Protected by the operator token (``Authorization: Bearer <token>``), which ``serve`` creates on
first start in ``<data-dir>/operator.token`` unless ``THINGPORT_OPERATOR_TOKEN`` is set.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post, put
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Stream

from thingport.crypto.ca import AUTHORITIES
from thingport.dialects import openapi
from thingport.dialects.common import (
    ErrorHandlers,
    digits,
    int_param,
    path_params,
    query_pairs,
    read_body,
    screen,
)
from thingport.domain.errors import DomainError, ErrorKind, InvalidArgument
from thingport.domain.models import Application, Organization, Permission, ThingModel, now_ms
from thingport.services import audit, bulk
from thingport.services.certificates import CaView, authority_of, status_name
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef
from thingport.services.keys import rotate_master_key
from thingport.store.audit import AuditFilter
from thingport.store.certificates import CertRecord

Req = Request[Any, Any, Any]
log = logging.getLogger(__name__)

#: Domain error kind → HTTP status; every kind has an entry (``tests/dialects/test_error_tables.py``).
STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID_ARGUMENT: 400, ErrorKind.UNAUTHENTICATED: 401, ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.NOT_FOUND: 404, ErrorKind.CONFLICT: 409,
    # every other kind: 400, the operator API's one answer for what it has no status of its own for
    ErrorKind.PRODUCT_NOT_FOUND: 400, ErrorKind.DEVICE_NOT_FOUND: 400, ErrorKind.PRODUCT_HAS_DEVICES: 400,
    ErrorKind.MODEL_NOT_FOUND: 400, ErrorKind.DEVICE_KEY_EXISTS: 400, ErrorKind.DEVICE_KEY_UNCHANGED: 400,
    ErrorKind.DEVICE_KEY_GENERATION_FAILED: 400, ErrorKind.NOT_GATEWAY: 400, ErrorKind.LIMIT_EXCEEDED: 400,
    ErrorKind.DEVICE_STATUS_INVALID: 400, ErrorKind.TOPOLOGY_CONFLICT: 400, ErrorKind.PUBLIC_KEY_MISSING: 400,
    ErrorKind.INTERNAL: 400, ErrorKind.UNAVAILABLE: 503, ErrorKind.DEVICE_ONLINE: 400,
    ErrorKind.VERIFY_CODE_EXISTS: 400,
    ErrorKind.REGISTRATION_NOT_FOUND: 400, ErrorKind.REFRESH_TOKEN_INVALID: 400, ErrorKind.BIND_TOKEN_NOT_FOUND: 400,
    ErrorKind.NOT_IN_BIND_WINDOW: 400, ErrorKind.NOT_BOUND: 400, ErrorKind.NOT_OWNER: 400,
    ErrorKind.BOUND_TO_OTHER: 400, ErrorKind.PERMIT_JOIN_CLOSED: 400,
}


class OrgIn(msgspec.Struct):
    name: str
    orgId: str | None = None


class OrgOut(msgspec.Struct):
    orgId: str
    name: str
    createTime: int


class AppIn(msgspec.Struct):
    name: str
    permissions: list[str] | None = None
    publicKey: str | None = None


class AppOut(msgspec.Struct):
    appKey: str
    orgId: str
    name: str
    permissions: list[str]
    hasPublicKey: bool
    disabled: bool
    createTime: int
    appSecret: str | None = None


class PublicKeyIn(msgspec.Struct):
    publicKey: str | None


class PermissionsIn(msgspec.Struct):
    permissions: list[str]


class ModelIn(msgspec.Struct):
    modelId: str
    name: str | None = None


class ModelOut(msgspec.Struct):
    orgId: str
    modelId: str
    name: str
    createTime: int


class RotateOut(msgspec.Struct):
    keyId: str
    reencrypted: int


class CaOut(msgspec.Struct):
    caId: str
    orgId: str
    authority: str
    certificate: str
    notAfter: int
    imported: bool
    createTime: int
    #: When a newer CA took over signing; None: this one signs. A retired CA still vouches for what it
    #: signed until ``notAfter``.
    retireTime: int | None


class CaImportIn(msgspec.Struct):
    certificate: str
    privateKey: str


class CertOut(msgspec.Struct):
    certSn: str
    assetId: str
    authority: str
    fingerprint: str
    subject: str
    status: str
    issueTime: int
    issuedBy: str | None
    expireTime: int
    revokeTime: int | None
    revokeReason: int | None
    revokedBy: str | None


def ca_out(c: CaView) -> CaOut:
    return CaOut(c.ca_id, c.org_id, c.authority, c.cert_pem, c.not_after, c.imported, c.create_time, c.retire_time)


def cert_out(r: CertRecord, now: int) -> CertOut:
    return CertOut(r.cert_sn, r.asset_id, r.authority, r.fingerprint, r.subject, status_name(r, now), r.issue_time,
                   r.issue_by, r.expire_time, r.revoke_time, r.revoke_reason, r.revoke_by)


def parse_permissions(values: list[str] | None) -> frozenset[Permission] | None:
    """``None`` means all; names are ``device:full``, ``device:read``, ``product:create|update|delete``."""
    if values is None:
        return None
    try:
        return frozenset(Permission(v) for v in values)
    except ValueError as exc:
        allowed = ", ".join(p.value for p in Permission)
        raise InvalidArgument(f"permissions: unknown permission ({allowed} are known)", field="permissions") from exc


def org_out(o: Organization) -> OrgOut:
    return OrgOut(o.org_id, o.name, o.create_time)


def app_out(a: Application, *, with_secret: bool = False) -> AppOut:
    return AppOut(a.app_key, a.org_id, a.name, sorted(p.value for p in a.permissions), a.rsa_public_key is not None,
                  a.disabled, a.create_time, a.secret if with_secret else None)


def model_out(m: ThingModel) -> ModelOut:
    return ModelOut(m.org_id, m.model_id, m.name, m.create_time)


def operator_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    expected: str = connection.app.state.operator_token
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise NotAuthorizedException("the operator token is missing or wrong")
    audit.identify("operator")


admin_errors = ErrorHandlers()


@admin_errors.on(DomainError)
def domain_error(_: Req, exc: DomainError) -> Response[dict[str, Any]]:
    return Response({"error": exc.kind.value, "message": exc.message, "field": exc.field},
                    status_code=STATUS[exc.kind])


@admin_errors.unexpected(log, lambda request: f"operator request {request.method} {request.url.path}")
def internal_error(_: Req) -> Response[dict[str, Any]]:
    return Response({"error": "internal", "message": "internal error", "field": None}, status_code=500)


def svc(request: Req) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


async def screen_request(request: Req) -> None:
    """Litestar decodes the operator API's parameters and bodies (``JSONBody``); they are held to
    the kit's limits first, after the operator guard, so a body nested too deep or not JSON at all
    is a 400 naming the body, not a 500."""
    path_params(request)
    query_pairs(request.scope["query_string"])
    if request.route_handler.opt.get("raw_body"):  # a file (CSV, JSON Lines) its handler reads line by line
        return
    if request.method in ("POST", "PUT", "PATCH") and (body := await read_body(request, svc(request))).strip():
        screen(body, whole=True)


@post("/orgs", summary="Create an organization")
async def create_org(request: Req, data: JSONBody[OrgIn]) -> OrgOut:
    return org_out(await svc(request).accounts.create_org(data.name, data.orgId))


@get("/orgs", summary="List organizations")
async def list_orgs(request: Req) -> list[OrgOut]:
    return [org_out(o) for o in await svc(request).accounts.list_orgs()]


@post("/orgs/{org_id:str}/apps", summary="Create an application (the secret is shown only in this answer)")
async def create_app(request: Req, org_id: FromPath[str], data: JSONBody[AppIn]) -> AppOut:
    app = await svc(request).accounts.create_app(org_id, data.name, parse_permissions(data.permissions),
                                                 data.publicKey)
    return app_out(app, with_secret=True)


@get("/apps", summary="List applications, optionally of one organization")
async def list_apps(request: Req, orgId: FromQuery[str | None] = None) -> list[AppOut]:
    return [app_out(a) for a in await svc(request).accounts.list_apps(orgId)]


@post("/apps/{app_key:str}/disable", summary="Disable an application (its tokens are revoked)", status_code=200)
async def disable_app(request: Req, app_key: FromPath[str]) -> AppOut:
    return app_out(await svc(request).accounts.set_app_disabled(app_key, True))


@post("/apps/{app_key:str}/enable", summary="Enable an application", status_code=200)
async def enable_app(request: Req, app_key: FromPath[str]) -> AppOut:
    return app_out(await svc(request).accounts.set_app_disabled(app_key, False))


@put("/apps/{app_key:str}/public-key", summary="Set or clear the RSA public key (PEM) for v2.4 secrets")
async def set_public_key(request: Req, app_key: FromPath[str], data: JSONBody[PublicKeyIn]) -> AppOut:
    return app_out(await svc(request).accounts.set_app_public_key(app_key, data.publicKey))


@put("/apps/{app_key:str}/permissions", summary="Replace an application's permissions")
async def set_permissions(request: Req, app_key: FromPath[str], data: JSONBody[PermissionsIn]) -> AppOut:
    perms = parse_permissions(data.permissions) or frozenset()
    return app_out(await svc(request).accounts.set_app_permissions(app_key, perms))


@post("/orgs/{org_id:str}/models", summary="Register a thing model id products may use")
async def create_model(request: Req, org_id: FromPath[str], data: JSONBody[ModelIn]) -> ModelOut:
    return model_out(await svc(request).accounts.create_model(org_id, data.modelId, data.name))


@get("/orgs/{org_id:str}/models", summary="List thing models of an organization")
async def list_models(request: Req, org_id: FromPath[str]) -> list[ModelOut]:
    return [model_out(m) for m in await svc(request).accounts.list_models(org_id)]


@get("/orgs/{org_id:str}/device-cas", summary="The organization's device CAs (certificates only, never keys)")
async def list_cas(request: Req, org_id: FromPath[str]) -> list[CaOut]:
    return [ca_out(c) for c in await svc(request).certificates.cas(Caller.operator(org_id))]


class BundleOut(msgspec.Struct):
    orgId: str
    #: Every CA certificate that vouches for a device certificate now, concatenated (PEM).
    pem: str


@get("/orgs/{org_id:str}/device-cas/bundle",
     summary="PEM bundle of every device CA that vouches for a certificate now (RSA and ECC made if missing)")
async def ca_bundle(request: Req, org_id: FromPath[str]) -> BundleOut:
    certs = svc(request).certificates
    caller = Caller.operator(org_id)
    for authority in AUTHORITIES:
        await certs.ca(caller, authority)
    return BundleOut(org_id, "".join(await certs.trusted(caller)))


@post("/orgs/{org_id:str}/device-cas/{authority:str}/rotate", status_code=200,
      summary="A new signing CA (RSA or ECC); certificates the old one signed stay valid until they expire")
async def rotate_ca(request: Req, org_id: FromPath[str], authority: FromPath[str]) -> CaOut:
    return ca_out(await svc(request).certificates.rotate_ca(Caller.operator(org_id),
                                                            authority_of(authority, "authority")))


@post("/orgs/{org_id:str}/device-cas", status_code=200,
      summary="Import the operator's CA (certificate and unencrypted key, RSA-2048 or P-256): it signs from now on")
async def import_ca(request: Req, org_id: FromPath[str], data: JSONBody[CaImportIn]) -> CaOut:
    return ca_out(await svc(request).certificates.import_ca(Caller.operator(org_id), data.certificate,
                                                            data.privateKey))


@get("/orgs/{org_id:str}/devices/{asset_id:str}/certificates",
     summary="A device's certificate history: issued when and by whom, until when, revoked when, why and by whom")
async def device_certificates(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> list[CertOut]:
    now = now_ms()
    found = await svc(request).certificates.list(Caller.operator(org_id), DeviceRef(asset_id))
    return [cert_out(r, now) for r in found]
class RotateSecretIn(msgspec.Struct):
    #: Seconds the old secret keeps signing, and its access tokens working (0: both end at once).
    grace: int = 0


class RotatedSecretOut(msgspec.Struct):
    appKey: str
    appSecret: str
    #: When the old secret stops signing (ms); None without a grace period.
    previousUntil: int | None


@post("/apps/{app_key:str}/rotate-secret", status_code=200,
      summary="Give an application a new secret (shown only in this answer); with grace, the old one keeps "
              "signing for that many seconds")
async def rotate_app_secret(request: Req, app_key: FromPath[str], data: JSONBody[RotateSecretIn]) -> RotatedSecretOut:
    app = await svc(request).accounts.rotate_app_secret(app_key, grace_s=data.grace)
    return RotatedSecretOut(app.app_key, app.secret, app.previous_until)


class ReplaceKeyIn(msgspec.Struct):
    newDeviceKey: str
    #: Seconds the old key and secret keep logging in (0: they stop at once, EnOS's behaviour).
    grace: int = 0


class ReplaceKeyOut(msgspec.Struct):
    assetId: str
    productKey: str
    deviceKey: str
    deviceSecret: str
    #: When the old credential stops logging in (ms); None without a grace period.
    graceUntil: int | None


class CredentialOut(msgspec.Struct):
    kind: str
    id: str
    deviceKey: str
    issueTime: int | None
    issuedBy: str | None
    lastUsed: int | None
    endTime: int | None
    endReason: str | None


@post("/orgs/{org_id:str}/devices/{asset_id:str}/replace-key", status_code=200,
      summary="Give a device a new key and secret (shown only in this answer); with grace, the old ones "
              "keep logging in for that many seconds")
async def replace_device_key(request: Req, org_id: FromPath[str], asset_id: FromPath[str],
                             data: JSONBody[ReplaceKeyIn]) -> ReplaceKeyOut:
    view = await svc(request).devices.replace_key(Caller.operator(org_id), DeviceRef(asset_id), data.newDeviceKey,
                                                  grace_s=data.grace)
    d = view.device
    return ReplaceKeyOut(d.asset_id, d.product_key, d.device_key, d.secret,
                         d.update_time + data.grace * 1000 if data.grace else None)


@get("/orgs/{org_id:str}/devices/{asset_id:str}/credentials",
     summary="A device's credential history: each secret and certificate, issued when and by whom, last used, "
             "ended when and why (never a secret)")
async def device_credentials(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> list[CredentialOut]:
    found = await svc(request).devices.credentials(Caller.operator(org_id), DeviceRef(asset_id))
    return [CredentialOut(e.kind, e.id, e.device_key, e.issue_time, e.issued_by, e.last_used, e.end_time,
                          e.end_reason) for e in found]


class AuditOut(msgspec.Struct):
    id: int
    time: int
    orgId: str
    channel: str
    actor: str
    address: str
    requestId: str
    action: str
    target: str
    outcome: str
    status: int
    error: str


class AuditPage(msgspec.Struct):
    records: list[AuditOut]
    #: Pass as ``before`` for the next (older) page; absent on the last page.
    nextBefore: int | None = None


def _bound(name: str, raw: str | None) -> int | None:
    """An optional epoch-ms or id query value, in ASCII digits."""
    if raw is None or raw == "":
        return None
    value = digits(raw)
    if value is None:
        raise InvalidArgument(f"{name}: must be a non-negative integer of at most 18 digits", field=name)
    return value


@get("/audit", summary="Read the audit trail, newest first, filtered and paged")
async def read_audit(request: Req, orgId: FromQuery[str | None] = None, target: FromQuery[str | None] = None,
                     actor: FromQuery[str | None] = None, action: FromQuery[str | None] = None,
                     outcome: FromQuery[str | None] = None, since: FromQuery[str | None] = None,
                     until: FromQuery[str | None] = None, before: FromQuery[str | None] = None,
                     limit: FromQuery[str | None] = None) -> AuditPage:
    """``since``/``until``: epoch ms (inclusive, exclusive); ``target``: an asset id, app key, org id …;
    ``actor``: ``app:<appKey>``, ``operator``, ``user:<identityId>``, ``device:<assetId>``; ``before``:
    the ``nextBefore`` of the previous page; ``limit``: 1 to ``max_page_size`` (default 100)."""
    services = svc(request)
    size = int_param({"limit": limit or ""}, "limit", 100, 1, services.core.settings.max_page_size)
    if outcome not in (None, "", "ok", "failed"):
        raise InvalidArgument("outcome: 'ok' or 'failed'", field="outcome")
    where = AuditFilter(orgId or "", target or "", actor or "", action or "", outcome or "",
                        _bound("since", since), _bound("until", until), _bound("before", before))
    found = await services.audit.search(where, size + 1)
    page = found[:size]
    return AuditPage([AuditOut(r.id, r.time, r.org_id, r.channel, r.actor, r.address, r.request_id, r.action,
                               r.target, r.outcome, r.status, r.error) for r in page],
                     page[-1].id if len(found) > size else None)


class ImportErrorOut(msgspec.Struct):
    line: int
    field: str
    message: str


class ImportOut(msgspec.Struct):
    created: int
    existing: int
    failed: int
    #: The first failed rows (at most 1,000), by line; ``failed`` counts them all.
    errors: list[ImportErrorOut]


_IMPORT_BODY = {"type": "string", "description": "CSV with a header row (text/csv) or JSON Lines "
                "(application/x-ndjson): deviceKey, name, nameI18n, timezone, tags, attributes, description, secret"}


@post("/orgs/{org_id:str}/products/{product_key:str}/devices/import", status_code=200, opt={"raw_body": True},
      summary="Import devices from CSV (text/csv) or JSON Lines (application/x-ndjson): good rows in, bad ones listed",
      operation_class=openapi.documented(_IMPORT_BODY, media_type="text/csv"))
async def import_devices(request: Req, org_id: FromPath[str], product_key: FromPath[str]) -> ImportOut:
    """The body is at most ``max_body_bytes``; a larger file goes through ``thingport device import``
    (docs/import.md). The same rows, rules and report as the command."""
    services = svc(request)
    fmt = bulk.format_of(request.headers.get("content-type") or "text/csv")
    text = (await read_body(request, services)).decode("utf-8", "surrogateescape")
    report = await services.bulk.import_devices(Caller.operator(org_id), product_key,
                                                bulk.read_rows(text.splitlines(), fmt))
    return ImportOut(report.created, report.existing, report.failed,
                     [ImportErrorOut(e.line, e.field, e.message) for e in report.errors])


@get("/orgs/{org_id:str}/devices/export", summary="Export devices as JSON Lines or CSV, streamed (no secrets)",
     media_type="application/x-ndjson")
async def export_devices(request: Req, org_id: FromPath[str], productKey: FromQuery[str | None] = None,
                         format: FromQuery[str | None] = None) -> Stream:
    """``format``: ``jsonl`` (default) or ``csv``. Secrets never leave through this route; the
    command's ``--with-secrets`` encrypts them for a key the operator holds (docs/import.md)."""
    services = svc(request)
    fmt = bulk.format_of(format or "jsonl")
    caller = Caller.operator(org_id)
    if productKey:  # an unknown product is a 400 before the answer starts
        await services.products.get(caller, productKey)
    write = bulk.export_lines(fmt, False)

    async def lines() -> AsyncIterator[str]:
        yield write(None)
        async for d in services.bulk.export(caller, productKey or None):
            yield write(bulk.export_record(d, None))

    return Stream(lines(), media_type="text/csv" if fmt == "csv" else "application/x-ndjson")


@post("/master-key/rotate", summary="Rotate the master key and re-encrypt every secret", status_code=200)
async def rotate(request: Req) -> RotateOut:
    kid, count = await rotate_master_key(svc(request).core)
    return RotateOut(kid, count)


router = Router(
    path="/admin/v1",
    route_handlers=[create_org, list_orgs, create_app, list_apps, disable_app, enable_app, set_public_key,
                    set_permissions, create_model, list_models, list_cas, ca_bundle, rotate_ca, import_ca,
                    device_certificates, replace_device_key, device_credentials, rotate_app_secret, rotate,
                    read_audit, import_devices, export_devices],
    guards=[operator_guard],
    before_request=screen_request,
    exception_handlers=admin_errors.map,
    tags=["Admin"],
    security=[{"operatorToken": []}],
)
