"""Malformed Living requests get the gateway's or the API's documented error, never a 500 (issue 11)."""

from __future__ import annotations

import json
from email.utils import formatdate

import httpx
import pytest

from tests.dialects.living.conftest import World
from tests.support.living_client import LivingClient

PATH = "/living/home/query"


@pytest.fixture
async def client(world: World) -> LivingClient:
    return await world.user("ann")


@pytest.mark.parametrize("stamp", ["¹⁷⁰⁰⁰⁰⁰⁰⁰⁰⁰⁰⁰", "²", "9" * 30, "1e400", "1_700_000_000_000"])
async def test_the_timestamp_header_is_ascii_digits(client: LivingClient, stamp: str) -> None:
    """``isdigit`` took superscripts that ``int`` refused: a 500 for any holder of an app key."""
    body = client.body({"pageNo": 1, "pageSize": 10})
    headers = client.signed(PATH, body, extra={"x-ca-timestamp": stamp.encode().decode("latin-1")})
    headers["x-ca-timestamp"] = stamp.encode()  # type: ignore[assignment]  # UTF-8 bytes on the wire
    r = await client.raw(PATH, body, headers)
    assert r.status_code == 400, r.text
    assert r.headers["x-ca-error-message"].startswith("Invalid Timestamp: "), r.headers


@pytest.mark.parametrize("date", ["Mon, 01 Jan 99999999999999999999 00:00:00 GMT",
                                  "Mon, 01 Jan 2020 00:00:00 +99999999999999999999"])
async def test_a_date_that_overflows_is_invalid(client: LivingClient, date: str) -> None:
    body = client.body({"pageNo": 1, "pageSize": 10})
    r = await client.raw(PATH, body, client.signed(PATH, body, date=date))
    assert r.status_code == 400 and r.headers["x-ca-error-message"] == "Invalid Date: not an RFC 1123 date"


async def test_api_versions_are_matched_whole(client: LivingClient) -> None:
    for ver in ("1.0.2\n", "1.٠.2", "1.0.2x"):
        out = await client.call(PATH, {"pageNo": 1, "pageSize": 10}, api_ver=ver)
        assert out["code"] == 460 and out["message"].startswith("request.apiVer:"), out


async def test_deep_numbers_and_pages(client: LivingClient) -> None:
    deep = json.loads(client.body({}))
    raw = json.dumps(deep).replace('"params": {}', '"params": {"pageNo": ' + "[" * 1000 + "]" * 1000 + "}").encode()
    r = await client.raw(PATH, raw, client.signed(PATH, raw))
    assert r.json()["code"] == 460 and r.json()["message"].startswith("body: arrays and objects nested"), r.text
    for page, says in ((2**63, "params.pageNo: integers are limited to 64 bits"),
                       (2**40, "params.pageNo: is required and must be from 1 to 2147483647")):
        out = await client.call(PATH, {"pageNo": page, "pageSize": 10})
        assert out["code"] == 460 and out["message"] == says, out
    raw = client.body({"pageNo": 1, "pageSize": 10}).replace(b'"pageNo": 1', b'"pageNo": 1e400')
    r = await client.raw(PATH, raw, client.signed(PATH, raw))
    assert r.json()["message"] == "params.pageNo: numbers are limited to the range of a 64-bit float", r.text


async def test_a_deep_body_is_refused_only_after_the_signature(http: httpx.AsyncClient) -> None:
    body = b"[" * 1000 + b"]" * 1000
    r = await http.post(PATH, content=body, headers={"date": formatdate(usegmt=True)})
    assert r.status_code == 401 and "Empty Signature" in r.headers["x-ca-error-message"]
