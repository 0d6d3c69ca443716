"""Operator API for the Living Platform (``/admin/v1/living``) and the ``thingport living`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.dialects.admin.test_routes import AUTH, admin
from tests.support.living_client import LivingClient
from thingport.cli import cli
from thingport.domain.models import Application, Organization


async def test_users_codes_sessions_and_product_metadata(http: httpx.AsyncClient, org: Organization,
                                                         app: Application, service_product: str) -> None:
    base = "/living"
    user = await admin(http, "POST", f"{base}/orgs/{org.org_id}/users", {"login": "amy"}, 201)
    await admin(http, "POST", f"{base}/orgs/{org.org_id}/users", {"login": "amy"}, 400)
    await admin(http, "POST", f"{base}/orgs/o-none/users", {"login": "amy"}, 404)
    assert [u["login"] for u in await admin(http, "GET", f"{base}/orgs/{org.org_id}/users")] == ["amy"]
    code = await admin(http, "POST", f"{base}/users/{user['identityId']}/auth-codes", None, 201)
    assert code["identityId"] == user["identityId"] and code["authCode"]
    await admin(http, "POST", f"{base}/users/nobody/auth-codes", None, 404)
    client = LivingClient(http, app.app_key, app.secret)
    await client.sign_in(code["authCode"])
    ended = await admin(http, "POST", f"{base}/users/{user['identityId']}/sessions/invalidate")
    assert ended == {"identityId": user["identityId"], "ended": 1}
    assert (await client.call("/living/home/query", {"pageNo": 1, "pageSize": 5}))["code"] == 401
    path = f"{base}/orgs/{org.org_id}/products/{service_product}"
    assert (await admin(http, "GET", path))["status"] == "development"
    meta = await admin(http, "PUT", path, {"status": "published", "netType": 7, "categoryKey": "Outlet",
                                           "requirePermitJoin": True})
    assert (meta["status"], meta["netType"], meta["categoryKey"], meta["requirePermitJoin"]) == \
        ("published", 7, "Outlet", True)
    bad = await admin(http, "PUT", path, {"netType": 9}, 400)
    assert bad["field"] == "netType"
    r = await http.get(f"/admin/v1{path}")
    assert r.status_code == 401
    r = await http.put(f"/admin/v1{path}", json={"status": "published"}, headers={**AUTH, "Authorization": "Bearer x"})
    assert r.status_code == 401


def test_cli_users_codes_and_products(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    for name in list(os.environ):
        if name.startswith("THINGPORT_"):
            monkeypatch.delenv(name)
    d = str(tmp_path / "data")

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, [*args, "--data-dir", d])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout

    run("org", "create", "Acme", "--org-id", "o-cli")
    user = json.loads(run("living", "user", "create", "--org", "o-cli", "--login", "zoe", "--json"))[0]
    assert user["login"] == "zoe" and user["identity_id"]
    code = json.loads(run("living", "user", "auth-code", user["identity_id"], "--json"))[0]
    assert code["auth_code"] and code["identity_id"] == user["identity_id"]
    assert "auth code:" in run("living", "user", "auth-code", user["identity_id"])
    assert json.loads(run("living", "user", "logout", user["identity_id"], "--json"))[0]["ended"] == 0
    result = CliRunner().invoke(cli, ["living", "product", "set", "--org", "o-cli", "--product-key", "nope",
                                      "--status", "published", "--data-dir", d])
    assert result.exit_code == 2 and "productKey" in result.output
