"""The console's pages and actions over HTTP (no browser): sign-in, CSRF, every page, bad input."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.dialects.conftest import Unexpected
from thingport.app import create_app
from thingport.dialects.console.session import COOKIE, CSRF_FIELD, Sessions
from thingport.domain.models import Organization, Page
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef
from thingport.settings import Settings

TOKEN = "operator-secret-token"


def csrf_of(html: str) -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def sign_in(http: httpx.AsyncClient) -> str:
    """Sign in; the CSRF token of the session (read from a page, as a browser has it)."""
    r = await http.post("/console/login", data={"token": TOKEN})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; Secure when the request came over TLS
    page = await http.get("/console/orgs")
    assert page.status_code == 200
    return csrf_of(page.text)


@pytest.fixture
async def console(http: httpx.AsyncClient) -> str:
    return await sign_in(http)


async def test_pages_need_a_session(http: httpx.AsyncClient) -> None:
    for path in ("/console", "/console/orgs", "/console/o/x/devices"):
        r = await http.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    r = await http.get("/console/o/x/devices/rows", headers={"HX-Request": "true"})
    assert r.headers["HX-Redirect"] == "/console/login"
    login = await http.get("/console/login")
    assert login.status_code == 200 and 'name="token"' in login.text
    assert "default-src 'self'" in login.headers["content-security-policy"]
    assert login.headers["x-frame-options"] == "DENY"


async def test_wrong_token_and_forged_cookies_are_refused(http: httpx.AsyncClient) -> None:
    r = await http.post("/console/login", data={"token": "nope"})
    assert r.status_code == 401 and "not the operator token" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")
    cookie, _ = Sessions("another-token").issue()
    for value in (cookie, "garbage", cookie.split(".")[0] + ".", "x" * 600):
        http.cookies.set(COOKIE, value, path="/console")
        assert (await http.get("/console/orgs")).status_code == 303
    expired, _ = Sessions(TOKEN).issue(now=0)
    http.cookies.set(COOKIE, expired, path="/console")
    assert (await http.get("/console/orgs")).status_code == 303


async def test_posts_need_the_csrf_token(http: httpx.AsyncClient, console: str) -> None:
    for token in (None, "", "wrong", console[:-1]):
        body = {"name": "Evil"} | ({CSRF_FIELD: token} if token is not None else {})
        r = await http.post("/console/orgs", data=body)
        assert r.status_code == 403, token
        assert "security token" in r.text
    assert "Evil" not in (await http.get("/console/orgs")).text
    r = await http.post("/console/orgs", data={"name": "Evil", CSRF_FIELD: console},
                        headers={"Origin": "https://attacker.example"})
    assert r.status_code == 403 and "another site" in r.text
    r = await http.post("/console/orgs", data={"name": "Good"}, headers={"X-CSRF-Token": console})
    assert r.status_code == 201 and "Good" in r.text


async def test_sign_out_drops_the_cookie(http: httpx.AsyncClient, console: str) -> None:
    r = await http.post("/console/logout", data={CSRF_FIELD: console})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert (await http.get("/console/orgs")).status_code == 303


async def test_organization_application_model_flow(http: httpx.AsyncClient, console: str,
                                                   services: Services) -> None:
    r = await http.post("/console/orgs", data={"name": "Acme <b>", "orgId": "o-acme", CSRF_FIELD: console})
    assert r.status_code == 201
    assert "Acme &lt;b&gt;" in r.text and "Acme <b>" not in r.text  # autoescaped
    r = await http.post("/console/orgs/o-acme/models", data={"modelId": "m1", CSRF_FIELD: console})
    assert r.status_code == 201 and "m1" in r.text
    r = await http.post("/console/orgs/o-acme/apps", data={"name": "ops", "permissions": "device:read",
                                                            CSRF_FIELD: console})
    assert r.status_code == 201
    app = (await services.accounts.list_apps("o-acme"))[0]
    assert app.secret in r.text  # shown once, here
    assert app.permissions == frozenset({"device:read"})
    assert app.secret not in (await http.get("/console/orgs")).text
    r = await http.post(f"/console/apps/{app.app_key}/rotate-secret", data={CSRF_FIELD: console})
    rotated = await services.accounts.get_app(app.app_key)
    assert rotated.secret != app.secret and rotated.secret in r.text and app.secret not in r.text
    await http.post(f"/console/apps/{app.app_key}/disable", data={CSRF_FIELD: console})
    assert (await services.accounts.get_app(app.app_key)).disabled
    await http.post(f"/console/apps/{app.app_key}/enable", data={CSRF_FIELD: console})
    assert not (await services.accounts.get_app(app.app_key)).disabled
    r = await http.post(f"/console/apps/{app.app_key}/permissions",
                        data={"permissions": ["device:full", "product:create"], CSRF_FIELD: console})
    assert r.status_code == 200
    assert {p.value for p in (await services.accounts.get_app(app.app_key)).permissions} == {"device:full",
                                                                                            "product:create"}
    r = await http.post(f"/console/apps/{app.app_key}/public-key", data={"publicKey": "not a key", CSRF_FIELD: console})
    assert r.status_code == 400 and "publicKey" in r.text
    r = await http.post(f"/console/apps/{app.app_key}/permissions", data={"permissions": "root", CSRF_FIELD: console})
    assert r.status_code == 400 and "permissions: unknown permission" in r.text


async def test_product_and_device_flow(http: httpx.AsyncClient, console: str, services: Services,
                                       org: Organization) -> None:
    base = f"/console/o/{org.org_id}"
    r = await http.post(f"{base}/products", data={"name": "Meter", "productType": "Gateway", "dataFormat": "Json",
                                                  "modelId": "model1", CSRF_FIELD: console})
    assert r.status_code == 201, r.text
    caller = Caller.operator(org.org_id)
    [product], _ = await services.products.search(caller, None, Page(1, 10))
    pk = product.product_key
    r = await http.post(f"{base}/products/{pk}", data={"name": "Meter 2", "description": "d", CSRF_FIELD: console})
    assert r.status_code == 200 and (await services.products.get(caller, pk)).name.default == "Meter 2"
    r = await http.post(f"{base}/products/{pk}/living", data={"status": "published", "bindWindowS": "120",
                                                              "requirePermitJoin": "true", CSRF_FIELD: console})
    assert r.status_code == 200
    meta = await services.living.product_meta(org.org_id, pk)
    assert (meta.status, meta.bind_window_s, meta.require_permit_join) == (1, 120, True)
    r = await http.post(f"{base}/devices", data={"productKey": pk, "name": "gw", "deviceKey": "gw-0001",
                                                 CSRF_FIELD: console})
    assert r.status_code == 201, r.text
    gw = (await services.devices.get(caller, DeviceRef(product_key=pk, device_key="gw-0001"))).device
    assert gw.secret in r.text
    for path in ("", "/products", f"/products/{pk}", "/devices", "/devices?q=deviceKey+%3D+%27gw-0001%27",
                 f"/devices/{gw.asset_id}", f"/devices/{gw.asset_id}/delete", "/living", "/oceanconnect"):
        page = await http.get(base + path)
        assert page.status_code == 200, (path, page.text)
        assert gw.secret not in page.text
    rows = await http.get(f"{base}/devices/rows?q=deviceKey+%3D+%27nobody%27")
    assert "No device matches" in rows.text
    device_page = (await http.get(f"{base}/devices/{gw.asset_id}")).text
    assert "device.created" in device_page and "assetId" in device_page and "nodeId" in device_page
    status = await http.get(f"{base}/devices/{gw.asset_id}/status")
    assert 'data-status="inactive"' in status.text
    r = await http.post(f"{base}/devices/{gw.asset_id}/reveal-secret", data={CSRF_FIELD: console})
    assert gw.secret in r.text
    r = await http.post(f"{base}/devices/{gw.asset_id}/disable", data={CSRF_FIELD: console})
    assert 'data-status="disabled"' in r.text
    r = await http.post(f"{base}/devices/{gw.asset_id}/disable", data={CSRF_FIELD: console})
    assert r.status_code == 400 and "already disabled" in r.text
    await http.post(f"{base}/devices/{gw.asset_id}/enable", data={CSRF_FIELD: console})
    r = await http.post(f"{base}/devices/{gw.asset_id}/replace-key", data={"newDeviceKey": "gw-0002",
                                                                          CSRF_FIELD: console})
    replaced = (await services.devices.get(caller, DeviceRef(asset_id=gw.asset_id))).device
    assert replaced.device_key == "gw-0002" and replaced.secret != gw.secret and replaced.secret in r.text
    r = await http.post(f"{base}/devices/{gw.asset_id}/replace-key", data={"newDeviceKey": "gw-0003", "grace": "600",
                                                                          CSRF_FIELD: console})
    assert "for 600 s more" in r.text and 'id="credentials"' in r.text  # the history on the device page
    for key, why in (("gw-0002", "replaced"), ("gw-0003", "")):
        assert f"<code>{key}</code>" in r.text and why in r.text
    assert replaced.secret not in r.text
    r = await http.post(f"{base}/devices/{gw.asset_id}/delete", data={CSRF_FIELD: console})
    assert r.status_code == 200 and "deleted" in r.text
    assert (await http.get(f"{base}/devices/{gw.asset_id}")).status_code == 400  # DEVICE_NOT_FOUND


@pytest.mark.parametrize(("path", "body", "status", "message"), [
    ("/products", {"name": "", "productType": "Device", "dataFormat": "Json", "modelId": "model1"}, 400,
     "name: is required"),
    ("/products", {"name": "x", "productType": "Robot", "dataFormat": "Json", "modelId": "model1"}, 400,
     "productType: must be one of"),
    ("/products", {"name": "x", "productType": "Device", "dataFormat": "Json", "modelId": "nope"}, 400,
     "modelId: model nope does not exist"),
    ("/devices", {"productKey": "nope", "name": "d"}, 400, "productKey: product nope does not exist"),
    ("/devices/nope/enable", {}, 400, "device nope cannot be found"),
    ("/devices/nope/replace-key", {"newDeviceKey": "a"}, 400, "newDeviceKey: must be 4-64 characters"),
    ("/devices/nope/replace-key", {"newDeviceKey": "abcd", "grace": "-1"}, 400, "grace: must be a whole number"),
    ("/products/nope/living", {"status": "published", "bindWindowS": "0"}, 400, "bindWindowS: must be a whole number"),
    ("/products/nope/living", {"status": "published", "bindWindowS": "１２"}, 400, "bindWindowS: must be a whole"),
    ("/living/users", {"login": " "}, 400, "login: is required"),
])
async def test_bad_input_is_a_readable_message(http: httpx.AsyncClient, console: str, org: Organization, path: str,
                                               body: dict[str, str], status: int, message: str) -> None:
    r = await http.post(f"/console/o/{org.org_id}{path}", data={**body, CSRF_FIELD: console},
                        headers={"Referer": f"http://thingport.test/console/o/{org.org_id}/devices"})
    assert r.status_code == status, r.text
    assert message in r.text
    assert f'href="/console/o/{org.org_id}/devices"' in r.text  # back to the form's page


async def test_bad_queries_and_unknown_ids(http: httpx.AsyncClient, console: str, org: Organization) -> None:
    base = f"/console/o/{org.org_id}"
    for path, status, message in [
        (f"{base}/devices?q=status+%3D%3D", 400, "expression"),
        (f"{base}/devices?page=0", 400, "page: must be a whole number"),
        (f"{base}/devices?page=abc", 400, "page: must be a whole number"),
        (f"{base}/devices?q=%00", 400, "q"),
        ("/console/o/nobody/devices", 404, "organization nobody does not exist"),
        (f"{base}/products/nope", 400, "product nope does not exist"),
        (f"{base}/devices/nope/status", 400, "cannot be found"),
    ]:
        r = await http.get(path)
        assert r.status_code == status, (path, r.text)
        assert message in r.text, (path, r.text)
    r = await http.post("/console/orgs", content=b"name=\xff\xfe&_csrf=" + console.encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "not UTF-8" in r.text
    r = await http.post("/console/orgs", data={"name": "x" * 20_000, CSRF_FIELD: console})
    assert r.status_code == 400


async def test_an_unexpected_failure_is_a_page_not_a_traceback(http: httpx.AsyncClient, console: str,
                                                              services: Services, org: Organization,
                                                              unexpected: Unexpected) -> None:
    unexpected.fail(services.overview, "product_counts")
    r = await http.get(f"/console/o/{org.org_id}")
    assert r.status_code == 500
    assert "Something went wrong" in r.text and "database is gone" not in r.text
    assert unexpected.logged() == f"console request GET /console/o/{org.org_id} failed"


async def test_the_cookie_is_secure_over_https(settings: Settings, services: Services) -> None:
    app = create_app(settings, services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://thingport.test") as tls:
        r = await tls.post("/console/login", data={"token": TOKEN})
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
        assert (await tls.get("/console/orgs")).status_code == 200


async def test_console_changes_and_reveals_are_audited_as_the_operator(
        http: httpx.AsyncClient, console: str, services: Services, org: Organization) -> None:
    from thingport.store.audit import AuditFilter

    base = f"/console/o/{org.org_id}"
    r = await http.post(f"{base}/products", data={"name": "Meter", "productType": "Device", "dataFormat": "Json",
                                                  "modelId": "model1", CSRF_FIELD: console})
    assert r.status_code == 201, r.text
    [product], _ = await services.products.search(Caller.operator(org.org_id), None, Page(1, 10))
    r = await http.post(f"{base}/devices", data={"productKey": product.product_key, "name": "d",
                                                 "deviceKey": "meter-0001", CSRF_FIELD: console})
    device = (await services.devices.get(Caller.operator(org.org_id),
                                         DeviceRef(product_key=product.product_key, device_key="meter-0001"))).device
    await http.post(f"{base}/devices/{device.asset_id}/reveal-secret", data={CSRF_FIELD: console})
    records = await services.audit.search(AuditFilter(actor="operator"), 10)
    got = [(r.channel, r.action.rsplit("/", 1)[-1], r.target, r.outcome) for r in records]
    assert ("console", "reveal-secret", device.asset_id, "ok") in got
    assert ("console", "devices", device.asset_id, "ok") in got
    assert all(device.secret not in (r.error + r.target + r.action) for r in records)

    # readable in the console: on the device's page, and the organization's trail with its filters
    page = (await http.get(f"{base}/devices/{device.asset_id}")).text
    assert "reveal-secret" in page and ">operator<" in page and device.secret not in page
    trail = (await http.get(f"{base}/audit")).text
    assert "reveal-secret" in trail and "/products" in trail
    only = (await http.get(f"{base}/audit", params={"target": device.asset_id})).text
    assert "reveal-secret" in only and "/products<" not in only
    failed = (await http.get(f"{base}/audit", params={"outcome": "failed"})).text
    assert "No changes recorded." in failed
    bad = await http.get(f"{base}/audit", params={"before": "²"})
    assert bad.status_code == 400 and "before" in bad.text
