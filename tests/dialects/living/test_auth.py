"""The API-gateway signature: bad, missing, replayed and stale requests never reach an API."""

from __future__ import annotations

import json
from email.utils import formatdate

import httpx
import pytest

from tests.dialects.living.conftest import World
from tests.support.living_client import LivingClient

PATH = "/living/home/query"


def refused(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    message = r.headers["x-ca-error-message"]
    body = r.json()
    assert body["code"] == status and body["data"] is None and body["message"] == message
    for w in words:
        assert w in message, message


@pytest.fixture
async def client(world: World) -> LivingClient:
    return await world.user("ann")


async def test_signed_call_passes(client: LivingClient) -> None:
    body = client.body({"pageNo": 1, "pageSize": 10})
    r = await client.raw(PATH, body, client.signed(PATH, body))
    assert r.status_code == 200 and r.json()["code"] == 200 and r.json()["id"] == json.loads(body)["id"]


async def test_wrong_signature_shows_the_server_string_to_sign(client: LivingClient) -> None:
    body = client.body({"pageNo": 1, "pageSize": 10})
    r = await client.raw(PATH, body, client.signed(PATH, body, secret="wrong"))
    refused(r, 400, "Invalid Signature", "Server StringToSign:`POST#application/json#", PATH)
    assert "x-ca-key:" + client.app_key in r.headers["x-ca-error-message"]


async def test_tampered_body_and_path(client: LivingClient) -> None:
    body = client.body({"pageNo": 1, "pageSize": 10})
    headers = client.signed(PATH, body)
    refused(await client.raw(PATH, body.replace(b'"pageSize": 10', b'"pageSize": 11'), headers), 400,
            "Content-MD5")
    refused(await client.raw("/living/home/get", body, headers), 400, "Invalid Signature")


async def test_replayed_nonce_is_refused(client: LivingClient) -> None:
    body = client.body({"pageNo": 1, "pageSize": 10})
    headers = client.signed(PATH, body, nonce="fixed-nonce")
    assert (await client.raw(PATH, body, headers)).status_code == 200
    refused(await client.raw(PATH, body, headers), 400, "Nonce Used")
    other = client.body({"pageNo": 1, "pageSize": 5})  # a new body with the same nonce too
    refused(await client.raw(PATH, other, client.signed(PATH, other, nonce="fixed-nonce")), 400, "Nonce Used")


async def test_stale_or_future_time_is_refused(client: LivingClient) -> None:
    import time

    body = client.body({"pageNo": 1, "pageSize": 10})
    old = formatdate(time.time() - 16 * 60, usegmt=True)
    refused(await client.raw(PATH, body, client.signed(PATH, body, date=old)), 400, "Invalid Timestamp")
    future = str(int(time.time() * 1000) + 16 * 60_000)
    r = await client.raw(PATH, body, client.signed(PATH, body, extra={"x-ca-timestamp": future}))
    refused(r, 400, "Invalid Timestamp")
    ok = str(int(time.time() * 1000))
    assert (await client.raw(PATH, body, client.signed(PATH, body, extra={"x-ca-timestamp": ok}))).status_code == 200
    refused(await client.raw(PATH, body, client.signed(PATH, body, date="yesterday")), 400, "Invalid Date")


async def test_missing_parts(client: LivingClient, world: World) -> None:
    body = client.body({"pageNo": 1, "pageSize": 10})
    headers = client.signed(PATH, body)
    refused(await client.raw(PATH, body, {k: v for k, v in headers.items() if k != "x-ca-signature"}), 401,
            "Empty Signature")
    refused(await client.raw(PATH, body, {**headers, "x-ca-key": "nobody"}), 400, "Invalid AppKey")
    unsigned_nonce = {**headers, "x-ca-signature-headers": "x-ca-key,x-ca-signaturemethod"}
    refused(await client.raw(PATH, body, unsigned_nonce), 400, "X-Ca-Nonce")
    refused(await client.raw(PATH, body, {**headers, "x-ca-signaturemethod": "HmacMD5"}), 400, "SignatureMethod")
    await world.services.accounts.set_app_disabled(world.app.app_key, True)
    refused(await client.raw(PATH, body, client.signed(PATH, body)), 400, "Invalid AppKey")


async def test_oversized_body(client: LivingClient, world: World) -> None:
    body = b"{" + b" " * world.services.core.settings.max_body_bytes + b"}"
    refused(await client.raw(PATH, body, client.signed(PATH, body)), 413, "Too Large")


@pytest.mark.parametrize(("body", "field"), [
    (b"not json", "body"), (b'{"request": {"apiVer": "2.0.0"}, "params": {}}', "apiVer"),
    (b'{"request": {}, "params": {}}', "apiVer"), (b'{"request": {"apiVer": "1.0.2"}, "params": []}', "params"),
    (b'{"request": {"apiVer": "1.0.2", "iotToken": "TOKEN"}, "params": {"pageNo": "one", "pageSize": 1}}',
     "params.pageNo"),
])
async def test_malformed_envelopes_are_460(client: LivingClient, body: bytes, field: str) -> None:
    body = body.replace(b"TOKEN", (client.iot_token or "").encode())
    r = await client.raw(PATH, body, client.signed(PATH, body))
    assert r.status_code == 200
    out = r.json()
    assert out["code"] == 460 and field in out["message"] and out["localizedMsg"] == "request parameter error"


async def test_missing_iot_token_is_401(client: LivingClient) -> None:
    r = await client.call(PATH, {"pageNo": 1, "pageSize": 10}, token=False)
    assert r["code"] == 401 and "iotToken" in r["message"]
    r = await client.call(PATH, {"pageNo": 1, "pageSize": 10}, token="f" * 32)
    assert r["code"] == 401
