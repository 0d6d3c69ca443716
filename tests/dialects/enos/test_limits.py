"""Oversized and malformed requests get a documented answer, never a 500."""

import logging
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.support.enos_client import EnosClient
from thingport.app import create_app
from thingport.domain.models import Application
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


# --------------------------------------------------------------------------------------------- issue 11

DEEP = b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}"


async def test_deep_nesting_is_99400_on_every_connect_path(enos: EnosClient, caplog: pytest.LogCaptureFixture) -> None:
    for path, action in (("/connect-service/v2.1/devices", "create"), ("/connect-service/v2.4/devices", "search"),
                         ("/connect-service/v2.1/products", "create"), ("/connect-service/v2.1/device-topos",
                                                                        "addSubDevice")):
        r = await enos.call("POST", path, {"action": action}, DEEP)
        assert r["code"] == 99400 and "body: arrays and objects nested more than 32 levels deep" in r["msg"], r
    r = await enos.raw("POST", "/connectService/products", {}, DEEP)
    assert r.json()["code"] == 99400 and "body" in r.json()["msg"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]


async def test_the_token_service_refuses_deep_nesting_unauthenticated(http: httpx.AsyncClient) -> None:
    for op in ("get", "refresh"):
        body = (await http.post(f"/apim-token-service/v2.0/token/{op}", content=DEEP)).json()
        assert body["status"] == 1004 and "body: arrays and objects nested" in body["msg"], body


@pytest.mark.parametrize("timestamp", ["inf", "-inf", "nan", "1e400", "9" * 400, "1.7e12", "¹⁷⁰⁰⁰⁰⁰⁰⁰⁰⁰⁰⁰",
                                       "١٧٠٠٠٠٠٠٠٠٠٠٠", " 1700000000000", "1_700_000_000_000"])
async def test_timestamps_that_overflowed_are_refused_before_the_signature(
        enos: EnosClient, http: httpx.AsyncClient, app: Application, timestamp: str) -> None:
    """``int(float(…))`` overflowed on ``inf`` and ``1e400`` with only an access token in hand."""
    headers: dict[str, Any] = {"apim-accesstoken": await enos.token(), "apim-signature": "00",
                               "apim-timestamp": timestamp.encode()}  # UTF-8 bytes, as a client sends them
    r = await enos.raw("GET", "/connect-service/v2.1/devices", {"action": "getStats"}, headers=headers, sign=False)
    assert r.status_code == 401 and "apim-timestamp: must be epoch milliseconds" in r.json()["msg"], r.text
    r = await http.get("/connect-service/v2.1/devices", params={"action": "getStats", "orgId": app.org_id,
                                                                "accessKey": app.app_key, "sign": "00",
                                                                "requestTimestamp": timestamp})
    assert r.status_code == 401 and "requestTimestamp: must be epoch milliseconds" in r.json()["msg"], r.text
    body = (await http.post("/apim-token-service/v2.0/token/get", json={
        "appKey": app.app_key, "encryption": "00", "timestamp": timestamp})).json()
    assert body["status"] == 1004 and "timestamp: must be epoch milliseconds" in body["msg"], body


async def test_a_fractional_timestamp_is_still_taken(enos: EnosClient) -> None:
    headers = {"apim-accesstoken": await enos.token(), "apim-signature": "00",
               "apim-timestamp": f"{int(time.time() * 1000)}.5"}
    r = await enos.raw("GET", "/connect-service/v2.1/devices", {"action": "getStats"}, headers=headers, sign=False)
    assert r.status_code == 401 and "signature does not match" in r.json()["msg"]  # past the timestamp


@pytest.mark.parametrize("page", [2**63, 2**63 - 1, 2**40, 10**30, -(2**63) - 1])
async def test_page_numbers_beyond_the_range_are_99400(enos: EnosClient, page: int) -> None:
    r = await enos.call("POST", "/connect-service/v2.1/devices", {"action": "search"},
                        {"pagination": {"pageNo": page, "pageSize": 10}})
    assert r["code"] == 99400 and "pagination.pageNo" in r["msg"], r


@pytest.mark.parametrize("page", ["9" * 30, "²", "١", "1_0", "2147483648"])
async def test_legacy_product_pages_are_ascii_numbers_in_range(enos: EnosClient, page: str) -> None:
    r = await enos.call("GET", "/connectService/products", {"pageNo": page})
    assert r["code"] == 99400 and "pageNo: must be an integer from 1 to 2147483647" in r["msg"], r


async def test_an_expression_nested_1300_deep_is_99400(enos: EnosClient) -> None:
    expr = "(" * 1300 + "productKey = 'p'" + ")" * 1300
    r = await enos.call("POST", "/connect-service/v2.1/devices", {"action": "search"}, {"expression": expr})
    assert r["code"] == 99400 and "expression: parentheses nested more than 32 levels deep" in r["msg"], r


async def test_values_ending_in_a_newline_and_foreign_digits_are_not_stored(enos: EnosClient,
                                                                            product_key: str) -> None:
    base = {"productKey": product_key, "deviceName": "d", "timezone": "+08:00"}
    for extra, field in (({"deviceKey": "key1\n"}, "deviceKey"), ({"timezone": "+٠٨:٠٠"}, "timezone"),
                         ({"deviceTags": {"site\n": "x"}}, "deviceTags.site"),
                         ({"deviceName": "d\u0000"}, "deviceName"),
                         ({"deviceAttributes": {"a": 10**20}}, "deviceAttributes.a")):
        r = await enos.call("POST", "/connect-service/v2.1/devices", {"action": "create"}, {**base, **extra})
        assert r["code"] == 99400 and field in r["msg"], r
    found = await enos.call("POST", "/connect-service/v2.1/devices", {"action": "search"}, {})
    assert found["data"] == []


async def test_query_values_with_nul_are_99400(enos: EnosClient) -> None:
    r = await enos.call("GET", "/connect-service/v2.1/devices", {"action": "get", "assetId": "ab\u0000"})
    assert r["code"] == 99400 and "assetId: contains a NUL character" in r["msg"], r


async def test_projections_are_bounded(enos: EnosClient) -> None:
    r = await enos.call("POST", "/connect-service/v2.1/devices", {"action": "search"},
                        {"projection": [f"p{i}" for i in range(101)]})
    assert r["code"] == 99400 and "projection" in r["msg"], r
