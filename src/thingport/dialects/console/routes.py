"""The web console's pages and actions under ``/console`` (docs/console.md).

A dialect like the others: each handler reads its form, calls the services the APIs call (as the
operator, :meth:`Caller.operator` of the organization in the path) and renders a page. Pages are
Jinja2 templates with autoescaping; htmx (vendored in ``static/``) only polls device status and
device rows. No route is in the OpenAPI document: they answer HTML, not an API.

Every page but the sign-in needs a session cookie (:mod:`.session`); every POST carries the
session's CSRF token. A domain error is shown as a page with its message and the operator API's
status (:data:`thingport.dialects.admin.routes.STATUS`), never a 500.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from litestar import Request, Response, Router, get, post
from litestar.enums import MediaType
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.static_files import create_static_files_router

from thingport.crypto import ids
from thingport.dialects.admin.routes import STATUS, parse_permissions
from thingport.dialects.common import ErrorHandlers, digits, path_params, query_pairs
from thingport.dialects.console import charts
from thingport.dialects.console.forms import Form
from thingport.dialects.console.session import COOKIE, CSRF_FIELD, CSRF_HEADER, LIFETIME_MS, ConsoleSession, Sessions
from thingport.domain import expression, validate
from thingport.domain.errors import DomainError, InvalidArgument, PermissionDenied
from thingport.domain.limits import MAX_GRACE_S
from thingport.domain.models import DeviceStatus, Organization, Page, Permission, ProductType, now_ms
from thingport.services import audit
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.living_accounts import PRODUCT_STATUS, MetaPatch
from thingport.services.products import ProductPatch, ProductSpec
from thingport.store.audit import AuditFilter

Req = Request[Any, Any, Any]
log = logging.getLogger(__name__)
HERE = Path(__file__).parent
PAGE_SIZE = 20
#: How often the device list and a device page ask for fresh status (htmx polling).
POLL = "every 2s"

ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                         undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
ENV.filters["when"] = lambda ms: "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime(
    "%Y-%m-%d %H:%M:%S UTC")
ENV.globals.update(POLL=POLL, CSRF_FIELD=CSRF_FIELD, PERMISSIONS=[p.value for p in Permission],
                   LIVING_STATUSES=list(PRODUCT_STATUS))

#: Sent with every console answer: nothing but this origin's scripts, styles and forms; no framing.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def svc(request: Req) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def sessions(request: Req) -> Sessions:
    return Sessions(request.app.state.operator_token)


def session_of(request: Req) -> ConsoleSession | None:
    found = request.state.get("console_session")
    return found if isinstance(found, ConsoleSession) else None


def form_of(request: Req) -> Form:
    found = request.state.get("console_form")
    return found if isinstance(found, Form) else Form([])


def page(request: Req, template: str, *, status: int = 200, orgs: list[Organization] | None = None,
         org: Organization | None = None, headers: dict[str, str] | None = None, **ctx: Any) -> Response[str]:
    """A page (or fragment) of ``template`` with what every page shows: the session's CSRF token, the
    organizations for the switcher and the one being looked at."""
    session = session_of(request)
    html = ENV.get_template(template).render(csrf=session.csrf if session else "", orgs=orgs or [], org=org,
                                             path=request.url.path, **ctx)
    return Response(html, media_type=MediaType.HTML, status_code=status, headers={**HEADERS, **(headers or {})})


async def render(request: Req, template: str, **kwargs: Any) -> Response[str]:
    """:func:`page`, with the organizations listed for the switcher (a fragment ``_x.html`` has none)."""
    listed = session_of(request) is not None and not template.startswith("_")
    return page(request, template, orgs=await svc(request).accounts.list_orgs() if listed else None, **kwargs)


def same_origin(request: Req) -> bool:
    """A browser's POST names its page's origin; one from another site is refused before anything else."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


# --- errors --------------------------------------------------------------------------------------

console_errors = ErrorHandlers()


def back_link(request: Req) -> str:
    """Where "back" leads from an error: the page the form was on, when it is a console page."""
    ref = urlsplit(request.headers.get("referer", ""))
    host = request.headers.get("host", "")
    if ref.netloc == host and ref.path.startswith("/console"):
        return ref.path + (f"?{ref.query}" if ref.query else "")
    return "/console"


@console_errors.on(DomainError)
def domain_error(request: Req, exc: DomainError) -> Response[str]:
    return page(request, "error.html", status=STATUS[exc.kind], message=exc.message, back=back_link(request))


@console_errors.unexpected(log, lambda request: f"console request {request.method} {request.url.path}")
def internal_error(request: Req) -> Response[str]:
    return page(request, "error.html", status=500, back="/console",
                message="Something went wrong on the server; the server log has the details.")


# --- sign-in -------------------------------------------------------------------------------------

async def screen(request: Req) -> None:
    """What every console request is held to: the kit's path and query rules, a same-site POST."""
    path_params(request)
    query_pairs(request.scope["query_string"])
    if request.method == "POST" and not same_origin(request):
        raise PermissionDenied("origin: the form was sent from another site", field="origin")


async def signed_in(request: Req) -> Response[Any] | None:
    """Before every page but the sign-in: a valid session, and on a POST its CSRF token."""
    await screen(request)
    session = sessions(request).check(request.cookies.get(COOKIE))
    if session is None:
        audit.failed("not signed in to the console")  # answered with a redirect, refused all the same
        if request.headers.get("hx-request"):  # htmx follows this header, not a redirect into a fragment
            return Response("", status_code=200, headers={"HX-Redirect": "/console/login"})
        return Redirect("/console/login", status_code=303)
    request.state["console_session"] = session
    audit.identify("operator")  # a console session is the operator token's (docs/console.md)
    if request.method == "POST":
        form = await Form.read(request, svc(request))
        if not Sessions.csrf_ok(session, request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)):
            raise PermissionDenied(f"{CSRF_FIELD}: the form's security token is missing or stale; reload the page "
                                   "and try again", field=CSRF_FIELD)
        request.state["console_form"] = form
    return None


@get("/login")
async def login_page(request: Req) -> Response[str]:
    return await render(request, "login.html", error=None)


@post("/login", status_code=200)
async def login(request: Req) -> Response[Any]:
    form = await Form.read(request, svc(request))
    token = form.get("token") or ""
    if not hmac.compare_digest(token.strip().encode(), request.app.state.operator_token.encode()):
        log.info("console sign-in refused from %s: wrong operator token", request.client.host if request.client else "")
        return await render(request, "login.html", status=401, error="That is not the operator token.")
    cookie, _ = sessions(request).issue()
    response: Response[Any] = Redirect("/console", status_code=303)
    response.set_cookie(COOKIE, cookie, max_age=LIFETIME_MS // 1000, path="/console", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@post("/logout", status_code=200)
async def logout(request: Req) -> Response[Any]:
    response: Response[Any] = Redirect("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


# --- organizations and applications --------------------------------------------------------------

@get("/")
async def home(request: Req) -> Response[Any]:
    orgs = await svc(request).accounts.list_orgs()
    return Redirect(f"/console/o/{orgs[0].org_id}" if orgs else "/console/orgs", status_code=303)


async def orgs_page(request: Req, *, status: int = 200, notice: str | None = None,
                    shown_secret: tuple[str, str] | None = None) -> Response[str]:
    accounts = svc(request).accounts
    orgs = await accounts.list_orgs()
    apps = await accounts.list_apps(None)
    models = {o.org_id: await accounts.list_models(o.org_id) for o in orgs}
    return await render(request, "orgs.html", status=status, all_orgs=orgs, apps=apps, models=models,
                        notice=notice, shown_secret=shown_secret)


@get("/orgs")
async def orgs(request: Req) -> Response[str]:
    return await orgs_page(request)


@post("/orgs", status_code=200)
async def create_org(request: Req) -> Response[str]:
    f = form_of(request)
    org = await svc(request).accounts.create_org(f.text("name"), f.optional("orgId"))
    return await orgs_page(request, status=201, notice=f"Organization {org.name} ({org.org_id}) created.")


@post("/orgs/{org_id:str}/models", status_code=200)
async def create_model(request: Req, org_id: FromPath[str]) -> Response[str]:
    f = form_of(request)
    model = await svc(request).accounts.create_model(org_id, f.text("modelId"), f.optional("name"))
    return await orgs_page(request, status=201, notice=f"Thing model {model.model_id} registered in {org_id}.")


@post("/orgs/{org_id:str}/apps", status_code=200)
async def create_app(request: Req, org_id: FromPath[str]) -> Response[str]:
    f = form_of(request)
    app = await svc(request).accounts.create_app(org_id, f.text("name"), parse_permissions(f.all("permissions")),
                                                 f.optional("publicKey"))
    return await orgs_page(request, status=201, notice=f"Application {app.name} created.",
                           shown_secret=(app.app_key, app.secret))


@post("/apps/{app_key:str}/disable", status_code=200)
async def disable_app(request: Req, app_key: FromPath[str]) -> Response[str]:
    app = await svc(request).accounts.set_app_disabled(app_key, True)
    return await orgs_page(request, notice=f"Application {app.name} disabled; its access tokens are revoked.")


@post("/apps/{app_key:str}/enable", status_code=200)
async def enable_app(request: Req, app_key: FromPath[str]) -> Response[str]:
    app = await svc(request).accounts.set_app_disabled(app_key, False)
    return await orgs_page(request, notice=f"Application {app.name} enabled.")


@post("/apps/{app_key:str}/rotate-secret", status_code=200)
async def rotate_app_secret(request: Req, app_key: FromPath[str]) -> Response[str]:
    grace = form_of(request).number("grace", 0, MAX_GRACE_S) or 0
    app = await svc(request).accounts.rotate_app_secret(app_key, grace_s=grace)
    notice = (f"Application {app.name} has a new secret; the old one keeps signing, and its access tokens "
              f"working, for {grace} s more." if grace else
              f"Application {app.name} has a new secret; the old one no longer works and its access tokens are "
              "revoked.")
    return await orgs_page(request, notice=notice, shown_secret=(app.app_key, app.secret))


@post("/apps/{app_key:str}/public-key", status_code=200)
async def set_app_public_key(request: Req, app_key: FromPath[str]) -> Response[str]:
    app = await svc(request).accounts.set_app_public_key(app_key, form_of(request).optional("publicKey"))
    return await orgs_page(request, notice=f"Application {app.name}: RSA public key "
                                           f"{'set' if app.rsa_public_key else 'cleared'}.")


@post("/apps/{app_key:str}/permissions", status_code=200)
async def set_app_permissions(request: Req, app_key: FromPath[str]) -> Response[str]:
    perms = parse_permissions(form_of(request).all("permissions")) or frozenset()
    app = await svc(request).accounts.set_app_permissions(app_key, perms)
    return await orgs_page(request, notice=f"Application {app.name}: permissions saved.")


# --- one organization: dashboard -----------------------------------------------------------------

async def org_of(request: Req, org_id: str) -> tuple[Organization, Caller]:
    org = await svc(request).accounts.get_org(org_id)
    return org, Caller.operator(org.org_id)


@get("/o/{org_id:str}")
async def dashboard(request: Req, org_id: FromPath[str]) -> Response[str]:
    org, caller = await org_of(request, org_id)
    s = svc(request)
    counts = await s.overview.product_counts(caller)
    widest = max((c.stats.total for c in counts), default=0)
    fleet = [charts.rows([[(c.stats.online, "online", f"{c.stats.online} online"),
                           (c.stats.offline, "offline", f"{c.stats.offline} offline"),
                           (c.stats.inactive, "inactive", f"{c.stats.inactive} never activated")]],
                         width=240, row=14, top=widest) for c in counts]
    minutes = s.activity.last_hour()
    logins = charts.columns([[(m.accepted, "accepted", f"{m.accepted} accepted"),
                              (m.refused_total, "refused", f"{m.refused_total} refused")] for m in minutes])
    reasons: dict[str, int] = {}
    for m in minutes:
        for reason, n in m.refused.items():
            reasons[reason] = reasons.get(reason, 0) + n
    queue = await s.overview.push_queue(now_ms())
    return await render(request, "dashboard.html", org=org, counts=counts, fleet=fleet, logins=logins,
                        accepted=sum(m.accepted for m in minutes), reasons=sorted(reasons.items()), queue=queue)


# --- products ------------------------------------------------------------------------------------

async def products_page(request: Req, org_id: str, *, status: int = 200, notice: str | None = None) -> Response[str]:
    org, caller = await org_of(request, org_id)
    s = svc(request)
    return await render(request, "products.html", status=status, org=org, notice=notice,
                        counts=await s.overview.product_counts(caller),
                        models=await s.accounts.list_models(org.org_id))


@get("/o/{org_id:str}/products")
async def products(request: Req, org_id: FromPath[str]) -> Response[str]:
    return await products_page(request, org_id)


@post("/o/{org_id:str}/products", status_code=200)
async def create_product(request: Req, org_id: FromPath[str]) -> Response[str]:
    _, caller = await org_of(request, org_id)
    f = form_of(request)
    spec = ProductSpec(
        name=validate.i18n(f.text("name"), field="name"),
        product_type=ProductType(f.choice("productType", tuple(t.value for t in ProductType))),
        data_format=f.choice("dataFormat", ("Json", "Custom")), model_id=f.text("modelId"),
        bidirectional_auth=f.flag("biDirectionalAuth"),
        description=validate.text(f.optional("description"), field="description"),
        dynamic_activate_enabled=f.flag("dynamicActivateEnabled"))
    product = await svc(request).products.create(caller, spec)
    return await products_page(request, org_id, status=201,
                               notice=f"Product {product.name.default} created: productKey {product.product_key}.")


async def product_page(request: Req, org_id: str, product_key: str, *, notice: str | None = None
                       ) -> Response[str]:
    org, caller = await org_of(request, org_id)
    s = svc(request)
    product = await s.products.get(caller, product_key)
    return await render(request, "product.html", org=org, product=product, notice=notice,
                        stats=await s.devices.stats(caller, product_key),
                        meta=await s.living.product_meta(org.org_id, product_key))


@get("/o/{org_id:str}/products/{product_key:str}")
async def product(request: Req, org_id: FromPath[str], product_key: FromPath[str]) -> Response[str]:
    return await product_page(request, org_id, product_key)


@post("/o/{org_id:str}/products/{product_key:str}", status_code=200)
async def edit_product(request: Req, org_id: FromPath[str], product_key: FromPath[str]) -> Response[str]:
    _, caller = await org_of(request, org_id)
    f = form_of(request)
    patch = ProductPatch(name=validate.i18n(f.text("name"), field="name"),
                         bidirectional_auth=f.flag("biDirectionalAuth"),
                         description=validate.text(f.get("description") or "", field="description"),
                         dynamic_activate_enabled=f.flag("dynamicActivateEnabled"))
    await svc(request).products.update(caller, product_key, patch)
    return await product_page(request, org_id, product_key, notice="Product saved.")


@post("/o/{org_id:str}/products/{product_key:str}/living", status_code=200)
async def edit_living_meta(request: Req, org_id: FromPath[str], product_key: FromPath[str]) -> Response[str]:
    org, _ = await org_of(request, org_id)
    f = form_of(request)
    patch = MetaPatch(status=f.choice("status", tuple(PRODUCT_STATUS)),
                      bind_window_s=f.number("bindWindowS", 1, 86_400), require_permit_join=f.flag("requirePermitJoin"))
    await svc(request).living.set_product_meta(org.org_id, product_key, patch)
    return await product_page(request, org_id, product_key, notice="Living metadata saved.")


# --- devices -------------------------------------------------------------------------------------

async def device_list(request: Req, org_id: str) -> dict[str, Any]:
    """The search the device list and its polled rows share: expression ``q``, page ``page``."""
    org, caller = await org_of(request, org_id)
    query = dict(query_pairs(request.scope["query_string"]))
    q = query.get("q", "").strip()
    if len(q) > 2048:
        raise InvalidArgument("q: at most 2048 characters", field="q")
    number = digits_or(query.get("page"), "page")
    expr = expression.parse(q or None, expression.DEVICE_FIELDS)
    found, total = await svc(request).devices.search(caller, expr, Page(number, PAGE_SIZE))
    pages = max(1, -(-total // PAGE_SIZE))
    return {"org": org, "q": q, "page": number, "pages": pages, "total": total, "views": found}


def digits_or(raw: str | None, name: str, default: int = 1, hi: int = 1_000_000) -> int:
    if raw is None or raw == "":
        return default
    value = digits(raw)
    if value is None or not 1 <= value <= hi:
        raise InvalidArgument(f"{name}: must be a whole number from 1 to {hi}", field=name)
    return value


def status_of(online: bool, active_time: int | None, enabled: bool) -> str:
    """What the console shows: ``disabled`` first, then the EnOS status (inactive, online, offline)."""
    if not enabled:
        return "disabled"
    status = DeviceStatus.INACTIVE if active_time is None else DeviceStatus.ONLINE if online else DeviceStatus.OFFLINE
    return str(status.value)


ENV.globals["status_of"] = status_of


async def devices_page(request: Req, org_id: str, *, status: int = 200, notice: str | None = None,
                       created: tuple[str, str, str] | None = None) -> Response[str]:
    listing = await device_list(request, org_id)
    products = await svc(request).overview.product_counts(Caller.operator(listing["org"].org_id))
    return await render(request, "devices.html", status=status, notice=notice, created=created,
                        products=[c.product for c in products], **listing)


@get("/o/{org_id:str}/devices")
async def devices(request: Req, org_id: FromPath[str]) -> Response[str]:
    return await devices_page(request, org_id)


@get("/o/{org_id:str}/devices/rows")
async def device_rows(request: Req, org_id: FromPath[str]) -> Response[str]:
    return await render(request, "_device_rows.html", **await device_list(request, org_id))


@post("/o/{org_id:str}/devices", status_code=200)
async def create_device(request: Req, org_id: FromPath[str]) -> Response[str]:
    _, caller = await org_of(request, org_id)
    f = form_of(request)
    spec = DeviceSpec(product_key=f.text("productKey"), name=validate.i18n(f.text("name"), field="name"),
                      timezone=f.optional("timezone") or "+00:00", device_key=f.optional("deviceKey"))
    view = await svc(request).devices.create(caller, spec)
    d = view.device
    return await devices_page(request, org_id, status=201, notice=f"Device {d.name.default} created.",
                              created=(d.asset_id, d.device_key, d.secret))


async def device_page(request: Req, org_id: str, asset_id: str, *, notice: str | None = None,
                      secret: str | None = None) -> Response[str]:
    org, caller = await org_of(request, org_id)
    s, ref = svc(request), DeviceRef(asset_id=asset_id)
    view = await s.devices.get(caller, ref)
    return await render(request, "device.html", org=org, view=view, notice=notice, secret=secret,
                        family=await s.overview.family(caller, ref), timeline=await s.overview.timeline(caller, ref),
                        audit=await s.audit.search(AuditFilter(org_id=org.org_id, target=asset_id), AUDIT_ROWS),
                        credentials=await s.devices.credentials(caller, ref))


@get("/o/{org_id:str}/devices/{asset_id:str}")
async def device(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> Response[str]:
    return await device_page(request, org_id, asset_id)


@get("/o/{org_id:str}/devices/{asset_id:str}/status")
async def device_status(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> Response[str]:
    _, caller = await org_of(request, org_id)
    view = await svc(request).devices.get(caller, DeviceRef(asset_id=asset_id))
    return await render(request, "_status.html", d=view.device)


@get("/o/{org_id:str}/devices/{asset_id:str}/delete")
async def confirm_delete(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> Response[str]:
    org, caller = await org_of(request, org_id)
    view = await svc(request).devices.get(caller, DeviceRef(asset_id=asset_id))
    return await render(request, "delete.html", org=org, view=view)


DEVICE = "/o/{org_id:str}/devices/{asset_id:str}"


async def set_enabled(request: Req, org_id: str, asset_id: str, enabled: bool) -> Response[str]:
    _, caller = await org_of(request, org_id)
    await svc(request).devices.set_enabled(caller, DeviceRef(asset_id=asset_id), enabled)
    return await device_page(request, org_id, asset_id, notice=f"Device {'enabled' if enabled else 'disabled'}.")


@post(f"{DEVICE}/enable", status_code=200)
async def enable_device(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> Response[str]:
    return await set_enabled(request, org_id, asset_id, True)


@post(f"{DEVICE}/disable", status_code=200)
async def disable_device(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> Response[str]:
    return await set_enabled(request, org_id, asset_id, False)


@post(f"{DEVICE}/replace-key", status_code=200)
async def replace_key(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> Response[str]:
    _, caller = await org_of(request, org_id)
    f = form_of(request)
    new_key = f.optional("newDeviceKey") or ids.device_key()
    grace = f.number("grace", 0, MAX_GRACE_S) or 0
    view = await svc(request).devices.replace_key(caller, DeviceRef(asset_id=asset_id), new_key, grace_s=grace)
    then = (f"the old key and secret keep logging in, and a session on them goes on, for {grace} s more." if grace
            else "its old session has been closed.")
    return await device_page(request, org_id, asset_id, secret=view.device.secret,
                             notice=f"Key replaced: the device now logs in as {view.device.device_key} with the "
                                    f"secret below; {then}")


@post(f"{DEVICE}/reveal-secret", status_code=200)
async def reveal_secret(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> Response[str]:
    _, caller = await org_of(request, org_id)
    view = await svc(request).devices.get(caller, DeviceRef(asset_id=asset_id))
    # recorded in the audit trail as this request (a reveal changes nothing, so when it is answered)
    return await device_page(request, org_id, asset_id, secret=view.device.secret, notice="Secret revealed.")


@post(f"{DEVICE}/delete", status_code=200)
async def delete_device(request: Req, org_id: FromPath[str], asset_id: FromPath[str]) -> Response[str]:
    _, caller = await org_of(request, org_id)
    device = await svc(request).devices.delete(caller, DeviceRef(asset_id=asset_id))
    return await devices_page(request, org_id, notice=f"Device {device.device_key} ({asset_id}) deleted.")


# --- Living and OceanConnect ----------------------------------------------------------------------

async def living_page(request: Req, org_id: str, *, status: int = 200, notice: str | None = None) -> Response[str]:
    org, _ = await org_of(request, org_id)
    return await render(request, "living.html", status=status, org=org, notice=notice,
                        users=await svc(request).overview.living_users(org.org_id))


@get("/o/{org_id:str}/living")
async def living(request: Req, org_id: FromPath[str]) -> Response[str]:
    return await living_page(request, org_id)


@post("/o/{org_id:str}/living/users", status_code=200)
async def create_living_user(request: Req, org_id: FromPath[str]) -> Response[str]:
    user = await svc(request).living.create_user(org_id, form_of(request).text("login"))
    return await living_page(request, org_id, status=201, notice=f"User {user.login} created ({user.identity_id}).")


@get("/o/{org_id:str}/oceanconnect")
async def oceanconnect(request: Req, org_id: FromPath[str]) -> Response[str]:
    org, _ = await org_of(request, org_id)
    s = svc(request)
    return await render(request, "oceanconnect.html", org=org, subscriptions=await s.overview.subscriptions(org.org_id),
                        queue=await s.overview.push_queue(now_ms()))


#: Audit records a page shows at once (newest first; the admin API pages through all of them).
AUDIT_ROWS = 50


@get("/o/{org_id:str}/audit")
async def audit_trail(request: Req, org_id: FromPath[str]) -> Response[str]:
    """Who changed what in the organization, newest first; ``before`` pages back from a record id."""
    org, _ = await org_of(request, org_id)
    params = dict(query_pairs(request.scope["query_string"]))
    before = digits(params.get("before", "")) if params.get("before") else None
    if params.get("before") and before is None:
        raise InvalidArgument("before: a record id (digits)", field="before")
    where = AuditFilter(org_id=org.org_id, target=params.get("target", ""), outcome=params.get("outcome", ""),
                        before=before)
    records = await svc(request).audit.search(where, AUDIT_ROWS + 1)
    return await render(request, "audit.html", org=org, records=records[:AUDIT_ROWS], where=where,
                        more=records[AUDIT_ROWS - 1].id if len(records) > AUDIT_ROWS else None)


# --- the routers ---------------------------------------------------------------------------------

#: The sign-in page and its form: the only pages without a session.
public_router = Router(path="/console", route_handlers=[login_page, login], before_request=screen,
                       exception_handlers=console_errors.map, include_in_schema=False)

router = Router(
    path="/console",
    route_handlers=[logout, home, orgs, create_org, create_model, create_app, disable_app, enable_app,
                    rotate_app_secret, set_app_public_key, set_app_permissions, dashboard, products, create_product,
                    product, edit_product, edit_living_meta, devices, device_rows, create_device, device,
                    device_status, confirm_delete, enable_device, disable_device, replace_key, reveal_secret,
                    delete_device, living, create_living_user, oceanconnect, audit_trail],
    before_request=signed_in,
    exception_handlers=console_errors.map,
    include_in_schema=False,
)

static_router = create_static_files_router(path="/console/static", directories=[HERE / "static"],
                                           include_in_schema=False, opt={"console": True})

routers = [public_router, router, static_router]
