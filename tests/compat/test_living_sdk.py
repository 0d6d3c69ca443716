"""The real ``alibabacloud-iot-api-gateway`` client, unchanged, against a running Thingport over HTTP.

The consumer story of the Living Platform: an app user signs in with an auth code, creates a
home, sees an enrollee a registrar discovered, gets its key, binds a device by its token, binds
another by time window, is refused after the window, permits a gateway and removes a sub-device.
The device side (token report, enrollee report, connects) is driven through the services the
MQTT front door calls, on the same database; what must reach a device is read from the event
outbox the front door consumes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from alibabacloud_iot_api_gateway.client import Client
from alibabacloud_iot_api_gateway.models import CommonParams, Config, IoTApiRequest
from alibabacloud_tea_util.models import RuntimeOptions

from tests.compat.conftest import MODEL_ID, Account
from tests.support.live_server import LiveServer
from thingport.app import open_services
from thingport.crypto import awss
from thingport.domain.models import I18nText, ProductType
from thingport.services import events
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.living_accounts import MetaPatch
from thingport.services.products import ProductSpec
from thingport.settings import Settings
from thingport.store import events as event_store

T = TypeVar("T")
RANDOM = "00112233445566778899aabbccddeeff"
TOKEN = "0123456789ABCDEF0123456789ABCDEF"


def side(settings: Settings, op: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``op`` on the live server's database from the test thread (as an operator command would)."""
    async def go() -> T:
        services = await open_services(settings)
        try:
            return await op(services)
        finally:
            await services.core.db.close()
    return asyncio.run(go())


class App:
    """An app on the vendor SDK: every call is signed by the SDK itself."""

    def __init__(self, live: LiveServer, account: Account, secret: str | None = None) -> None:
        host = live.url.removeprefix("http://")
        self.client = Client(Config(app_key=account.app_key, app_secret=secret or account.secret, domain=host,
                                    protocol="http"))
        self.iot_token: str | None = None

    def call(self, path: str, params: dict[str, Any], api_ver: str = "1.0.2") -> tuple[int, Any, dict[str, str]]:
        req = IoTApiRequest(version="1.0", params=params,
                            request=CommonParams(api_ver=api_ver, iot_token=self.iot_token, language="en-US"))
        r = self.client.do_request(path, "http", "POST", None, req, RuntimeOptions())
        return r.status_code, json.loads(r.body), r.headers

    def ok(self, path: str, params: dict[str, Any], api_ver: str = "1.0.2") -> Any:
        status, body, _ = self.call(path, params, api_ver)
        assert status == 200 and body["code"] == 200, body
        return body["data"]


async def _world(s: Services, org: str) -> dict[str, Any]:
    caller = Caller.operator(org)

    async def product(kind: ProductType, **meta: Any) -> str:
        p = await s.products.create(caller, ProductSpec(I18nText("Thing"), kind, "Json", MODEL_ID, False))
        await s.living.set_product_meta(org, p.product_key, MetaPatch(status="published", **meta))
        return p.product_key

    async def device(pk: str, name: str) -> str:
        return (await s.devices.create(caller, DeviceSpec(pk, I18nText(name), "+08:00", name))).device.asset_id

    w: dict[str, Any] = {"lamp_pk": await product(ProductType.DEVICE), "short_pk": await product(
        ProductType.DEVICE, bind_window_s=1), "gw_pk": await product(ProductType.GATEWAY),
        "sub_pk": await product(ProductType.DEVICE, require_permit_join=True)}
    for name, pk in (("hub", "lamp_pk"), ("bulb", "lamp_pk"), ("lamp", "lamp_pk"), ("plug", "lamp_pk"),
                     ("late", "short_pk"), ("gw", "gw_pk"), ("sensor", "sub_pk")):
        w[name] = await device(w[pk], f"{name}-0001")
    for name in ("hub", "plug", "late", "gw"):
        await s.devices.mark_connected(w[name])
    await s.topology.add_sub_devices(caller, DeviceRef(asset_id=w["gw"]), [DeviceRef(asset_id=w["sensor"])])
    w["lamp_secret"] = (await s.products.get(caller, w["lamp_pk"])).secret
    user = await s.living.create_user(org, "alice")
    w["identity"] = user.identity_id
    w["code"], _ = await s.living.mint_auth_code(user.identity_id)
    return w


@pytest.fixture
def world(live: LiveServer, account: Account, settings: Settings) -> dict[str, Any]:
    return side(settings, lambda s: _world(s, account.org_id))


def outbox(settings: Settings, kind: str) -> list[dict[str, Any]]:
    async def read(s: Services) -> list[dict[str, Any]]:
        async with s.core.read() as conn:
            return [e for e in await event_store.since(conn, 0, 10_000) if e["kind"] == kind]
    return side(settings, read)


def test_consumer_story(live: LiveServer, account: Account, settings: Settings, world: dict[str, Any]) -> None:
    app = App(live, account)
    session = app.ok("/account/createSessionByAuthCode",
                     {"request": {"authCode": world["code"], "accountType": "OA_SESSION"}}, "1.0.4")
    assert session["identityId"] == world["identity"] and session["iotTokenExpire"] > 0
    app.iot_token = session["iotToken"]
    home = app.ok("/living/home/create", {"name": "Home"}, "1.1.0")
    # a registrar (bound by time window) reports an enrollee it discovered
    assert app.ok("/awss/time/window/user/bind", {"homeId": home, "productKey": world["lamp_pk"],
                                                  "deviceName": "hub-0001"}, "1.0.8") == world["hub"]
    ie = awss.build_enrollee_ie("bulb-0001", world["lamp_pk"], bytes(16), world["lamp_secret"])
    accepted = side(settings, lambda s: s.provisioning.report_enrollees(world["hub"], [ie], ssid="wifi",
                                                                        bssid="11:22:33:44:55:66", rssi=-50))
    assert accepted[0]["deviceName"] == "bulb-0001"
    found = app.ok("/awss/enrollee/list/get", {"pageNum": 1, "pageSize": 99}, "1.0.7")
    assert found["totalNum"] == 1 and found["items"][0]["enrolleeIotId"] == world["bulb"]
    key = app.ok("/awss/cipher/get", {"deviceInfoForCipher": {"productKey": world["lamp_pk"],
                                                              "deviceName": "bulb-0001", "cipherType": 3,
                                                              "random": RANDOM, "params": {}}}, "1.0.7")
    assert key == awss.cipher_key(world["lamp_secret"], bytes.fromhex(RANDOM))
    assert [e["payload"]["enrollee"]["deviceName"] for e in outbox(settings, events.LIVING_ENROLLEE_CHECKIN)] == \
        ["bulb-0001"]
    # bind by token
    side(settings, lambda s: s.provisioning.report_bind_token(world["lamp"], TOKEN))
    assert app.ok("/awss/token/check", {"token": TOKEN}, "1.0.9")["iotId"] == world["lamp"]
    assert app.ok("/awss/token/user/bind", {"homeId": home, "productKey": world["lamp_pk"],
                                            "deviceName": "lamp-0001", "token": TOKEN}, "1.0.8") == world["lamp"]
    status, body, _ = app.call("/awss/token/check", {"token": TOKEN}, "1.0.9")
    assert (status, body["code"], body["message"]) == (200, 6608, "token not found")
    # bind by time window, and too late
    assert app.ok("/awss/time/window/user/bind", {"homeId": home, "productKey": world["lamp_pk"],
                                                  "deviceName": "plug-0001"}, "1.0.8") == world["plug"]
    time.sleep(1.2)
    _, body, _ = app.call("/awss/time/window/user/bind", {"homeId": home, "productKey": world["short_pk"],
                                                          "deviceName": "late-0001"}, "1.0.8")
    assert body["code"] == 6618
    binds = outbox(settings, events.LIVING_BIND_NOTIFY)
    assert {e["asset_id"] for e in binds} == {world["hub"], world["lamp"], world["plug"]}
    # the gateway: permit, then remove its sub-device
    app.ok("/awss/time/window/user/bind", {"homeId": home, "productKey": world["gw_pk"], "deviceName": "gw-0001"})
    assert app.ok("/thing/gateway/permit", {"iotId": world["gw"], "productKey": world["sub_pk"], "time": 60}) is None
    [permit] = outbox(settings, events.LIVING_GATEWAY_PERMIT)
    assert permit["asset_id"] == world["gw"] and permit["payload"]["permit"] == {
        "productKey": world["sub_pk"], "time": 60}
    assert app.ok("/thing/topo/remove", {"iotId": world["gw"], "subIotId": world["sensor"]}) is None
    [change] = outbox(settings, events.LIVING_TOPO_CHANGE)
    assert change["payload"]["status"] == 1 and change["payload"]["subList"] == [
        {"productKey": world["sub_pk"], "deviceName": "sensor-0001"}]
    listed = app.ok("/uc/listBindingByAccount", {"pageNo": 1, "pageSize": 50}, "1.0.8")
    assert listed["total"] == 4


def test_wrong_secret_gets_400_with_the_string_to_sign(live: LiveServer, account: Account) -> None:
    app = App(live, account, secret="not-the-secret")
    status, body, headers = app.call("/living/home/query", {"pageNo": 1, "pageSize": 10}, "1.1.0")
    assert status == 400 and body["code"] == 400
    message = {k.lower(): v for k, v in headers.items()}["x-ca-error-message"]
    assert message.startswith("Invalid Signature, Server StringToSign:`POST#application/json#")


def test_bad_iot_token_is_401(live: LiveServer, account: Account) -> None:
    app = App(live, account)
    app.iot_token = "0" * 32
    status, body, _ = app.call("/living/home/query", {"pageNo": 1, "pageSize": 10}, "1.1.0")
    assert status == 200 and body["code"] == 401 and "iotToken" in body["message"]
