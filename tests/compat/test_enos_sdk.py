"""The real ``enos-api-sdk-python`` 0.0.4 client (``EnOSDefaultClient``) against a running Thingport.

It signs with the accessKey/requestTimestamp/sign query scheme and reads ``status``, ``requestId``,
``submsg`` and ``data`` from every answer.
"""

from __future__ import annotations

from typing import Any

import pytest
from enosapi.client.EnOSDefaultClient import EnOSDefaultClient
from enosapi.request.CreateProductRequest import CreateProductRequest
from enosapi.request.ListProductsRequest import ListProductsRequest
from enosapi.response.EnOSResponse import EnOSResponse

from tests.compat.conftest import MODEL_ID, Account
from tests.compat.enos_requests import (
    CreateDeviceRequest,
    CreateProductV21Request,
    GetDeviceRequest,
    ReplaceDeviceRequest,
    SearchDevicesRequest,
)
from tests.support.live_server import LiveServer
from thingport.crypto import caller_secret

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


@pytest.fixture
def client(live: LiveServer, account: Account) -> EnOSDefaultClient:
    return EnOSDefaultClient(live.url, account.app_key, account.secret)


@pytest.fixture
def product_key(client: EnOSDefaultClient, account: Account) -> str:
    return str(ok(client.execute(CreateProductV21Request(account.org_id, MODEL_ID))))


def ok(r: EnOSResponse) -> Any:
    """The ``data`` of a successful answer; fails with the whole answer otherwise."""
    assert r.is_success(), vars(r)
    assert r.submsg is None and r.request_id
    return r.data


def test_create_product(client: EnOSDefaultClient, account: Account) -> None:
    key = ok(client.execute(CreateProductV21Request(account.org_id, MODEL_ID, name="Inverter")))
    assert isinstance(key, str) and key


def test_create_product_with_unknown_model_fails_with_its_code(client: EnOSDefaultClient, account: Account) -> None:
    r = client.execute(CreateProductV21Request(account.org_id, "no-such-model"))
    assert r.status == 11699 and not r.is_success()
    assert r.data is None and "modelId" in r.submsg


@pytest.mark.parametrize("version", ["v2.1", "v2.4"])
def test_create_then_get_device(client: EnOSDefaultClient, account: Account, product_key: str,
                                version: str) -> None:
    created = ok(client.execute(CreateDeviceRequest(account.org_id, product_key, "meter-0001", version=version)))
    assert created["productKey"] == product_key and created["deviceKey"] == "meter-0001"
    if version == "v2.1":
        assert created["deviceSecret"]  # plaintext in v2.1
    else:
        assert "deviceSecret" not in created  # v2.4 returns secrets only with requireSecret

    by_asset = ok(client.execute(GetDeviceRequest(account.org_id, asset_id=created["assetId"], version=version)))
    by_key = ok(client.execute(GetDeviceRequest(account.org_id, product_key=product_key, device_key="meter-0001")))
    assert by_asset["assetId"] == by_key["assetId"] == created["assetId"]
    assert by_key["deviceName"]["defaultValue"] == "meter" and by_key["status"] == "inactive"


def test_v24_secret_is_encrypted_for_the_application(client: EnOSDefaultClient, account: Account,
                                                     product_key: str) -> None:
    created = ok(client.execute(CreateDeviceRequest(account.org_id, product_key, "meter-0002", version="v2.4",
                                                    requireSecret=True)))
    plain = caller_secret.decrypt(account.private_key_pem, created["deviceSecret"], created["sessionKey"])
    got = ok(client.execute(GetDeviceRequest(account.org_id, asset_id=created["assetId"])))  # v2.1: plaintext
    assert plain == got["deviceSecret"]


def test_search_devices(client: EnOSDefaultClient, account: Account, product_key: str) -> None:
    for key in ("meter-a1", "meter-a2", "meter-a3"):
        ok(client.execute(CreateDeviceRequest(account.org_id, product_key, key)))
    other = ok(client.execute(CreateProductV21Request(account.org_id, MODEL_ID)))
    ok(client.execute(CreateDeviceRequest(account.org_id, other, "other-1")))

    found = ok(client.execute(SearchDevicesRequest(account.org_id, f"productKey = '{product_key}'")))
    assert sorted(d["deviceKey"] for d in found) == ["meter-a1", "meter-a2", "meter-a3"]
    page = ok(client.execute(SearchDevicesRequest(account.org_id, page_size=2, version="v2.4")))
    assert len(page) == 2
    one = ok(client.execute(SearchDevicesRequest(account.org_id, "deviceKey in ('meter-a2', 'other-1')")))
    assert sorted(d["deviceKey"] for d in one) == ["meter-a2", "other-1"]


@pytest.mark.parametrize("version", ["v2.1", "v2.4"])
def test_replace_device_key(client: EnOSDefaultClient, account: Account, product_key: str, version: str) -> None:
    created = ok(client.execute(CreateDeviceRequest(account.org_id, product_key, "old-key-1")))
    replaced = ok(client.execute(ReplaceDeviceRequest(account.org_id, "new-key-1", asset_id=created["assetId"],
                                                      version=version, )))
    assert replaced["assetId"] == created["assetId"] and replaced["deviceKey"] == "new-key-1"

    gone = client.execute(GetDeviceRequest(account.org_id, product_key=product_key, device_key="old-key-1"))
    assert gone.status == 11404 and gone.data is None
    now = ok(client.execute(GetDeviceRequest(account.org_id, product_key=product_key, device_key="new-key-1")))
    assert now["assetId"] == created["assetId"] and now["status"] == "inactive"
    assert now["deviceSecret"] and now["deviceSecret"] != created["deviceSecret"]
    if version == "v2.1":
        assert replaced["deviceSecret"] == now["deviceSecret"]


def test_replace_by_product_and_device_key(client: EnOSDefaultClient, account: Account, product_key: str) -> None:
    ok(client.execute(CreateDeviceRequest(account.org_id, product_key, "old-key-2")))
    replaced = ok(client.execute(ReplaceDeviceRequest(account.org_id, "new-key-2", product_key=product_key,
                                                      device_key="old-key-2")))
    assert replaced["deviceKey"] == "new-key-2"
    same = client.execute(ReplaceDeviceRequest(account.org_id, "new-key-2", product_key=product_key,
                                               device_key="new-key-2"))
    assert same.status == 11704 and not same.is_success()


def test_wrong_secret_is_a_failed_answer_not_an_exception(live: LiveServer, account: Account,
                                                          product_key: str) -> None:
    wrong = EnOSDefaultClient(live.url, account.app_key, account.secret + "x")
    r = wrong.execute(CreateDeviceRequest(account.org_id, product_key, "never-made"))
    assert r.status != 0 and not r.is_success() and r.data is None
    assert "signature" in r.submsg


def test_unknown_access_key_is_a_failed_answer(live: LiveServer, account: Account) -> None:
    r = EnOSDefaultClient(live.url, "no-such-app", account.secret).execute(
        GetDeviceRequest(account.org_id, asset_id="whatever"))
    assert r.status != 0 and r.data is None


def test_other_org_is_denied(client: EnOSDefaultClient, live: LiveServer) -> None:
    live.admin("POST", "/orgs", {"name": "Other", "orgId": "o-other"})
    r = client.execute(SearchDevicesRequest("o-other"))
    assert r.status == 99403 and r.data is None


# the SDK's own request classes (EnOS 1.x paths, served as aliases) -------------------------------

def test_sdk_create_product_request(client: EnOSDefaultClient, account: Account) -> None:
    payload = {"productName": {"defaultValue": "Legacy"}, "productType": "Gateway", "dataFormat": "Json",
               "modelId": MODEL_ID, "biDirectionalAuth": False, "productDesc": "made by CreateProductRequest"}
    key = ok(client.execute(CreateProductRequest(account.org_id, payload)))
    listed = ok(client.execute(ListProductsRequest(account.org_id)))
    assert [(p["productKey"], p["productType"], p["productDesc"]) for p in listed] == [
        (key, "Gateway", "made by CreateProductRequest")]


def test_sdk_list_products_request_pages(client: EnOSDefaultClient, account: Account) -> None:
    keys = {ok(client.execute(CreateProductV21Request(account.org_id, MODEL_ID, name=f"P{i}"))) for i in range(3)}
    first = ok(client.execute(ListProductsRequest(account.org_id, {"pageNo": 1, "pageSize": 2})))
    second = ok(client.execute(ListProductsRequest(account.org_id, {"pageNo": 2, "pageSize": 2})))
    assert len(first) == 2 and len(second) == 1
    assert {p["productKey"] for p in first + second} == keys
    bad = client.execute(ListProductsRequest(account.org_id, {"pageSize": "many"}))
    assert bad.status == 99400 and "pageSize" in bad.submsg


def test_sdk_create_product_request_validates_the_body(client: EnOSDefaultClient, account: Account) -> None:
    r = client.execute(CreateProductRequest(account.org_id, {"productName": {"defaultValue": "x"}}))
    assert r.status == 99400 and not r.is_success()
