"""The served OpenAPI document describes every request body the dialects read themselves."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from thingport.dialects import openapi
from thingport.dialects.enos.routes import ACTIONS
from thingport.dialects.living.routes import APIS
from thingport.settings import Settings

VENDOR = ("/connect-service/", "/connectService/", "/apim-token-service/", "/iocm/", "/mqtt/emqx/",
          *(a.path for a in APIS))


@pytest.fixture
async def doc(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.get("/docs/openapi.json")
    assert r.status_code == 200
    result: dict[str, Any] = r.json()
    return result


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


async def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    found = refs(doc)
    assert len(found) > 50
    for ref in found:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref


async def test_every_vendor_post_and_put_documents_its_body(doc: dict[str, Any]) -> None:
    checked = 0
    for path, item in doc["paths"].items():
        if not path.startswith(VENDOR):
            continue
        for method in ("post", "put"):
            if method in item:
                body = item[method].get("requestBody")
                assert body and body["content"], (method, path)
                checked += 1
    assert checked >= 30


async def test_enos_actions_each_name_their_body(doc: dict[str, Any]) -> None:
    for resource, base in (("products", "enosProducts"), ("devices", "enosDevices"),
                           ("device-topos", "enosTopology")):
        for method in ("get", "post"):
            op = doc["paths"][f"/connect-service/{{version}}/{resource}"][method]
            assert op["operationId"] == f"{base}{method.capitalize()}"
            declared = {name: act.body for (res, name), act in ACTIONS.items()
                        if res == resource and act.method == method.upper()}
            documented = op["x-thingport-actions"]
            assert set(documented) == set(declared)
            for name, kind in declared.items():
                assert (documented[name] or {}).get("$ref", "").rsplit("/", 1)[-1] == \
                    (kind.__name__ if kind else ""), name
            [action] = [p for p in op["parameters"] if p["name"] == "action"]
            assert action["required"] and set(action["schema"].get("enum", [])) == set(declared)
    schema = doc["components"]["schemas"]["SearchBody"]["properties"]["projection"]
    assert {"type": "array", "items": {"type": "string"}, "maxItems": 100} in schema["anyOf"]


async def test_living_bodies_are_the_envelope_around_each_apis_params(doc: dict[str, Any]) -> None:
    for api in APIS:
        body = doc["paths"][api.path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["properties"]["params"]["$ref"].endswith("/" + api.params.__name__)
        assert body["properties"]["request"]["$ref"].endswith("/CommonParams")
        assert doc["paths"][api.path]["post"]["security"] == [{"livingGateway": []}]


async def test_security_schemes_of_each_dialect(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert {"operatorToken", "enosApimToken", "enosAccessKey", "ocAppKey", "ocToken", "livingGateway",
            "emqxHookToken"} <= set(schemes)
    assert doc["paths"]["/iocm/app/dm/v1.4.0/devices"]["get"]["security"] == [{"ocAppKey": [], "ocToken": []}]
    assert "security" not in doc["paths"]["/iocm/app/sec/v1.1.0/logout"]["post"]


async def test_the_docs_pages_load_nothing_from_another_host(http: httpx.AsyncClient) -> None:
    """/docs works offline: every script, style and icon the pages name is served by Thingport."""
    for page in ("/docs", "/docs/swagger"):
        html = (await http.get(page)).text
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html)
        assert len(urls) >= 4, urls  # the bundle, the preset, the style, the icon
        assert not re.search(r"https?://|//[a-z]", html.split("<body", 1)[0]), page
        for url in urls:
            assert url.startswith(openapi.UI_ASSETS + "/"), url
            r = await http.get(url)
            assert r.status_code == 200 and r.content, url
    licence = Path(openapi.__file__).with_name("swagger_ui") / "LICENSE"
    assert "Apache License" in licence.read_text()
    assert (await http.get(f"{openapi.UI_ASSETS}/../openapi.py")).status_code == 404


#: Debian's Chromium, driven by Playwright (the real binary: /usr/bin/chromium is a wrapper script).
CHROMIUM = Path("/usr/lib/chromium/chromium")


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_docs_page_renders_in_chromium_with_every_other_host_cut_off(tmp_path: Path) -> None:
    """What a browser on an offline host shows: Swagger UI with every operation, nothing fetched
    from another host (any such request is recorded and refused)."""
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    from playwright.sync_api import Route, sync_playwright

    from tests.support.live_server import live_server

    elsewhere: list[str] = []
    with live_server(Settings(data_dir=tmp_path / "data", mqtt_port=0)) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page()

            def only_thingport(route: Route) -> None:
                if route.request.url.startswith(server.url + "/"):
                    route.continue_()
                else:
                    elsewhere.append(route.request.url)
                    route.abort()

            page.route("**/*", only_thingport)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=30_000)
            paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        finally:
            browser.close()
    assert {"/connect-service/{version}/devices", "/iocm/app/sec/v1.1.0/login", "/admin/v1/orgs"} <= {
        p.replace("\u200b", "") for p in paths}, sorted(paths)[:10]
    assert elsewhere == [] and errors == []

