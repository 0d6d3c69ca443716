"""The HTTP front: request ids, access lines, and the audit records of changes (issue 14 §3-4)."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from tests.support.enos_client import EnosClient
from thingport.domain.models import Application
from thingport.observe import logs
from thingport.services.container import Services
from thingport.store.audit import AuditFilter

AUTH = {"Authorization": "Bearer operator-secret-token"}


async def test_enos_request_id_is_the_header_and_the_audit_record(enos: EnosClient, http: httpx.AsyncClient,
                                                                  services: Services, app: Application) -> None:
    pk = await enos.create_product()
    [record] = await services.audit.search(AuditFilter(action="products.create"), 10)
    assert record.outcome == "ok" and record.actor == f"app:{app.app_key}" and record.org_id == app.org_id
    assert record.channel == "enos" and record.request_id
    r = await http.get("/admin/v1/audit", params={"action": "products.create"}, headers=AUTH)
    assert r.json()["records"][0]["requestId"] == record.request_id
    r = await enos.raw("POST", "/connect-service/v2.1/devices", {"action": "create"},
                       {"productKey": pk, "deviceName": {"defaultValue": "d"}, "timezone": "+08:00"})
    body = r.json()
    assert body["code"] == 0 and body["requestId"] == r.headers["x-request-id"]
    [created] = await services.audit.search(AuditFilter(action="devices.create"), 10)
    assert created.target == body["data"]["assetId"] and created.request_id == body["requestId"]
    assert created.outcome == "ok" and created.address


async def test_a_failed_change_is_recorded_and_a_read_is_not(http: httpx.AsyncClient, services: Services) -> None:
    r = await http.post("/admin/v1/orgs", json={"name": "x"}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    [record] = await services.audit.search(AuditFilter(action="POST /admin/v1/orgs"), 10)
    assert record.outcome == "failed" and record.status == 401 and record.actor == ""
    assert (await http.get("/admin/v1/orgs", headers=AUTH)).status_code == 200
    assert await services.audit.search(AuditFilter(action="GET /admin/v1/orgs"), 10) == []


async def test_a_given_request_id_is_kept_and_a_bad_one_replaced(http: httpx.AsyncClient) -> None:
    r = await http.get("/health", headers={"X-Request-Id": "proxy-123"})
    assert r.headers["x-request-id"] == "proxy-123"
    r = await http.get("/health", headers={"X-Request-Id": "a b\tc"})
    assert r.headers["x-request-id"] != "a b\tc" and len(r.headers["x-request-id"]) == 36


async def test_one_json_access_line_per_request(http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="thingport.access")
    r = await http.post("/admin/v1/orgs", json={"name": "Acme", "orgId": "o-log"}, headers=AUTH)
    [line] = [rec for rec in caplog.records if rec.name == "thingport.access"]
    out = json.loads(logs.JsonFormatter().format(line))
    assert out["request_id"] == r.headers["x-request-id"] and out["status"] == 201
    assert out["route"] == "/admin/v1/orgs" and out["channel"] == "admin" and out["caller"] == "operator"
    assert out["duration_ms"] >= 0 and "operator-secret-token" not in json.dumps(out)


async def test_audit_paging_and_filters(http: httpx.AsyncClient, services: Services) -> None:
    for i in range(5):
        assert (await http.post("/admin/v1/orgs", json={"name": "o", "orgId": f"o-{i}"}, headers=AUTH)).is_success
    seen: list[str] = []
    before: int | None = None
    while True:
        params = {"limit": "2", "action": "POST /admin/v1/orgs", **({"before": str(before)} if before else {})}
        page = (await http.get("/admin/v1/audit", params=params, headers=AUTH)).json()
        seen += [r["orgId"] for r in page["records"]]
        before = page.get("nextBefore")
        if before is None:
            break
    assert seen == [f"o-{i}" for i in reversed(range(5))]
    page = (await http.get("/admin/v1/audit", params={"orgId": "o-3"}, headers=AUTH)).json()
    assert [(r["target"], r["actor"], r["outcome"]) for r in page["records"]] == [("o-3", "operator", "ok")]
    r = await http.get("/admin/v1/audit", params={"since": "x"}, headers=AUTH)
    assert r.status_code == 400 and r.json()["field"] == "since"


async def test_an_enos_error_answered_with_http_200_is_a_failed_attempt(enos: EnosClient, services: Services,
                                                                       app: Application) -> None:
    r = await enos.call("POST", "/connect-service/v2.1/devices", {"action": "delete", "assetId": "NoSuch01"})
    assert r["code"] != 0
    [record] = await services.audit.search(AuditFilter(action="devices.delete"), 10)
    assert (record.outcome, record.status, record.target, record.actor) == ("failed", 200, "NoSuch01",
                                                                          f"app:{app.app_key}")
    assert record.error and record.request_id == r["requestId"]
