"""Login, refreshToken, logout, the app_key + Bearer checks, appId and flow control.

As docs/reference/oceanconnect.md §2 and §9 describe them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.support.oc_client import OcClient, oc_error
from thingport.app import create_app
from thingport.domain.models import Application, Organization
from thingport.services.container import Services
from thingport.settings import Settings

DEVICES = "/iocm/app/dm/v1.4.0/devices"
PAGE = {"pageNo": "0"}


async def test_login_shape_and_only_latest_token_valid(http: httpx.AsyncClient, app: Application) -> None:
    client = OcClient(http, app.app_key, app.secret)
    first = await client.login()
    assert first["scope"] == "default" and first["tokenType"] == "bearer" and first["expiresIn"] == 3600
    assert len(first["accessToken"]) == 32 and first["refreshToken"] != first["accessToken"]
    assert (await client.call("GET", DEVICES, params=PAGE)).status_code == 200
    await client.login()
    assert (await client.call("GET", DEVICES, params=PAGE)).status_code == 200
    old = {"app_key": app.app_key, "Authorization": f"Bearer {first['accessToken']}"}
    oc_error(await client.call("GET", DEVICES, params=PAGE, headers=old), 403, "1010005",
             "Invalid access token or appId.")


async def test_login_errors(http: httpx.AsyncClient, app: Application, services: Services) -> None:
    login = "/iocm/app/sec/v1.1.0/login"
    oc_error(await http.post(login, data={"appId": app.app_key, "secret": "wrong"}), 401, "100208")
    oc_error(await http.post(login, data={"appId": "nope", "secret": app.secret}), 401, "100208")
    oc_error(await http.post(login, data={"appId": app.app_key}), 400, "102202", "secret")
    await services.accounts.set_app_disabled(app.app_key, True)
    oc_error(await http.post(login, data={"appId": app.app_key, "secret": app.secret}), 400, "100247")


async def test_refresh_token_rotates_both_tokens(oc: OcClient, http: httpx.AsyncClient, app: Application) -> None:
    first = await oc.login()
    url = "/iocm/app/sec/v1.1.0/refreshToken"
    body = {"appId": app.app_key, "secret": app.secret, "refreshToken": first["refreshToken"]}
    r = await http.post(url, json=body)
    assert r.status_code == 200 and r.json()["expiresIn"] == 3600
    new = r.json()
    oc_error(await http.post(url, json=body), 401, "100208", "refreshToken")  # the old one is spent
    oc_error(await http.post(url, json={**body, "secret": "x", "refreshToken": new["refreshToken"]}), 401, "100208")
    oc_error(await http.post(url, json={"appId": app.app_key}), 400, "102202", "secret, refreshToken")
    oc.token = first["accessToken"]
    oc_error(await oc.call("GET", DEVICES, params=PAGE), 403, "1010005")
    oc.token = new["accessToken"]
    assert (await oc.call("GET", DEVICES, params=PAGE)).status_code == 200


async def test_logout(oc: OcClient, http: httpx.AsyncClient) -> None:
    r = await http.post("/iocm/app/sec/v1.1.0/logout", json={"accessToken": oc.token})
    assert r.status_code == 204 and r.content == b"", (r.status_code, r.text, r.headers)
    oc_error(await oc.call("GET", DEVICES, params=PAGE), 403, "1010005")
    oc_error(await http.post("/iocm/app/sec/v1.1.0/logout", json={"accessToken": oc.token}), 403, "1010005")
    oc_error(await http.post("/iocm/app/sec/v1.1.0/logout", json={}), 400, "102202", "accessToken")


async def test_header_checks(oc: OcClient, app: Application) -> None:
    r = await oc.call("GET", DEVICES, params=PAGE, headers={"Authorization": f"Bearer {oc.token}"})
    oc_error(r, 401, "100025", "AppId for auth not exist.")
    assert isinstance(r.json()["error_code"], str)
    oc_error(await oc.call("GET", DEVICES, params=PAGE, headers={"app_key": "nope", "Authorization": "Bearer x"}),
             403, "100203")
    r = await oc.call("GET", DEVICES, params=PAGE, headers={"app_key": app.app_key})
    oc_error(r, 403, "1010005")
    assert r.json() == {"resultcode": "1010005", "resultmsg": "Invalid access token or appId."}
    ok = await oc.call("GET", DEVICES, params=PAGE, headers={"x-app-key": app.app_key,
                                                             "authorization": f"bEaReR {oc.token}"})
    assert ok.status_code == 200, ok.text


async def test_app_id_query(oc: OcClient, services: Services, org: Organization) -> None:
    sibling = await services.accounts.create_app(org.org_id, "sibling")
    other_org = await services.accounts.create_org("Other", "o-other")
    stranger = await services.accounts.create_app(other_org.org_id, "stranger")
    assert (await oc.call("GET", DEVICES, params={**PAGE, "appId": sibling.app_key})).status_code == 200
    oc_error(await oc.call("GET", DEVICES, params={**PAGE, "appId": stranger.app_key}), 403, "100217")
    oc_error(await oc.call("GET", DEVICES, params={**PAGE, "appId": "missing"}), 403, "100203")


async def test_throttle(settings: Settings, services: Services, app: Application, tmp_path: Path) -> None:
    small = replace(settings, oceanconnect_throttle_calls=3, oceanconnect_throttle_window_s=60)
    web = create_app(small, services)  # its throttle follows its own settings
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web),
                                 base_url="http://t") as http:
        client = OcClient(http, app.app_key, app.secret)
        await client.login()
        for _ in range(3):
            assert (await client.call("GET", DEVICES, params=PAGE)).status_code == 200
        r = await client.call("GET", DEVICES, params=PAGE)
        oc_error(r, 403, "1010009")
        assert r.json() == {"resultcode": "1010009", "resultmsg": "app throttle exceed."}
    assert await web.state.oceanconnect_throttle.allow("another-app", core=services.core)
    later = 10**10  # the window has passed (whichever clock the mode uses)
    assert await web.state.oceanconnect_throttle.allow(app.app_key, now=later, core=services.core)


async def test_login_with_a_secret_in_its_grace_period(http: httpx.AsyncClient, app: Application, services: Services,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/credentials.md: the old secret logs the application in until the rotation's grace period ends."""
    from thingport.services.oceanconnect import tokens

    login = "/iocm/app/sec/v1.1.0/login"
    rolled = await services.accounts.rotate_app_secret(app.app_key, grace_s=60)
    assert rolled.previous_until is not None
    for secret in (app.secret, rolled.secret):
        assert (await http.post(login, data={"appId": app.app_key, "secret": secret})).status_code == 200
    monkeypatch.setattr(tokens, "now_ms", lambda: rolled.previous_until)
    oc_error(await http.post(login, data={"appId": app.app_key, "secret": app.secret}), 401, "100208")
    assert (await http.post(login, data={"appId": app.app_key, "secret": rolled.secret})).status_code == 200
