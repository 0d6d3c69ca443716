"""What the fuzz tests send requests into: one Thingport with data in it, credentials for every
dialect, a signer that makes any request authentic, and the checks every answer must pass.

A request is signed as its dialect requires (``sign``), sent in process, and its answer checked
(``check``): never an internal error (HTTP 500 or a dialect's internal-error envelope), never an
error logged, an error answer that names a field, and after an error answer a database exactly as
it was before the request (nothing half-written).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlencode
from warnings import catch_warnings, filterwarnings

import httpx
import pytest
from sqlalchemy import MetaData, select

from thingport.crypto import apigateway, signing
from thingport.domain.models import Application, I18nText, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceSpec
from thingport.services.products import ProductSpec

#: Tables a refused request may still change: the replay guard records a signature once it is
#: verified, whatever the operation then answers; the audit trail records the refused attempt; the
#: OceanConnect flow control counts every call past the token check (on PostgreSQL, in the table
#: the nodes share), as it does in memory on SQLite.
UNGUARDED = frozenset({"used_nonces", "audit_records", "shared_counters"})
HOOK_TOKEN = "hook-secret-token"
OPERATOR_TOKEN = "operator-secret-token"


@dataclass
class Sent:
    """One request as sent (for the failure report) and its answer."""

    method: str
    url: str
    headers: dict[str, str | bytes]
    body: bytes
    response: httpx.Response | None = None

    def describe(self) -> str:
        answer = "" if self.response is None else f" -> {self.response.status_code} {self.response.text[:500]}"
        return f"{self.method} {self.url} {self.headers} {self.body[:300]!r}{answer}"


@dataclass
class World:
    services: Services
    http: httpx.AsyncClient
    app: Application
    caller: Caller
    #: Ids that exist, by the name of the path parameter that takes them.
    ids: dict[str, list[str]] = field(default_factory=dict)
    oc_token: str = ""
    iot_token: str = ""
    enos_token: str = ""
    spare_app: str = ""
    spare_user: str = ""
    tables: MetaData | None = None

    # ----------------------------------------------------------------------------- credentials

    async def enos_access_token(self) -> str:
        if not self.enos_token:
            ts = str(int(time.time() * 1000))
            r = await self.http.post("/apim-token-service/v2.0/token/get", json={
                "appKey": self.app.app_key, "timestamp": ts,
                "encryption": signing.apim_token_encryption(self.app.app_key, ts, self.app.secret)})
            self.enos_token = r.json()["data"]["accessToken"]
        return self.enos_token

    def token_fields(self) -> dict[str, Any]:
        """A valid appKey / timestamp / encryption triple for the APIM token service."""
        ts = str(int(time.time() * 1000))
        return {"appKey": self.app.app_key, "timestamp": ts,
                "encryption": signing.apim_token_encryption(self.app.app_key, ts, self.app.secret)}

    # ----------------------------------------------------------------------------- signing

    async def sign(self, dialect: str, method: str, path: str, query: list[tuple[str, str]], body: bytes,
                   headers: Mapping[str, str | bytes], *, scheme: str = "apim") -> Sent:
        """The request made authentic for ``dialect`` (query and body as they will be sent).

        ``headers`` win over the ones signing adds and are signed as the server reads them (bytes
        as Latin-1), so a test can send any timestamp under a valid signature.
        """
        given = {k.lower(): v.decode("latin-1") if isinstance(v, bytes) else v for k, v in headers.items()}
        added: dict[str, str] = {}
        if dialect == "enos":
            text_body = body.decode("utf-8", "replace")
            ts = given.get("apim-timestamp", str(int(time.time() * 1000)))
            if scheme == "apim":
                token = await self.enos_access_token()
                added = {"apim-accesstoken": token, "apim-timestamp": ts,
                         "apim-signature": signing.apim_signature(token, query, text_body, ts, self.app.secret)}
            else:
                query = [*query, ("requestTimestamp", ts)]
                sign = signing.access_key_signature(self.app.app_key, query, text_body, self.app.secret)
                query = [("accessKey", self.app.app_key), *query, ("sign", sign)]
        elif dialect == "oceanconnect":
            added = {"app_key": self.app.app_key, "authorization": f"Bearer {self.oc_token}"}
        elif dialect == "living":
            added = {"x-ca-key": self.app.app_key, "x-ca-nonce": str(uuid.uuid4()),
                     "x-ca-timestamp": str(int(time.time() * 1000)), "x-ca-signaturemethod": "HmacSHA256",
                     "date": formatdate(usegmt=True), "accept": "application/json",
                     "content-type": "application/octet-stream",
                     "x-ca-signature-headers": "x-ca-key,x-ca-nonce,x-ca-timestamp,x-ca-signaturemethod"}
            if body:
                added["content-md5"] = apigateway.content_md5(body)
            view = {**added, **given}
            signed = apigateway.signed_header_names(view["x-ca-signature-headers"])
            added["x-ca-signature"] = apigateway.signature(
                self.app.secret, apigateway.string_to_sign(method, view, signed, path, query))
        elif dialect == "admin":
            added = {"authorization": f"Bearer {OPERATOR_TOKEN}"}
        elif dialect == "emqx":
            added = {"authorization": f"Bearer {HOOK_TOKEN}"}
        elif dialect == "rabbitmq":
            query = [("token", HOOK_TOKEN), *query]
        url = path + ("?" + urlencode(query, quote_via=quote) if query else "")
        return Sent(method, url, {**added, **{k.lower(): v for k, v in headers.items()}}, body)

    # ----------------------------------------------------------------------------- sending

    async def send(self, dialect: str, sent: Sent, caplog: pytest.LogCaptureFixture) -> httpx.Response:
        """Send ``sent`` and check its answer (see the module's docstring)."""
        before = await self.snapshot()
        caplog.clear()
        response = await self.http.request(sent.method, sent.url, content=sent.body, headers=sent.headers)
        sent.response = response
        faults = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not faults, f"logged {faults[0].getMessage()!r} for {sent.describe()}"
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("thingport")]
        assert len(warnings) <= 1, f"{len(warnings)} warnings for {sent.describe()}"
        failed, invalid = verdict(dialect, response)
        if invalid is not None:
            assert ": " in invalid, f"the error names no field: {sent.describe()}"
        if failed:
            assert await self.snapshot() == before, f"a refused request changed the database: {sent.describe()}"
        return response

    async def snapshot(self) -> dict[str, list[str]]:
        """Every row of every table the request could have changed, in a comparable form."""
        async with self.services.core.db.engine.connect() as conn:
            if self.tables is None:
                meta = MetaData()
                with catch_warnings():  # rows are compared, indexes do not matter here
                    filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
                    await conn.run_sync(meta.reflect)
                self.tables = meta
            return {name: sorted(repr(tuple(r)) for r in (await conn.execute(select(table))).all())
                    for name, table in self.tables.tables.items()
                    if name not in UNGUARDED and not name.startswith("alembic")}


#: The answers that say "this parameter is invalid", which must name it ("field: why").
INVALID = {"enos": {99400, 1004, 1202}, "oceanconnect": {"50400", "100405", "100007", "102202", "100222", "100003"},
           "living": {460}}


def verdict(dialect: str, r: httpx.Response) -> tuple[bool, str | None]:
    """(the answer is an error, what it says when it says a parameter is invalid); fails on an
    internal error of any kind."""
    assert r.status_code != 500 or '"100412"' in r.text, f"HTTP 500: {r.text[:500]}"
    if dialect == "rabbitmq" and r.status_code == 200:  # allow / deny, and why in a header
        assert r.text in ("allow", "deny"), r.text
        reason = r.headers.get("x-thingport-reason", "")
        assert reason != "internal error", r.text
        return r.text == "deny", reason or None
    kind = r.headers.get("content-type", "")
    if kind.startswith(("application/x-ndjson", "text/csv")):  # a streamed export: a line per device
        if kind.startswith("application/x-ndjson"):
            assert all(isinstance(json.loads(line), dict) for line in r.text.splitlines()), r.text[:500]
        return r.status_code >= 400, None
    body: Any = r.json() if r.content else {}
    if r.status_code in (404, 405) and "status_code" in body:
        return False, None  # Litestar's own answer: no route has this path (an encoded '/') or method
    if dialect == "enos":
        code, said = (body["status"], body["msg"]) if "business" in body else (body["code"], body["msg"])
        assert code not in (99500, 1005), body
        return code != 0, said if code in INVALID[dialect] else None
    if dialect == "oceanconnect":
        assert body.get("error_code") != "50252", body
        return r.status_code >= 400, body.get("error_desc") if body.get("error_code") in INVALID[dialect] else None
    if dialect == "living":
        if r.status_code != 200:  # a gateway refusal: X-Ca-Error-Message says what
            return True, r.headers.get("x-ca-error-message", "")
        assert body["code"] != 500, body
        return body["code"] != 200, body["message"] if body["code"] in INVALID[dialect] else None
    if dialect == "admin":
        if r.status_code != 400:
            return r.status_code >= 400, None
        return True, f"{body['field']}: {body['message']}" if body.get("field") else json.dumps(body)
    # emqx: a refused hook request is a denial (or an event error) that says why
    if body.get("result") in ("deny", "error") and "message" in body:
        assert body["message"] != "internal error", body
        return True, body["message"]
    return False, None


async def build(services: Services, http: httpx.AsyncClient) -> World:
    """An organization with an application, products, devices (some registered through
    OceanConnect), a subscription and a signed-in Living user, and every dialect's credentials."""
    org = await services.accounts.create_org("Fuzz", "o-fuzz")
    await services.accounts.create_model(org.org_id, "model1")
    app = await services.accounts.create_app(org.org_id, "fuzz")
    caller = Caller.operator(org.org_id)
    world = World(services, http, app, caller)
    spare = await services.accounts.create_app(org.org_id, "spare")
    world.spare_app = spare.app_key
    products = [(await services.products.create(caller, ProductSpec(I18nText("P"), kind, "Json", "model1", False)))
                .product_key for kind in (ProductType.DEVICE, ProductType.GATEWAY)]
    devices = [(await services.devices.create(caller, DeviceSpec(products[i % 2], I18nText(f"d{i}"), "+08:00",
                                                                   f"fuzz-dev-{i}"))).device.asset_id
               for i in range(3)]
    r = await http.post("/iocm/app/sec/v1.1.0/login", data={"appId": app.app_key, "secret": app.secret})
    world.oc_token = r.json()["accessToken"]
    oc = {"app_key": app.app_key, "Authorization": f"Bearer {world.oc_token}"}
    registered = (await http.post("/iocm/app/reg/v1.1.0/deviceCredentials", headers=oc,
                                  json={"nodeId": "fuzz-node-1"})).json()["deviceId"]
    sub = (await http.post("/iocm/app/sub/v1.2.0/subscriptions", headers=oc, json={
        "notifyType": "deviceAdded", "callbackUrl": "http://127.0.0.1:9/cb"})).json()["subscriptionId"]
    user = await services.living.create_user(org.org_id, "fuzz-user")
    spare_user = await services.living.create_user(org.org_id, "spare-user")
    world.spare_user = spare_user.identity_id
    code, _ = await services.living.mint_auth_code(user.identity_id)
    world.iot_token = (await services.living.create_session(app, code)).iot_token
    world.ids = {"device_id": [registered, *devices], "subscription_id": [sub], "org_id": [org.org_id],
                 "app_key": [spare.app_key], "identity_id": [spare_user.identity_id], "product_key": products,
                 "assetId": devices, "productKey": products, "deviceKey": ["fuzz-dev-0", "fuzz-dev-1"]}
    return world


def json_bytes(value: Any, *, ascii_only: bool = True) -> bytes:
    """``value`` as JSON; with ``ascii_only`` off, raw UTF-8 (lone surrogates pass through as they
    are, making the body invalid UTF-8, as a broken client's would be)."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")

