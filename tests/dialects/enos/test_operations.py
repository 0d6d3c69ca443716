"""Every Connect Service operation and documented error code, through HTTP (docs/reference/enos.md §1)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.conftest import data
from tests.dialects.conftest import Unexpected
from tests.support.enos_client import EnosClient
from thingport.domain.models import Application, Organization, Permission
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef

P21, P24 = "/connect-service/v2.1/products", "/connect-service/v2.4/products"
D21, D24, D20 = "/connect-service/v2.1/devices", "/connect-service/v2.4/devices", "/connect-service/v2.0/devices"
T21, T24 = "/connect-service/v2.1/device-topos", "/connect-service/v2.4/device-topos"
PAGE = {"pagination": {"pageNo": 1, "pageSize": 50}}


def error(r: dict[str, Any], code: int, *words: str) -> None:
    assert r["code"] == code, r
    assert r["data"] is None
    for w in words:
        assert w in r["msg"], r["msg"]


async def device(enos: EnosClient, pk: str, key: str | None = None, **extra: Any) -> str:
    return str((await enos.create_device(pk, key, **extra))["assetId"])


async def get(enos: EnosClient, asset_id: str, version: str = "v2.1") -> dict[str, Any]:
    r = await enos.call("GET", f"/connect-service/{version}/devices", {"action": "get", "assetId": asset_id})
    return dict(data(r))


# --------------------------------------------------------------------------------------------- products

async def test_product_lifecycle(enos: EnosClient) -> None:
    pk = await enos.create_product(productDesc="meters", productTags={"line": "a"}, dynamicActiveEnabled=True)
    got = data(await enos.call("GET", P21, {"action": "get", "productKey": pk}))
    assert got["productKey"] == pk and got["productName"] == {"defaultValue": "Meter", "i18nValue": {}}
    assert got["dynamicActiveEnabled"] is True and got["productTags"] == {"line": "a"}
    assert len(got["productSecret"]) == 16
    body = {"productName": {"defaultValue": "Meter 2", "i18nValue": {"zh_CN": "表"}}, "biDirectionalAuth": True}
    assert data(await enos.call("POST", P21, {"action": "update", "productKey": pk}, body)) == pk
    got = data(await enos.call("GET", P24, {"action": "get", "productKey": pk}))
    assert got["productName"]["i18nValue"] == {"zh_CN": "表"} and got["biDirectionalAuth"] is True
    assert "productSecret" not in got and got["productTags"] == {"line": "a"}
    found = await enos.call("POST", P21, {"action": "search"},
                            {"expression": "productTags.line = 'a'", **PAGE})
    assert [p["productKey"] for p in data(found)] == [pk] and found["pagination"]["totalSize"] == 1
    assert data(await enos.call("POST", P21, {"action": "delete", "productKey": pk})) == pk
    error(await enos.call("GET", P24, {"action": "get", "productKey": pk}), 11404, "productKey")


async def test_product_errors(enos: EnosClient, product_key: str) -> None:
    base = {"productName": "x", "productType": "Device", "dataFormat": "Json", "modelId": "model1",
            "biDirectionalAuth": False}
    error(await enos.call("POST", P21, {"action": "create"}, {**base, "modelId": "nope"}), 11699, "modelId")
    error(await enos.call("POST", P21, {"action": "create"}, {**base, "productType": "Car"}), 99400, "productType")
    error(await enos.call("POST", P21, {"action": "create"}, {**base, "dataFormat": "XML"}), 99400, "dataFormat")
    error(await enos.call("POST", P21, {"action": "create"}, {k: v for k, v in base.items() if k != "productName"}),
          99400, "productName")
    error(await enos.call("POST", P21, {"action": "create"}, {**base, "productDesc": "d" * 513}), 99400, "productDesc")
    error(await enos.call("GET", P21, {"action": "get", "productKey": "missing"}), 11611, "productKey")
    error(await enos.call("GET", P21, {"action": "get"}), 99400, "productKey")
    error(await enos.call("POST", P21, {"action": "update", "productKey": "missing"},
                          {"productName": "x", "biDirectionalAuth": False}), 11651)
    error(await enos.call("POST", P21, {"action": "delete", "productKey": "missing"}), 11651)
    await device(enos, product_key)
    error(await enos.call("POST", P21, {"action": "delete", "productKey": product_key}), 11619, "devices")
    error(await enos.call("POST", P24, {"action": "create"}, base), 99400, "not available in v2.4")


# --------------------------------------------------------------------------------------------- devices

async def test_create_get_update_delete(enos: EnosClient, product_key: str) -> None:
    created = await enos.create_device(product_key, "dev-0001", deviceTags={"site": "a"},
                                       deviceAttributes={"fw": "1.0", "floor": 3}, deviceDesc="lobby")
    assert set(created) == {"assetId", "productKey", "deviceKey", "deviceSecret"}
    assert len(created["deviceSecret"]) == 20
    got = await get(enos, created["assetId"])
    assert got["deviceKey"] == "dev-0001" and got["deviceSecret"] == created["deviceSecret"]
    assert got["status"] == "inactive" and got["activeTime"] == 0 and got["lastOfflineTime"] is None
    assert got["modelId"] == "model1" and got["productType"] == "Device" and got["deviceDesc"] == "lobby"
    by_key = data(await enos.call("GET", D24, {"action": "get", "productKey": product_key, "deviceKey": "dev-0001"}))
    assert by_key["assetId"] == created["assetId"] and "deviceSecret" not in by_key
    update = {"deviceName": {"defaultValue": "renamed"}, "timezone": "Asia/Shanghai", "deviceTags": {"site": "b"}}
    assert data(await enos.call("POST", D21, {"action": "update", "assetId": created["assetId"]}, update)) is None
    got = await get(enos, created["assetId"])
    assert got["deviceName"]["defaultValue"] == "renamed" and got["timezone"] == "Asia/Shanghai"
    assert got["deviceTags"] == {"site": "b"} and got["deviceAttributes"] == {"fw": "1.0", "floor": 3}  # patch
    assert data(await enos.call("POST", D21, {"action": "delete", "assetId": created["assetId"]})) is None
    error(await enos.call("GET", D21, {"action": "get", "assetId": created["assetId"]}), 11404)
    error(await enos.call("POST", D21, {"action": "delete", "assetId": created["assetId"]}), 11404)


async def test_generated_key_and_identity(enos: EnosClient, product_key: str) -> None:
    a, b = await enos.create_device(product_key), await enos.create_device(product_key)
    assert a["deviceKey"] != b["deviceKey"] and a["assetId"] != b["assetId"]


@pytest.mark.parametrize(("version", "key", "ok"), [
    ("v2.1", "gw:01", True), ("v2.4", "gw:01", False), ("v2.1", "abc", False), ("v2.4", "a" * 65, False),
    ("v2.4", "dev-1_2.x", True)])
async def test_device_key_rules_per_version(enos: EnosClient, product_key: str, version: str, key: str,
                                            ok: bool) -> None:
    body = {"productKey": product_key, "deviceName": "d", "timezone": "+08:00", "deviceKey": key}
    r = await enos.call("POST", f"/connect-service/{version}/devices", {"action": "create"}, body)
    if ok:
        assert data(r)["deviceKey"] == key
    else:
        error(r, 99400, "deviceKey")


@pytest.mark.parametrize(("tz", "ok"), [("+08:00", True), ("-05:30", True), ("America/Los_Angeles", True),
                                        ("+15:00", False), ("GMT+8", False), ("", False)])
async def test_timezones(enos: EnosClient, product_key: str, tz: str, ok: bool) -> None:
    body = {"productKey": product_key, "deviceName": "d", "timezone": tz}
    r = await enos.call("POST", D21, {"action": "create"}, body)
    assert (r["code"] == 0) is ok, r
    if not ok:
        error(r, 99400, "timezone")


async def test_create_errors(enos: EnosClient, product_key: str, services: Services) -> None:
    body = {"productKey": product_key, "deviceName": "d", "timezone": "+08:00"}
    await device(enos, product_key, "dup-key")
    error(await enos.call("POST", D21, {"action": "create"}, {**body, "deviceKey": "dup-key"}), 11702, "deviceKey")
    error(await enos.call("POST", D21, {"action": "create"}, {**body, "productKey": "nope"}), 11404, "productKey")
    error(await enos.call("POST", D21, {"action": "create"}, {"deviceName": "d", "timezone": "+08:00"}),
          99400, "productKey")
    error(await enos.call("POST", D21, {"action": "create"}, {**body, "deviceName": {"i18nValue": {}}}),
          99400, "deviceName.defaultValue")
    many = {f"k{i}": "v" for i in range(101)}
    error(await enos.call("POST", D21, {"action": "create"}, {**body, "deviceTags": many}), 99400, "deviceTags")
    error(await enos.call("POST", D21, {"action": "create"}, {**body, "deviceTags": {"k": " v"}}),
          99400, "deviceTags.k")
    error(await enos.call("POST", D21, {"action": "create"}, {**body, "deviceKey": 12345}), 99400, "deviceKey")
    error(await enos.call("POST", D21, {"action": "create"}, "{not json"), 99400, "body")
    # 11714 (generating a free key failed) needs five random 10-character collisions; not provoked here.
    services.core.settings = replace(services.core.settings, product_device_limit=2)
    await device(enos, product_key)
    error(await enos.call("POST", D21, {"action": "create"}, body), 11739, "maximum")


async def test_batch_create_on_every_path(enos: EnosClient, product_key: str) -> None:
    await device(enos, product_key, "taken")
    body = {"deviceList": [{"productKey": product_key, "deviceName": "a", "timezone": "+08:00"},
                           {"productKey": product_key, "deviceName": "b", "timezone": "+08:00", "deviceKey": "taken"},
                           {"productKey": product_key, "deviceName": "c", "timezone": "bad"},
                           {"productKey": product_key, "deviceName": "d", "timezone": "UTC", "deviceKey": "batch-4"}]}
    for path in (D20, D21, D24):
        r = await enos.call("POST", path, {"action": "batchCreate"}, body)
        assert r["code"] == 0 and r["totalSize"] == 4
        codes = [item["code"] for item in r["data"]]
        if path == D20:
            assert codes == [0, 11702, 99400, 0] and r["successSize"] == 2
            assert "deviceList[2].timezone" in r["data"][2]["msg"]
            assert r["data"][0]["data"]["deviceSecret"]
        else:  # batch-4 exists from the first call
            assert codes == [0, 11702, 99400, 11702] and r["successSize"] == 1
    v24 = await enos.call("POST", D24, {"action": "batchCreate"}, body)
    assert "deviceSecret" not in v24["data"][0]["data"]
    error(await enos.call("POST", D21, {"action": "batchCreate"}, {"deviceList": []}), 99400, "deviceList")
    typed = await enos.call("POST", D21, {"action": "batchCreate"}, {"deviceList": [{"productKey": 5}]})
    assert typed["data"][0]["msg"] == "Invalid Argument deviceList[0].productKey: Expected `str | null`, got `int`"


async def test_enable_disable_and_status(enos: EnosClient, product_key: str, services: Services) -> None:
    aid = await device(enos, product_key)
    error(await enos.call("POST", D21, {"action": "enable", "assetId": aid}), 11794, "status")
    await services.devices.mark_connected(aid)
    got = await get(enos, aid)
    assert got["status"] == "online" and got["activeTime"] > 0 and got["lastOnlineTime"] > 0
    assert data(await enos.call("POST", D21, {"action": "disable", "assetId": aid})) is None
    got = await get(enos, aid)
    assert got["status"] == "disabled" and got["lastOfflineTime"]
    error(await enos.call("POST", D21, {"action": "disable", "assetId": aid}), 11794)
    assert data(await enos.call("POST", D21, {"action": "enable", "assetId": aid})) is None
    assert (await get(enos, aid))["status"] == "offline"


async def test_stats(enos: EnosClient, product_key: str, services: Services) -> None:
    ids = [await device(enos, product_key) for _ in range(4)]
    await services.devices.mark_connected(ids[0])
    await services.devices.mark_connected(ids[1])
    await services.devices.mark_disconnected(ids[1])
    await enos.call("POST", D21, {"action": "disable", "assetId": ids[2]})
    other = await enos.create_product()
    await device(enos, other)
    s = data(await enos.call("GET", D21, {"action": "getStats", "productKey": product_key}))
    assert s == {"totalCount": 4, "onlineCount": 1, "offlineCount": 1, "inactiveCount": 1, "disabledCount": 1}
    assert data(await enos.call("GET", D21, {"action": "getStats"}))["totalCount"] == 5
    error(await enos.call("GET", D21, {"action": "getStats", "productKey": "nope"}), 11404)


async def test_replace(enos: EnosClient, product_key: str, services: Services) -> None:
    gw_pk = await enos.create_product(product_type="Gateway")
    gw = await device(enos, gw_pk)
    old = await enos.create_device(product_key, "old-key", deviceTags={"t": "1"}, deviceAttributes={"a": 1})
    aid = old["assetId"]
    data(await enos.call("POST", T21, {"action": "addSubDevice"},
                         {"gateway": {"assetId": gw}, "subDevices": [{"assetId": aid}]}))
    await services.devices.mark_connected(aid)
    new = data(await enos.call("POST", D21, {"action": "replaceDevice", "productKey": product_key,
                                              "deviceKey": "old-key"}, {"newDeviceKey": "new-key"}))
    assert new["assetId"] == aid and new["deviceKey"] == "new-key" and new["deviceSecret"] != old["deviceSecret"]
    got = await get(enos, aid)
    assert got["status"] == "inactive" and got["activeTime"] == 0 and got["deviceSecret"] == new["deviceSecret"]
    assert got["deviceTags"] == {"t": "1"} and got["deviceAttributes"] == {"a": 1}
    gw_of = data(await enos.call("POST", T21, {"action": "getGateway"}, {"subDevice": {"assetId": aid}}))
    assert gw_of["assetId"] == gw
    error(await enos.call("GET", D21, {"action": "get", "productKey": product_key, "deviceKey": "old-key"}), 11404)
    error(await enos.call("POST", D24, {"action": "replaceDevice", "assetId": aid}, {"newDeviceKey": "new-key"}),
          11704, "newDeviceKey")
    await device(enos, product_key, "other-key")
    error(await enos.call("POST", D24, {"action": "replaceDevice", "assetId": aid}, {"newDeviceKey": "other-key"}),
          11702, "newDeviceKey")
    error(await enos.call("POST", D24, {"action": "replaceDevice", "assetId": aid}, {}), 99400, "newDeviceKey")
    error(await enos.call("POST", D24, {"action": "replaceDevice", "assetId": aid}, {"newDeviceKey": "x:y1"}),
          99400, "newDeviceKey")
    error(await enos.call("POST", D21, {"action": "replaceDevice"}, {"newDeviceKey": "zzzz"}), 99400, "assetId")


# --------------------------------------------------------------------------------------------- search

async def test_search_language(enos: EnosClient, product_key: str, services: Services) -> None:
    name_a = {"defaultValue": "Meter A", "i18nValue": {"en_US": "Alpha"}}
    a = await device(enos, product_key, "key-a", deviceName=name_a,
                     deviceTags={"site": "north"}, deviceAttributes={"floor": 3})
    b = await device(enos, product_key, "key-b", deviceName="Pump B", deviceTags={"site": "south"})
    c = await device(enos, product_key, "key-c", deviceName="Meter C")
    await services.devices.mark_connected(a)
    await enos.call("POST", D21, {"action": "disable", "assetId": c})

    async def keys(expr: str) -> list[str]:
        r = await enos.call("POST", D21, {"action": "search"}, {"expression": expr, **PAGE})
        return [d["deviceKey"] for d in data(r)]

    assert await keys("") == ["key-c", "key-b", "key-a"]  # newest first
    assert await keys("deviceTags.site = 'north'") == ["key-a"]
    assert await keys("deviceTags.site != 'north'") == ["key-c", "key-b"]
    assert await keys("deviceTags.site in ('north', \"south\")") == ["key-b", "key-a"]
    assert await keys("exists(deviceTags.site) and not exists(deviceAttributes.floor)") == ["key-b"]
    assert await keys("deviceAttributes.floor = 3") == ["key-a"]
    assert await keys("deviceName like 'meter'") == ["key-c", "key-a"]
    assert await keys("deviceName.en_US like 'alp'") == ["key-a"]
    assert await keys("status = 'online'") == ["key-a"]
    assert await keys("status = 'disable' or status = 'inactive'") == ["key-c", "key-b"]
    either = "(deviceKey = 'key-a' or deviceKey = 'key-b')"
    assert await keys(f"productKey = '{product_key}' and {either}") == ["key-b", "key-a"]
    typed = "productType = 'Device' and modelId = 'model1'"
    assert await keys(f"assetId in ('{a}', '{b}') and {typed}") == ["key-b", "key-a"]
    error(await enos.call("POST", D21, {"action": "search"}, {"expression": "colour = 'red'"}), 99400, "colour")


async def test_search_paging_and_projection(enos: EnosClient, product_key: str) -> None:
    for i in range(5):
        await device(enos, product_key, f"page-{i}")
    r = await enos.call("POST", D21, {"action": "search"},
                        {"pagination": {"pageNo": 2, "pageSize": 2},
                         "projection": ["deviceKey", "deviceName.defaultValue"]})
    assert r["pagination"] == {"sortedBy": None, "pageNo": 2, "pageSize": 2, "totalSize": 5}
    assert data(r) == [{"deviceKey": "page-2", "deviceName": {"defaultValue": "dev"}},
                       {"deviceKey": "page-1", "deviceName": {"defaultValue": "dev"}}]
    for bad, field in (({"pageNo": 0, "pageSize": 2}, "pageNo"), ({"pageNo": 1, "pageSize": 1001}, "pageSize"),
                       ({"pageNo": 1, "pageSize": 2, "sorters": [{"field": "x"}]}, "sorters")):
        error(await enos.call("POST", D21, {"action": "search"}, {"pagination": bad}), 99400, f"pagination.{field}")


# --------------------------------------------------------------------------------------------- topology

async def test_topology(enos: EnosClient, product_key: str) -> None:
    gw_pk = await enos.create_product(product_type="Gateway")
    gw, gw2 = await device(enos, gw_pk, "gw-1"), await device(enos, gw_pk, "gw-2")
    subs = [await device(enos, product_key, f"sub-{i}") for i in range(3)]
    topo = {"gateway": {"productKey": gw_pk, "deviceKey": "gw-1"},
            "subDevices": [{"assetId": subs[0]}, {"productKey": product_key, "deviceKey": "sub-1"}]}
    assert data(await enos.call("POST", T21, {"action": "addSubDevice"}, topo)) is None
    for action, path in (("searchSubDevice", T21), ("searchSubDevices", T24)):
        r = await enos.call("POST", path, {"action": action}, {"gateway": {"assetId": gw}, **PAGE})
        assert sorted(d["assetId"] for d in data(r)) == sorted(subs[:2]) and r["pagination"]["totalSize"] == 2
    gw_of = data(await enos.call("POST", T24, {"action": "getGateway"},
                                 {"subDevice": {"assetId": subs[0]}, "projection": ["assetId"]}))
    assert gw_of == {"assetId": gw}
    error(await enos.call("POST", T21, {"action": "addSubDevice"},
                          {"gateway": {"assetId": gw2}, "subDevices": [{"assetId": subs[0]}]}),
          11795, "another gateway")
    error(await enos.call("POST", T21, {"action": "addSubDevice"},
                          {"gateway": {"assetId": gw}, "subDevices": [{"assetId": gw2}]}), 11795, "gateway")
    error(await enos.call("POST", T21, {"action": "addSubDevice"},
                          {"gateway": {"assetId": subs[2]}, "subDevices": [{"assetId": subs[1]}]}), 11738)
    error(await enos.call("POST", T21, {"action": "removeSubDevice"},
                          {"gateway": {"assetId": gw}, "subDevices": [{"assetId": subs[2]}]}),
          11795, "not a sub-device")
    error(await enos.call("POST", T21, {"action": "addSubDevice"}, {"gateway": {"assetId": gw}}), 99400, "subDevices")
    error(await enos.call("POST", T21, {"action": "addSubDevice"},
                          {"gateway": {"productKey": gw_pk}, "subDevices": [{"assetId": subs[2]}]}), 99400, "gateway")
    assert data(await enos.call("POST", T21, {"action": "remove"},
                                {"gateway": {"assetId": gw}, "subDevices": [{"assetId": subs[1]}]})) is None
    error(await enos.call("POST", T21, {"action": "getGateway"}, {"subDevice": {"assetId": subs[1]}}), 11795)
    await enos.call("POST", D21, {"action": "delete", "assetId": gw})  # deleting a gateway frees its sub-devices
    error(await enos.call("POST", T21, {"action": "getGateway"}, {"subDevice": {"assetId": subs[0]}}), 11795)


# --------------------------------------------------------------------------------------------- the envelope

async def test_request_shape_errors(enos: EnosClient, http: httpx.AsyncClient) -> None:
    error(await enos.call("GET", D21, {}), 99400, "action is missing")
    error(await enos.call("GET", D21, {"action": "fly"}), 99400, "'fly'")
    error(await enos.call("GET", D21, {"action": "create"}), 99400, "POST")
    error(await enos.call("POST", D24, {"action": "update", "assetId": "x"}, {}), 99400, "v2.4")
    error(await enos.call("GET", D21, {"action": "get"}), 99400, "assetId")
    r = await enos.call("GET", D21, {"action": "get", "assetId": "nope"})
    assert r["code"] == 11404 and isinstance(r["requestId"], str) and len(r["requestId"]) == 36


async def test_a_missing_or_unknown_action_lists_the_actions_of_that_resource_and_version(enos: EnosClient) -> None:
    """docs/enos.md promises it: the answer tells the caller what it could have called."""
    r = await enos.call("POST", D24, {"action": "fly"}, {})
    error(r, 99400, "'fly'")
    listed = r["msg"].split("available in v2.4: ")[1].rstrip(")").split(", ")
    assert listed == ["batchCreate", "create", "get", "replaceDevice", "search"]  # v2.1-only update is absent
    r = await enos.call("GET", T21, {})
    error(r, 99400, "action is missing")
    assert "addSubDevice, getGateway, remove, removeSubDevice, searchSubDevice, searchSubDevices" in r["msg"]
    error(await enos.call("GET", P21, {"action": "fly"}), 99400,
          "available in v2.1: create, delete, get, search, update")


async def test_an_unexpected_failure_is_99500_logged_once(enos: EnosClient, services: Services,
                                                         unexpected: Unexpected) -> None:
    unexpected.fail(services.devices, "get")
    r = await enos.raw("GET", D21, {"action": "get", "assetId": "x"})
    body = r.json()
    assert r.status_code == 500 and body["code"] == 99500 and body["msg"] == "Internal Server Error"
    assert unexpected.logged() == f"request {body['requestId']} failed"


# --------------------------------------------------------------------------------------------- permissions, tenants

async def test_permissions_and_tenants(enos: EnosClient, product_key: str, services: Services, org: Organization,
                                       http: httpx.AsyncClient, app: Application) -> None:
    aid = await device(enos, product_key)
    ro_app = await services.accounts.create_app(org.org_id, "ro", frozenset({Permission.DEVICE_READ}))
    ro = EnosClient(http, ro_app.app_key, ro_app.secret, org.org_id)
    assert (await get(ro, aid))["deviceSecret"] is None  # v2.1: secrets only for device:full
    error(await ro.call("POST", D21, {"action": "create"},
                        {"productKey": product_key, "deviceName": "d", "timezone": "+08:00"}), 99403, "device:full")
    error(await ro.call("POST", P21, {"action": "delete", "productKey": product_key}), 99403, "product:delete")
    await services.accounts.create_org("Other", "o-other")
    await services.accounts.create_model("o-other", "model1")
    other_app = await services.accounts.create_app("o-other", "other")
    other = EnosClient(http, other_app.app_key, other_app.secret, "o-other")
    error(await other.call("GET", D21, {"action": "get", "assetId": aid}), 11404)
    error(await other.call("GET", P21, {"action": "get", "productKey": product_key}), 11611)
    r = await other.call("POST", D21, {"action": "search"}, PAGE)
    assert data(r) == [] and r["pagination"]["totalSize"] == 0
    cross = EnosClient(http, other_app.app_key, other_app.secret, org.org_id)  # claims org A's id
    error(await cross.call("GET", D21, {"action": "get", "assetId": aid}), 99403, "orgId")


async def test_replace_with_thingports_grace_period(enos: EnosClient, product_key: str, services: Services) -> None:
    """Thingport's ``gracePeriod`` on Replace Device: the old pair still logs in, the device stays active;
    out of range is 99400 naming it, and nothing changed."""
    from tests.services.test_credentials import signed

    old = await enos.create_device(product_key, "grace-old")
    aid = old["assetId"]
    await services.devices.mark_connected(aid)
    for bad in (-1, 30 * 86_400 + 1, "soon"):
        error(await enos.call("POST", D24, {"action": "replaceDevice", "assetId": aid},
                              {"newDeviceKey": "grace-new", "gracePeriod": bad}), 99400, "gracePeriod")
    assert (await get(enos, aid))["deviceKey"] == "grace-old"
    new = data(await enos.call("POST", D24, {"action": "replaceDevice", "assetId": aid},
                               {"newDeviceKey": "grace-new", "gracePeriod": 60}))
    assert new["deviceKey"] == "grace-new" and (await get(enos, aid))["status"] == "online"
    before = (await services.devices.get(Caller.operator(enos.org_id), DeviceRef(aid))).device
    old_device = replace(before, device_key="grace-old", secret=old["deviceSecret"])
    assert (await services.connectivity.login(signed(old_device), dynamic=True)).grace_end is not None
