"""The OpenAPI document's EnOS answers are the answers: real responses validate against the
documented schema of their status, and the examples have the keys real answers have."""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from typing import Any

import httpx
import jsonschema_rs
import pytest

from tests.support.enos_client import EnosClient
from thingport.app import create_app
from thingport.services.container import Services
from thingport.settings import Settings

CONNECT = ("/connect-service/{version}/products", "/connect-service/{version}/devices",
           "/connect-service/{version}/device-topos", "/connectService/products")
TOKEN = ("/apim-token-service/v2.0/token/get", "/apim-token-service/v2.0/token/refresh")


@pytest.fixture
async def doc(http: httpx.AsyncClient) -> dict[str, Any]:
    result: dict[str, Any] = (await http.get("/docs/openapi.json")).json()
    return result


def responses(doc: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    item = doc["paths"][path]
    result: dict[str, Any] = item[method if method in item else "post"]["responses"]
    return result


def conforms(doc: dict[str, Any], path: str, r: httpx.Response, method: str = "get") -> dict[str, Any]:
    """``r``'s body, after checking it against the schema documented for its status."""
    documented = responses(doc, path, method)
    assert str(r.status_code) in documented, (path, r.status_code, sorted(documented))
    media = documented[str(r.status_code)]["content"]["application/json"]
    body: dict[str, Any] = r.json()
    jsonschema_rs.validate(media["schema"], body)
    return body


def test_every_enos_operation_documents_its_real_statuses_and_examples(doc: dict[str, Any]) -> None:
    for path in CONNECT + TOKEN:
        for method, op in doc["paths"][path].items():
            statuses = set(op["responses"])
            assert statuses == ({"200"} if path in TOKEN else {"200", "401", "413", "500"}), (path, method)
            for status, answer in op["responses"].items():
                media = answer["content"]["application/json"]
                assert media["examples"], (path, method, status)
                for example in media["examples"].values():
                    jsonschema_rs.validate(media["schema"], example["value"])


async def test_real_answers_conform_to_the_documented_envelope(doc: dict[str, Any], enos: EnosClient,
                                                              http: httpx.AsyncClient) -> None:
    examples = responses(doc, CONNECT[1])["200"]["content"]["application/json"]["examples"]
    pk = await enos.create_product()
    created = conforms(doc, CONNECT[1], await enos.raw("POST", "/connect-service/v2.1/devices", {"action": "create"},
                                                       {"productKey": pk, "deviceName": {"defaultValue": "d"},
                                                        "timezone": "+08:00"}), "post")
    assert set(created["data"]) == set(examples["createDevice"]["value"]["data"])
    got = conforms(doc, CONNECT[1], await enos.raw("GET", "/connect-service/v2.1/devices",
                                                   {"action": "get", "assetId": created["data"]["assetId"]}))
    example = examples["getDevice"]["value"]
    assert set(got) == set(example) and set(got["data"]) == set(example["data"])
    found = conforms(doc, CONNECT[0], await enos.raw("POST", "/connect-service/v2.1/products", {"action": "search"},
                                                     {"pagination": {"pageNo": 1, "pageSize": 10}}), "post")
    assert set(found) == set(examples["searchProduct"]["value"])
    assert set(found["data"][0]) == set(examples["searchProduct"]["value"]["data"][0])
    refused = conforms(doc, CONNECT[1], await enos.raw("GET", "/connect-service/v2.1/devices",
                                                       {"action": "get", "assetId": "nobody12"}))
    assert refused["code"] != 0 and set(refused) == set(examples["no such device"]["value"])
    batch = conforms(doc, CONNECT[1], await enos.raw("POST", "/connect-service/v2.1/devices",
                                                     {"action": "batchCreate"}, {"productKey": pk, "deviceList": [
                                                         {"deviceName": {"defaultValue": "b"}, "timezone": "+08:00"}]}),
                     "post")
    assert batch["totalSize"] == 1 and "successSize" in batch
    legacy = EnosClient(http, enos.app_key, enos.app_secret, enos.org_id, scheme="accessKey")
    listed = conforms(doc, CONNECT[3], await legacy.raw("GET", "/connectService/products", {}))
    assert listed["status"] == 0 and listed["submsg"] is None
    unsigned = await enos.raw("GET", "/connect-service/v2.1/devices", {"action": "get", "assetId": "x"},
                              headers={"apim-accesstoken": "forged"}, sign=False)
    assert unsigned.status_code == 401 and conforms(doc, CONNECT[1], unsigned)["code"] != 0


async def test_the_token_service_and_a_large_body_conform(doc: dict[str, Any], enos: EnosClient,
                                                        http: httpx.AsyncClient, settings: Settings,
                                                        services: Services) -> None:
    ts = int(time.time() * 1000)
    encryption = hashlib.sha256(f"{enos.app_key}{ts}{enos.app_secret}".encode()).hexdigest()
    issued = await http.post(TOKEN[0], json={"appKey": enos.app_key, "encryption": encryption, "timestamp": ts})
    assert conforms(doc, TOKEN[0], issued, "post")["data"]["accessToken"]
    refused = await http.post(TOKEN[0], json={"appKey": enos.app_key, "encryption": "0" * 64, "timestamp": ts})
    assert conforms(doc, TOKEN[0], refused, "post")["status"] == 1003
    small = replace(settings, max_body_bytes=100)
    services.core.settings = small
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(small, services)),
                                 base_url="http://t") as tiny:
        r = await tiny.post("/connect-service/v2.1/devices?action=create&orgId=o", content=b"x" * 500)
    assert r.status_code == 413 and conforms(doc, CONNECT[1], r, "post")["code"] == 99400
