"""The admin API's device import and export (dialects/admin/routes.py; in a file of their own)."""

from __future__ import annotations

import json

import httpx

from tests.dialects.admin.test_routes import AUTH
from thingport.domain.models import Organization


async def test_import_csv_then_jsonl_then_export(http: httpx.AsyncClient, org: Organization,
                                                 service_product: str) -> None:
    path = f"/admin/v1/orgs/{org.org_id}/products/{service_product}/devices/import"
    body = "deviceKey,name,tags\nadm-0001,A,\"{\"\"site\"\": \"\"x\"\"}\"\nbad key,B,\n"
    r = await http.post(path, content=body, headers={**AUTH, "content-type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 1, "existing": 0, "failed": 1,
                        "errors": [{"line": 3, "field": "deviceKey", "message": r.json()["errors"][0]["message"]}]}
    lines = "\n".join(json.dumps(x) for x in ({"deviceKey": "adm-0001"}, {"deviceKey": "adm-0002", "name": "J"}))
    r = await http.post(path, content=lines, headers={**AUTH, "content-type": "application/x-ndjson"})
    assert (r.status_code, r.json()["created"], r.json()["existing"]) == (200, 1, 1)
    trail = (await http.get("/admin/v1/audit", params={"target": service_product}, headers=AUTH)).json()["records"]
    assert [(a["actor"], a["outcome"]) for a in trail] == [("operator", "ok")] * 2  # one record per import
    assert all(a["action"].endswith("/devices/import") for a in trail)

    r = await http.get(f"/admin/v1/orgs/{org.org_id}/devices/export", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(x) for x in r.text.splitlines()]
    assert [x["deviceKey"] for x in rows] == ["adm-0001", "adm-0002"]
    assert rows[0]["tags"] == {"site": "x"} and all("secret" not in x for x in rows)  # never through the API
    r = await http.get(f"/admin/v1/orgs/{org.org_id}/devices/export",
                       params={"format": "csv", "productKey": service_product}, headers=AUTH)
    assert r.text.splitlines()[0].startswith("assetId,productKey,deviceKey") and len(r.text.splitlines()) == 3


async def test_import_refusals(http: httpx.AsyncClient, org: Organization, service_product: str) -> None:
    path = f"/admin/v1/orgs/{org.org_id}/products/{service_product}/devices/import"
    r = await http.post(path, content="deviceKey\nk-0001\n", headers={"content-type": "text/csv"})
    assert r.status_code == 401  # the operator token, as every admin route
    r = await http.post(path, content="{}", headers={**AUTH, "content-type": "application/json"})
    assert (r.status_code, r.json()["field"]) == (400, "format")
    r = await http.post(path, content="colour\nred\n", headers={**AUTH, "content-type": "text/csv"})
    assert (r.status_code, r.json()["field"]) == (400, "header")
    r = await http.post(f"/admin/v1/orgs/{org.org_id}/products/nosuch/devices/import", content="deviceKey\nk-0001\n",
                        headers={**AUTH, "content-type": "text/csv"})
    assert (r.status_code, r.json()["field"]) == (400, "productKey")
    r = await http.post(path, content=b"deviceKey,name\nk-0001,\xff\xfe\n",
                        headers={**AUTH, "content-type": "text/csv"})
    assert (r.status_code, r.json()["failed"], r.json()["errors"][0]["field"]) == (200, 1, "name")
    r = await http.get(f"/admin/v1/orgs/{org.org_id}/devices/export", params={"productKey": "nosuch"}, headers=AUTH)
    assert r.status_code == 400
