"""Every OceanConnect device and subscription route and its documented error codes.

The routes and codes are those of docs/reference/oceanconnect.md §3-§8.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import data, make_product
from tests.dialects.conftest import Unexpected
from tests.support.enos_client import EnosClient
from tests.support.oc_client import OcClient, oc_error
from thingport.dialects.oceanconnect import routes
from thingport.domain.models import Application, Organization, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller

CRED = "/iocm/app/reg/v1.1.0/deviceCredentials"
CRED2 = "/iocm/app/reg/v2.0.0/deviceCredentials"
DM = "/iocm/app/dm/v1.4.0/devices"
SUB = "/iocm/app/sub/v1.2.0/subscriptions"
TIME = re.compile(r"^\d{8}T\d{6}Z$")
INFO = {"manufacturerId": "acme", "manufacturerName": "Acme", "deviceType": "WaterMeter", "model": "M1",
        "protocolType": "CoAP", "name": "meter one", "location": "hall"}


async def test_register_verify_code_mode(oc: OcClient, enos: EnosClient) -> None:
    r = await oc.register("861234567890123", verifyCode="861234567890123", timeout=300, deviceInfo=INFO,
                          imsi="460001234567890")
    assert set(r) == {"deviceId", "verifyCode", "timeout", "psk"}
    assert r["verifyCode"] == "861234567890123" and r["timeout"] == 300 and re.match(r"^[0-9a-f]{32}$", r["psk"])
    generated = await oc.register("861234567890124")
    assert generated["timeout"] == 180 and generated["verifyCode"]
    # an ordinary device: the EnOS API sees it
    got = data(await enos.call("GET", "/connect-service/v2.1/devices", {"action": "get", "assetId": r["deviceId"]}))
    assert got["deviceKey"] == "861234567890123" and got["deviceName"]["defaultValue"] == "meter one"
    assert got["status"] == "inactive"


async def test_register_errors(oc: OcClient) -> None:
    await oc.register("node-0001", verifyCode="code-1")
    oc_error(await oc.call("POST", CRED, {"nodeId": "node-0001"}), 400, "100426", "nodeId")
    oc_error(await oc.call("POST", CRED, {"nodeId": "node-0002", "verifyCode": "CODE-1"}), 400, "100416")
    oc_error(await oc.call("POST", CRED, {"nodeId": "node-0002", "verifyCode": " x"}), 400, "100003")
    oc_error(await oc.call("POST", CRED, {"nodeId": "node-0002", "timeout": -1}), 400, "50400", "timeout")
    oc_error(await oc.call("POST", CRED, {"nodeId": "node-0002", "timeout": "300"}), 400, "50400", "timeout")
    oc_error(await oc.call("POST", CRED, {"nodeId": "node-0002", "psk": "xyz"}), 400, "50400", "psk")
    oc_error(await oc.call("POST", CRED, {"nodeId": "no"}), 400, "50400", "nodeId")
    oc_error(await oc.call("POST", CRED, {"verifyCode": "a"}), 400, "50400", "nodeId")
    oc_error(await oc.call("POST", CRED, {"nodeId": "node-0002", "productId": "nope"}), 403, "600002", "productId")
    oc_error(await oc.call("POST", CRED, {"nodeId": "node-0002", "deviceInfo": {"model": "m" * 257}}), 400,
             "50400", "deviceInfo.model")
    r = await oc.http.post(CRED, content=b"{not json", headers=oc.headers())
    oc_error(r, 400, "100007")


async def test_register_into_a_product(oc: OcClient, services: Services, caller: Caller) -> None:
    gw = await make_product(services, caller, ProductType.GATEWAY)
    r = await oc.register("gw-0001", productId=gw)
    got = (await oc.call("GET", f"{DM}/{r['deviceId']}")).json()
    assert got["nodeType"] == "GATEWAY" and got["gatewayId"] == r["deviceId"]


async def test_register_password_mode(oc: OcClient) -> None:
    r = await oc.call("POST", CRED2, {"deviceInfo": {"nodeId": "mqtt-0001", **INFO}, "mqttConnect": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"deviceId", "psk", "secret"} and re.match(r"^[0-9a-f]{20}$", body["secret"])
    given = await oc.call("POST", CRED2, {"deviceInfo": {"nodeId": "mqtt-0002"}, "secret": "ABCDEF0123456789abcd"})
    assert given.json()["secret"] == "ABCDEF0123456789abcd"
    oc_error(await oc.call("POST", CRED2, {"deviceInfo": {"nodeId": "mqtt-0003"}, "secret": "short"}), 400,
             "50400", "secret")
    oc_error(await oc.call("POST", CRED2, {"nodeId": "mqtt-0003"}), 400, "50400", "deviceInfo")
    oc_error(await oc.call("POST", CRED2, {"deviceInfo": {"name": "x"}}), 400, "50400", "nodeId")
    oc_error(await oc.call("POST", CRED2, {"deviceInfo": {"nodeId": "mqtt-0003"}, "mqttConnect": False}), 400,
             "50400", "mqttConnect")


async def test_refresh_device_key(oc: OcClient, services: Services) -> None:
    did = (await oc.register("imei-0001", verifyCode="v1"))["deviceId"]
    r = await oc.call("PUT", f"{CRED}/{did}", {"verifyCode": "AE10-12424-12414", "nodeId": "imei-0002",
                                                "timeout": 300, "deviceId": did, "appId": oc.app_id})
    assert r.status_code == 200 and r.json() == {"verifyCode": "AE10-12424-12414", "timeout": 300}
    r = await oc.call("PUT", f"{CRED}/{did}", {"nodeId": ""})
    assert r.status_code == 200 and r.json()["timeout"] == 180 and r.json()["verifyCode"] != "AE10-12424-12414"
    got = (await oc.call("GET", f"{DM}/{did}")).json()
    assert got["deviceInfo"]["nodeId"] == "imei-0002"


async def test_refresh_device_key_errors(oc: OcClient, services: Services, org: Organization,
                                         enos: EnosClient, product_key: str) -> None:
    did = (await oc.register("imei-1001", verifyCode="v1"))["deviceId"]
    await oc.register("imei-1002", verifyCode="taken")
    put = f"{CRED}/{did}"
    oc_error(await oc.call("PUT", put, {"nodeId": "imei-1002"}), 400, "100426", "nodeId")
    oc_error(await oc.call("PUT", put, {"verifyCode": "TAKEN"}), 400, "100003", "verifyCode")
    oc_error(await oc.call("PUT", put, {"timeout": 2147483648}), 400, "50400", "timeout")
    oc_error(await oc.call("PUT", put, {"timeout": True}), 400, "50400", "timeout")
    oc_error(await oc.call("PUT", f"{CRED}/nope", {}), 404, "100403")
    oc_error(await oc.call("PUT", CRED, {}), 400, "100007", "deviceId")
    enos_device = data(await enos.call("POST", "/connect-service/v2.1/devices", {"action": "create"},
                                       {"productKey": product_key, "deviceName": "d", "timezone": "+08:00"}))
    oc_error(await oc.call("PUT", f"{CRED}/{enos_device['assetId']}", {}), 404, "100418")
    stranger = await services.accounts.create_app((await services.accounts.create_org("O", "o-2")).org_id, "s")
    oc_error(await oc.call("PUT", put, {}, params={"appId": stranger.app_key}), 403, "100217")
    oc_error(await oc.call("PUT", put, {}, params={"appId": "ghost"}), 403, "100203")
    await services.oceanconnect.registrations.complete_bind(did)
    await services.devices.mark_connected(did)
    oc_error(await oc.call("PUT", put, {}), 400, "100611", "online")
    await services.devices.mark_disconnected(did)
    assert (await oc.call("PUT", put, {})).status_code == 200


async def test_activation_status(oc: OcClient, services: Services) -> None:
    did = (await oc.register("imei-2001", deviceInfo={"name": "meter"}))["deviceId"]
    r = await oc.call("GET", f"{CRED}/{did}")
    assert r.json() == {"deviceId": did, "activated": False, "name": "meter"}
    await services.oceanconnect.registrations.complete_bind(did)
    assert (await oc.call("GET", f"{CRED}/{did}")).json()["activated"] is True
    oc_error(await oc.call("GET", f"{CRED}/nope"), 404, "100403")


async def test_query_one_device(oc: OcClient, services: Services) -> None:
    did = (await oc.register("imei-3001", deviceInfo=INFO, imsi="460001"))["deviceId"]
    got = (await oc.call("GET", f"{DM}/{did}")).json()
    assert got["deviceId"] == did and got["gatewayId"] == did and got["nodeType"] == "ENDPOINT"
    assert TIME.match(got["createTime"]) and TIME.match(got["lastModifiedTime"])
    info = got["deviceInfo"]
    assert info["nodeId"] == "imei-3001" and info["manufacturerId"] == "acme" and info["deviceType"] == "WaterMeter"
    assert info["status"] == "INACTIVE" and info["statusDetail"] == "NOT_ACTIVE" and info["mute"] == "FALSE"
    assert info["mac"] is None and "swVersion" in info and "imsi" not in info
    assert (await oc.call("GET", f"{DM}/{did}", params={"select": "imsi"})).json()["deviceInfo"]["imsi"] == "460001"
    oc_error(await oc.call("GET", f"{DM}/{did}", params={"select": "x"}), 400, "100405", "select")
    await services.oceanconnect.registrations.complete_bind(did)
    await services.devices.mark_connected(did)
    info = (await oc.call("GET", f"{DM}/{did}")).json()["deviceInfo"]
    assert (info["status"], info["statusDetail"]) == ("ONLINE", "NONE")
    await services.devices.mark_disconnected(did)
    assert (await oc.call("GET", f"{DM}/{did}")).json()["deviceInfo"]["status"] == "OFFLINE"
    oc_error(await oc.call("GET", f"{DM}/nope"), 404, "100403")


async def ids(oc: OcClient, **params: str) -> list[str]:
    r = await oc.call("GET", DM, params=params)
    assert r.status_code == 200, r.text
    return [d["deviceId"] for d in r.json()["devices"]]


async def test_batch_query(oc: OcClient, services: Services, caller: Caller) -> None:
    a = (await oc.register("batch-0001", deviceInfo={**INFO, "deviceType": "A"}))["deviceId"]
    b = (await oc.register("batch-0002", deviceInfo={**INFO, "deviceType": "B", "location": "roof"}))["deviceId"]
    c = (await oc.register("batch-0003"))["deviceId"]
    await services.oceanconnect.registrations.complete_bind(b)
    await services.devices.mark_connected(b)
    r = (await oc.call("GET", DM, params={"pageNo": "0", "pageSize": "2"})).json()
    assert r["totalCount"] == 3 and r["pageNo"] == 0 and r["pageSize"] == 2 and len(r["devices"]) == 2
    assert await ids(oc, pageNo="0") == [c, b, a]
    assert await ids(oc, pageNo="0", sort="ASC") == [a, b, c]
    assert await ids(oc, pageNo="1", pageSize="2") == [a]
    assert await ids(oc, pageNo="0", status="ONLINE") == [b]
    assert await ids(oc, pageNo="0", status="INACTIVE") == [c, a]
    assert await ids(oc, pageNo="0", status="INBOX") == [c, a]
    assert await ids(oc, pageNo="0", status="ABNORMAL") == []
    assert await ids(oc, pageNo="0", deviceType="A") == [a]
    assert await ids(oc, pageNo="0", location="roof") == [b]
    assert await ids(oc, pageNo="0", name="batch-0003") == [c]
    assert await ids(oc, pageNo="0", nodeType="GATEWAY") == []
    assert await ids(oc, gatewayId=a) == [a]
    assert await ids(oc, pageNo="0", startTime="20000101T000000Z", endTime="29991231T235959Z") == [c, b, a]
    assert await ids(oc, pageNo="0", endTime="20000101T000000Z") == []
    oc_error(await oc.call("GET", DM), 400, "100218")
    oc_error(await oc.call("GET", DM, params={"pageNo": "0", "pageSize": "251"}), 400, "100405", "pageSize")
    oc_error(await oc.call("GET", DM, params={"pageNo": "-1"}), 400, "100405", "pageNo")
    oc_error(await oc.call("GET", DM, params={"pageNo": "0", "status": "SLEEPY"}), 400, "100405", "status")
    oc_error(await oc.call("GET", DM, params={"pageNo": "0", "startTime": "2020-01-01"}), 400, "100405",
             "startTime")


async def test_modify_device(oc: OcClient, enos: EnosClient, services: Services, product_key: str) -> None:
    did = (await oc.register("mod-0001", deviceInfo=INFO))["deviceId"]
    r = await oc.call("PUT", f"{DM}/{did}", {"name": "renamed", "location": "cellar", "swVersion": "ignored",
                                             "model": "M2", "isSecure": True})
    assert r.status_code == 204 and r.content == b""
    info = (await oc.call("GET", f"{DM}/{did}")).json()["deviceInfo"]
    assert (info["name"], info["location"], info["model"], info["isSecurity"]) == ("renamed", "cellar", "M2", "TRUE")
    assert (await oc.call("PUT", f"{DM}/{did}", {"mute": "TRUE"})).status_code == 204
    got = data(await enos.call("GET", "/connect-service/v2.1/devices", {"action": "get", "assetId": did}))
    assert got["status"] == "disabled" and got["deviceName"]["defaultValue"] == "renamed"
    # a device of another dialect gets OceanConnect fields too
    other = data(await enos.call("POST", "/connect-service/v2.1/devices", {"action": "create"},
                                 {"productKey": product_key, "deviceName": "d", "timezone": "+08:00"}))["assetId"]
    assert (await oc.call("PUT", f"{DM}/{other}", {"deviceType": "Pump"})).status_code == 204
    assert (await oc.call("GET", f"{DM}/{other}")).json()["deviceInfo"]["deviceType"] == "Pump"
    oc_error(await oc.call("PUT", f"{DM}/{did}", {"mute": "MAYBE"}), 400, "50400", "mute")
    oc_error(await oc.call("PUT", f"{DM}/{did}", {"productId": "x"}), 400, "50400", "productId")
    oc_error(await oc.call("PUT", f"{DM}/{did}", {"name": 5}), 400, "50400", "name")
    oc_error(await oc.call("PUT", f"{DM}/nope", {}), 404, "100403")


async def test_delete_device_cascade(oc: OcClient, services: Services, caller: Caller) -> None:
    gw_product = await make_product(services, caller, ProductType.GATEWAY)
    gw = (await oc.register("gw-1001", productId=gw_product))["deviceId"]
    gw2 = (await oc.register("gw-1002", productId=gw_product))["deviceId"]
    subs = [(await oc.register(f"sub-100{i}"))["deviceId"] for i in range(4)]
    from thingport.services.devices import DeviceRef

    await services.topology.add_sub_devices(caller, DeviceRef(gw), [DeviceRef(s) for s in subs[:2]])
    await services.topology.add_sub_devices(caller, DeviceRef(gw2), [DeviceRef(s) for s in subs[2:]])
    r = await oc.call("DELETE", f"{DM}/{gw}")
    assert r.status_code == 204 and r.content == b""
    assert (await oc.call("GET", f"{DM}/{subs[0]}")).status_code == 404
    assert (await oc.call("DELETE", f"{DM}/{gw2}", params={"cascade": "false"})).status_code == 204
    left = (await oc.call("GET", f"{DM}/{subs[2]}")).json()
    assert left["gatewayId"] == subs[2]
    oc_error(await oc.call("DELETE", f"{DM}/{gw2}"), 404, "100403")
    oc_error(await oc.call("DELETE", f"{DM}/{subs[3]}", params={"cascade": "yes"}), 400, "50400", "cascade")
    # the nodeId is free again
    await oc.register("gw-1001")


async def test_subscriptions(oc: OcClient, services: Services, org: Organization) -> None:
    body: dict[str, Any] = {"notifyType": "deviceAdded", "callbackUrl": "https://127.0.0.1:8443/cb"}
    r = await oc.call("POST", SUB, body)
    assert r.status_code == 201, r.text
    sid = r.json()["subscriptionId"]
    assert r.json() == {"subscriptionId": sid, **body}
    oc_error(await oc.call("POST", SUB, {**body, "callbackUrl": "http://x:1/other"}), 409, "100227")
    oc_error(await oc.call("POST", SUB, {**body, "notifyType": "bindDevice", "callbackUrl": "ftp://x/cb"}), 400,
             "100222", "callbackUrl")
    oc_error(await oc.call("POST", SUB, {**body, "notifyType": "bindDevice", "callbackUrl": "http://x:99999/"}), 400,
             "100222")
    oc_error(await oc.call("POST", SUB, {**body, "notifyType": "commandRsp"}), 400, "50400", "notifyType")
    oc_error(await oc.call("POST", SUB, {**body, "notifyType": "bindDevice", "channel": "MQTT"}), 400, "50400",
             "channel")
    for t in ("bindDevice", "deviceInfoChanged", "deviceDeleted"):
        r = await oc.call("POST", SUB, {"notifyType": t, "callbackUrl": "http://127.0.0.1:9/cb"})
        assert r.status_code == 201
    assert (await oc.call("GET", f"{SUB}/{sid}")).json() == {"subscriptionId": sid, **body}
    oc_error(await oc.call("GET", f"{SUB}/nope"), 404, "100225")
    page = (await oc.call("GET", SUB, params={"pageNo": "0", "pageSize": "2"})).json()
    assert page["totalCount"] == 4 and len(page["subscriptions"]) == 2
    only = (await oc.call("GET", SUB, params={"notifyType": "deviceDeleted"})).json()
    assert [s["notifyType"] for s in only["subscriptions"]] == ["deviceDeleted"]
    sibling = await services.accounts.create_app(org.org_id, "sibling")
    assert (await oc.call("GET", SUB, params={"appId": sibling.app_key})).json()["totalCount"] == 0
    r = await oc.call("DELETE", f"{SUB}/{sid}")
    assert r.status_code == 204 and r.content == b""
    oc_error(await oc.call("DELETE", f"{SUB}/{sid}"), 404, "100225")
    assert (await oc.call("DELETE", SUB, params={"callbackUrl": "http://127.0.0.1:9/cb",
                                                 "notifyType": "bindDevice"})).status_code == 204
    assert (await oc.call("GET", SUB)).json()["totalCount"] == 2
    assert (await oc.call("DELETE", SUB)).status_code == 204
    assert (await oc.call("GET", SUB)).json()["totalCount"] == 0


async def test_no_500_on_garbage(oc: OcClient) -> None:
    for method, path in (("POST", CRED), ("POST", CRED2), ("PUT", f"{CRED}/x"), ("PUT", f"{DM}/x"), ("POST", SUB)):
        r = await oc.http.request(method, path, content=b"[1,2", headers=oc.headers())
        assert r.status_code == 400 and r.json()["error_code"] == "100007", (path, r.text)
    r = await oc.http.request("POST", CRED, content=b"[]", headers=oc.headers())
    assert r.status_code == 400, r.text


async def test_an_unexpected_failure_is_50252_logged_once(oc: OcClient, unexpected: Unexpected) -> None:
    unexpected.fail(routes, "select_imsi")  # the route's first step after authentication
    r = await oc.call("GET", f"{DM}/x")
    assert r.status_code == 500 and r.json() == {"error_code": "50252", "error_desc": "Internal server error."}
    assert unexpected.logged() == "OceanConnect queryDevice failed"


async def test_app_of_another_org_sees_nothing(oc: OcClient, http: httpx.AsyncClient, services: Services,
                                               app: Application) -> None:
    did = (await oc.register("private-0001"))["deviceId"]
    other = await services.accounts.create_app((await services.accounts.create_org("O", "o-3")).org_id, "x")
    client = OcClient(http, other.app_key, other.secret)
    await client.login()
    oc_error(await client.call("GET", f"{DM}/{did}"), 404, "100403")
    oc_error(await client.call("PUT", f"{CRED}/{did}", {}), 404, "100403")
    oc_error(await client.call("POST", CRED, {"nodeId": "private-0001"}), 400, "100426")
