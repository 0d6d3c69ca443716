"""The composed HTTP application: OpenAPI document and the health check."""

from __future__ import annotations

import httpx

from thingport import __version__

ENOS_PATHS = {
    "/connect-service/{version}/products",
    "/connect-service/{version}/devices",
    "/connect-service/{version}/device-topos",
    "/connectService/products",
}
TOKEN_PATHS = {"/apim-token-service/v2.0/token/get", "/apim-token-service/v2.0/token/refresh"}
ADMIN_PATHS = {
    "/admin/v1/orgs",
    "/admin/v1/orgs/{org_id}/apps",
    "/admin/v1/apps",
    "/admin/v1/apps/{app_key}/disable",
    "/admin/v1/apps/{app_key}/enable",
    "/admin/v1/apps/{app_key}/public-key",
    "/admin/v1/apps/{app_key}/permissions",
    "/admin/v1/orgs/{org_id}/models",
    "/admin/v1/master-key/rotate",
}


async def test_openapi_lists_every_route(http: httpx.AsyncClient) -> None:
    r = await http.get("/docs/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["info"]["title"] == "Thingport" and doc["info"]["version"] == __version__
    paths = set(doc["paths"])
    assert paths >= ENOS_PATHS
    assert paths >= TOKEN_PATHS
    assert paths >= ADMIN_PATHS
    assert "/health" not in paths
    for path in ENOS_PATHS - {"/connectService/products"}:
        assert {"get", "post"} <= set(doc["paths"][path]), path
    operation_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()
                     if isinstance(op, dict) and "operationId" in op]
    assert len(operation_ids) == len(set(operation_ids))
    assert doc["components"]["securitySchemes"]["operatorToken"]["scheme"] == "bearer"
    assert doc["paths"]["/admin/v1/apps"]["get"]["security"] == [{"operatorToken": []}]
    devices = doc["paths"]["/connect-service/{version}/devices"]["post"]
    assert "replaceDevice" in devices["description"] and "batchCreate" in devices["description"]


async def test_openapi_rendered_pages(http: httpx.AsyncClient) -> None:
    for path in ("/docs", "/docs/swagger"):
        r = await http.get(path)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"], path


async def test_health(http: httpx.AsyncClient) -> None:
    r = await http.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "version": __version__}
