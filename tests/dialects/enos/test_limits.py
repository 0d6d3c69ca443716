"""Oversized and malformed requests get a documented answer, never a 500."""

from dataclasses import replace

import httpx
import pytest

from thingport.app import create_app
from thingport.services.container import Services
from thingport.settings import Settings


@pytest.fixture
async def small_http(settings: Settings, services: Services) -> httpx.AsyncClient:
    small = replace(settings, max_body_bytes=1000)
    services.core.settings = small
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(small, services)), base_url="http://t")


async def test_oversized_body_is_99400_with_413(small_http: httpx.AsyncClient) -> None:
    r = await small_http.post("/connect-service/v2.1/devices?action=create&orgId=o", content=b"x" * 5000)
    assert r.status_code == 413
    assert r.json()["code"] == 99400 and "body: at most 1000 bytes" in r.json()["msg"]


async def test_oversized_token_request(small_http: httpx.AsyncClient) -> None:
    r = await small_http.post("/apim-token-service/v2.0/token/get", content=b"x" * 5000)
    assert r.json()["status"] == 1004 and "body" in r.json()["msg"]


async def test_unknown_version_names_the_version(http: httpx.AsyncClient) -> None:
    r = await http.get("/connect-service/v9/devices?action=get")
    assert r.status_code == 200 and r.json()["code"] == 99400 and "version: 'v9'" in r.json()["msg"]
