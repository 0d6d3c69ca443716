"""Authentication of Connect Service calls, the APIM token service, and v2.4 secrets for the caller."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest

from tests.conftest import data
from tests.support.certs import rsa_keypair
from tests.support.enos_client import EnosClient
from thingport.crypto import caller_secret
from thingport.dialects.enos import render
from thingport.domain.models import Application, Organization, Permission
from thingport.services.container import Services

D21, D24 = "/connect-service/v2.1/devices", "/connect-service/v2.4/devices"
TOKEN = "/apim-token-service/v2.0/token"


def refused(r: httpx.Response, *words: str) -> None:
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["code"] == 401 and body["data"] is None
    for w in words:
        assert w in body["msg"], body["msg"]


async def test_unsigned_and_badly_signed_calls(enos: EnosClient) -> None:
    refused(await enos.raw("GET", D21, {"action": "getStats"}, sign=False), "no credentials")
    now = str(int(time.time() * 1000))
    forged = {"apim-accesstoken": await enos.token(), "apim-timestamp": now, "apim-signature": "0" * 64}
    refused(await enos.raw("GET", D21, {"action": "getStats"}, sign=False, headers=forged), "signature")
    stale = int(time.time() * 1000) - 301_000
    refused(await enos.raw("GET", D21, {"action": "getStats"}, timestamp=stale), "apim-timestamp", "window")
    refused(await enos.raw("GET", D21, {"action": "getStats"}, timestamp=int(time.time() * 1000) + 301_000),
            "window")
    unknown = {**forged, "apim-accesstoken": "unknown"}
    refused(await enos.raw("GET", D21, {"action": "getStats"}, sign=False, headers=unknown), "unknown")


async def test_replayed_request_is_refused(enos: EnosClient) -> None:
    ts = int(time.time() * 1000)
    first = await enos.raw("GET", D21, {"action": "getStats"}, timestamp=ts)
    assert first.status_code == 200 and first.json()["code"] == 0
    refused(await enos.raw("GET", D21, {"action": "getStats"}, timestamp=ts), "used before")


async def test_a_signature_covers_query_and_body(enos: EnosClient, product_key: str) -> None:
    """Change what was signed and the call fails: the signature binds parameters and body."""
    tok = await enos.token()
    ts = str(int(time.time() * 1000))
    body = '{"productKey": "' + product_key + '", "deviceName": "d", "timezone": "+08:00"}'
    signed = tok + "action" + "create" + "orgId" + enos.org_id + body + ts + enos.app_secret
    headers = {"apim-accesstoken": tok, "apim-timestamp": ts,
               "apim-signature": hashlib.sha256(signed.encode()).hexdigest(), "Content-Type": "application/json"}
    tampered = body.replace('"d"', '"e"')
    r = await enos.http.post(f"{D21}?action=create&orgId={enos.org_id}", content=tampered, headers=headers)
    refused(r, "signature")
    r = await enos.http.post(f"{D21}?action=create&orgId={enos.org_id}", content=body, headers=headers)
    assert r.json()["code"] == 0


async def test_poseidon_clients_are_told_why(enos: EnosClient) -> None:
    r = await enos.raw("GET", D21, {"action": "getStats"}, sign=False, headers={"apim-accesstoken": "b64=="})
    refused(r, "Poseidon", "apim-signature")


async def test_disabled_application(enos: EnosClient, services: Services, app: Application) -> None:
    assert (await enos.raw("GET", D21, {"action": "getStats"})).status_code == 200
    await services.accounts.set_app_disabled(app.app_key, True)
    refused(await enos.raw("GET", D21, {"action": "getStats"}), "unknown")  # its token was revoked at once
    r = await enos.http.post(f"{TOKEN}/get", json=token_body(app))
    assert r.json()["status"] == 1002


async def test_access_key_scheme_of_the_python_sdk(http: httpx.AsyncClient, app: Application, product_key: str) -> None:
    legacy = EnosClient(http, app.app_key, app.secret, app.org_id, scheme="accessKey")
    r = await legacy.call("GET", D21, {"action": "getStats"})
    assert r["code"] == 0 and r["status"] == 0 and r["submsg"] is None
    r = await legacy.call("GET", D21, {"action": "get", "assetId": "missing"})
    assert r["status"] == 11404 and r["submsg"] == r["msg"]
    bad = EnosClient(http, app.app_key, "wrong-secret", app.org_id, scheme="accessKey")
    resp = await bad.raw("GET", D21, {"action": "getStats"})
    assert resp.status_code == 401 and resp.json()["status"] == 401
    # the SDK appends "?accessKey=…" to a URL that already has a query
    ts = str(int(time.time() * 1000))
    params = {"action": "getStats", "orgId": app.org_id, "requestTimestamp": ts}
    sign = hashlib.sha1((app.app_key + "".join(k + v for k, v in sorted(params.items())) + app.secret)
                        .encode()).hexdigest().upper()
    url = f"{D21}?action=getStats?accessKey={app.app_key}&requestTimestamp={ts}&orgId={app.org_id}&sign={sign}"
    assert (await http.get(url)).json()["code"] == 0


async def test_missing_org(enos: EnosClient) -> None:
    no_org = EnosClient(enos.http, enos.app_key, enos.app_secret, "")
    r = await no_org.call("GET", D21, {"action": "getStats"})
    assert r["code"] == 99400 and "orgId" in r["msg"]


# --------------------------------------------------------------------------------------------- token service

def token_body(app: Application, *, ts: int | None = None, secret: str | None = None, **extra: Any) -> dict[str, Any]:
    ts = ts or int(time.time() * 1000)
    enc = hashlib.sha256(f"{app.app_key}{ts}{secret or app.secret}".encode()).hexdigest()
    return {"appKey": app.app_key, "encryption": enc, "timestamp": ts, **extra}


async def test_token_service(http: httpx.AsyncClient, app: Application) -> None:
    first = (await http.post(f"{TOKEN}/get", json=token_body(app))).json()
    assert first["status"] == 0 and first["business"] == "apim-token-service"
    assert 7100 < first["data"]["expire"] <= 7200
    time.sleep(0.002)
    again = (await http.post(f"{TOKEN}/get", json=token_body(app))).json()
    assert again["data"]["accessToken"] == first["data"]["accessToken"]  # the same while valid
    old = first["data"]["accessToken"]
    refreshed = (await http.post(f"{TOKEN}/refresh", json=token_body(app, ts=int(time.time() * 1000) + 1,
                                                                       accessToken=old))).json()
    assert refreshed["status"] == 0 and refreshed["data"]["accessToken"] != old
    stale_client = EnosClient(http, app.app_key, app.secret, app.org_id)
    stale_client._token = old
    refused(await stale_client.raw("GET", D21, {"action": "getStats"}), "unknown")
    fresh = EnosClient(http, app.app_key, app.secret, app.org_id)
    fresh._token = refreshed["data"]["accessToken"]
    assert (await fresh.call("GET", D21, {"action": "getStats"}))["code"] == 0


async def test_token_service_errors(http: httpx.AsyncClient, app: Application) -> None:
    async def status(body: Any) -> int:
        return int((await http.post(f"{TOKEN}/get", json=body)).json()["status"])

    assert await status(token_body(app, secret="wrong")) == 1003
    assert await status({**token_body(app), "appKey": "nobody"}) == 1002
    assert await status({"appKey": app.app_key}) == 1202
    assert await status(token_body(app, ts=int(time.time() * 1000) - 10 * 60_000)) == 1004
    body = token_body(app)
    assert await status(body) == 0
    assert await status(body) == 1001  # the same encryption again is a replay
    r = (await http.post(f"{TOKEN}/refresh", json=token_body(app, accessToken="not-mine"))).json()
    assert r["status"] == 1204


# --------------------------------------------------------------------------------------------- v2.4 secrets



async def test_v24_secrets_encrypted_for_the_caller(enos: EnosClient, services: Services, app: Application,
                                                    product_key: str, org: Organization,
                                                    http: httpx.AsyncClient) -> None:
    body = {"productKey": product_key, "deviceName": "d", "timezone": "+08:00", "requireSecret": True}
    r = await enos.call("POST", D24, {"action": "create"}, body)
    assert r["code"] == 11858 and "requireSecret" in r["msg"]
    found = await enos.call("POST", D21, {"action": "search"}, {"pagination": {"pageNo": 1, "pageSize": 10}})
    assert data(found) == []  # refused before anything was created
    private, public = rsa_keypair()
    await services.accounts.set_app_public_key(app.app_key, public)
    created = data(await enos.call("POST", D24, {"action": "create"}, body))
    plain = data(await enos.call("GET", D21, {"action": "get", "assetId": created["assetId"]}))["deviceSecret"]
    assert caller_secret.decrypt(private, created["deviceSecret"], created["sessionKey"]) == plain
    got = data(await enos.call("GET", D24, {"action": "get", "assetId": created["assetId"], "requireSecret": "true"}))
    assert caller_secret.decrypt(private, got["deviceSecret"], got["sessionKey"]) == plain
    bare = data(await enos.call("GET", D24, {"action": "get", "assetId": created["assetId"]}))
    assert "deviceSecret" not in bare and "sessionKey" not in bare
    product = data(await enos.call("GET", "/connect-service/v2.4/products",
                                   {"action": "get", "productKey": product_key, "requireSecret": "true"}))
    product_plain = data(await enos.call("GET", "/connect-service/v2.1/products",
                                         {"action": "get", "productKey": product_key}))["productSecret"]
    assert caller_secret.decrypt(private, product["productSecret"], product["sessionKey"]) == product_plain
    bad_flag = await enos.call("GET", D24, {"action": "get", "assetId": created["assetId"], "requireSecret": "yes"})
    assert bad_flag["code"] == 99400 and "requireSecret" in bad_flag["msg"]
    ro_app = await services.accounts.create_app(org.org_id, "ro", frozenset({Permission.DEVICE_READ}), public)
    ro = EnosClient(http, ro_app.app_key, ro_app.secret, org.org_id)
    denied = data(await ro.call("GET", D24, {"action": "get", "assetId": created["assetId"], "requireSecret": "true"}))
    assert denied["deviceSecret"] == render.SECRET_DENIED == denied["sessionKey"]


async def test_an_app_secret_rolled_with_a_grace_period_signs_until_its_end(
        enos: EnosClient, http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/credentials.md: rotated through the admin API with ``grace``, the old secret still gets a token and
    signs both ways (APIM and accessKey) until the period's end, not a millisecond after; the new one at once."""
    from tests.dialects.admin.test_routes import admin
    from thingport.dialects.enos import auth, routes

    path, params = "/connect-service/v2.1/devices", {"action": "getStats"}
    old_key = EnosClient(http, enos.app_key, enos.app_secret, enos.org_id, scheme="accessKey")
    await enos.token()  # a token the old secret obtained
    out = await admin(http, "POST", f"/apps/{enos.app_key}/rotate-secret", {"grace": 60})
    end = out["previousUntil"]
    assert out["appSecret"] != enos.app_secret and end is not None
    new_key = EnosClient(http, enos.app_key, out["appSecret"], enos.org_id, scheme="accessKey")
    fresh_old = EnosClient(http, enos.app_key, enos.app_secret, enos.org_id)
    new_apim = EnosClient(http, enos.app_key, out["appSecret"], enos.org_id)
    clock = [end - 1]
    for module in (auth, routes):
        monkeypatch.setattr(module, "now_ms", lambda: clock[0])
    for i, client in enumerate((enos, old_key, fresh_old, new_key, new_apim)):  # just before the end: all of them
        data((await client.raw("GET", path, params, timestamp=clock[0] - i)).json())  # (one token: not a replay)
    clock[0] = end
    for client in (enos, old_key):  # at the end: the old token and the old secret are refused
        r = await client.raw("GET", path, params, timestamp=clock[0])
        assert r.json()["code"] != 0, r.text
    late_old = EnosClient(http, enos.app_key, enos.app_secret, enos.org_id)
    ts = clock[0]
    enc = hashlib.sha256(f"{enos.app_key}{ts}{enos.app_secret}".encode()).hexdigest()
    r = await http.post("/apim-token-service/v2.0/token/get",
                        json={"appKey": enos.app_key, "encryption": enc, "timestamp": ts})
    assert r.json()["status"] == 1003 and late_old.app_secret == enos.app_secret
    data((await new_key.raw("GET", path, params, timestamp=clock[0])).json())
    bad = await admin(http, "POST", f"/apps/{enos.app_key}/rotate-secret", {"grace": -1}, expect=400)
    assert bad["field"] == "grace"
