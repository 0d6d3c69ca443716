"""The Living app API end to end in-process: accounts, homes, bindings and the eight seed APIs."""

from __future__ import annotations

import hashlib

import pytest

from tests.dialects.conftest import Unexpected
from tests.dialects.living.conftest import World
from thingport.crypto import awss
from thingport.services import events
from thingport.services.devices import DeviceRef

TOKEN = "A331BD82C0FFEE0012345678ABCDEF01"
RANDOM = "000102030405060708090a0b0c0d0e0f"


async def test_session_refresh_and_logout(world: World) -> None:
    u = await world.services.living.create_user(world.caller.org_id, "alice")
    code, _ = await world.services.living.mint_auth_code(u.identity_id)
    from tests.support.living_client import LivingClient

    c = LivingClient(world.http, world.app.app_key, world.app.secret)
    s = await c.sign_in(code)
    assert s["identityId"] == u.identity_id and s["iotTokenExpire"] == 72000 and s["refreshTokenExpire"] == 720000
    again = await c.call("/account/createSessionByAuthCode", {"request": {"authCode": code}}, token=False)
    assert again["code"] == 460 and "authCode" in again["message"]  # single use
    assert (await c.ok("/living/home/query", {"pageNo": 1, "pageSize": 20}))["total"] == 0
    r = await c.ok("/account/checkOrRefreshSession", {"request": {"refreshToken": s["refreshToken"],
                                                                  "identityId": u.identity_id}}, token=False)
    assert r["iotToken"] != s["iotToken"]
    assert (await c.call("/living/home/query", {"pageNo": 1, "pageSize": 20}))["code"] == 401  # old token gone
    reused = await c.call("/account/checkOrRefreshSession", {"request": {"refreshToken": s["refreshToken"]}},
                          token=False)
    assert reused["code"] == 2401 and "refreshToken" in reused["message"]
    c.iot_token = r["iotToken"]
    assert await c.ok("/iotx/account/invalidSession", {"request": {"iotToken": r["iotToken"]}}, token=False) is None
    bad = await c.call("/living/home/query", {"pageNo": 1, "pageSize": 20})
    assert bad["code"] == 401 and "iotToken" in bad["message"] and bad["data"] is None


async def test_expired_iot_token_is_401(world: World) -> None:
    c = await world.user("bob")
    from sqlalchemy import update

    from thingport.store.schema import living_sessions
    async with world.services.core.db.write() as conn:
        await conn.execute(update(living_sessions).values(token_expire=1))
    r = await c.call("/living/home/query", {"pageNo": 1, "pageSize": 20})
    assert r["code"] == 401 and "expired" in r["message"]


async def test_operator_logout_ends_sessions(world: World) -> None:
    c = await world.user("carol")
    assert await world.services.living.end_sessions(c.identity_id) == 1
    assert (await c.call("/living/home/query", {"pageNo": 1, "pageSize": 20}))["code"] == 401


async def test_homes(world: World) -> None:
    c = await world.user("dave")
    second = await c.ok("/living/home/create", {"name": "Office"})
    q = await c.ok("/living/home/query", {"pageNo": 1, "pageSize": 20})
    assert q["total"] == 2 and [h["name"] for h in q["data"]] == ["dave home", "Office"]
    assert [h["currentHome"] for h in q["data"]] == [True, False] and q["data"][0]["myRole"] == "ADMIN"
    g = await c.ok("/living/home/get", {"homeId": second})
    assert g["name"] == "Office" and g["deviceCnt"] == 0
    for params, field in [({"name": ""}, "name"), ({"name": "x" * 21}, "name"), ({"name": 5}, "params.name")]:
        r = await c.call("/living/home/create", params)
        assert r["code"] == 460 and field in r["message"], r
    r = await c.call("/living/home/query", {"pageNo": 1, "pageSize": 21})
    assert r["code"] == 460 and "pageSize" in r["message"]
    other = await world.user("erin")
    r = await other.call("/living/home/get", {"homeId": second})
    assert r["code"] == 460 and "homeId" in r["message"]


async def test_token_bind_story(world: World) -> None:
    pk = await world.product(net_type=3, category_key="Light", category_name="Lamp", category_id=14)
    lamp = await world.device(pk, "lamp-1", online=True)
    c = await world.user("frank")
    # the device reports its token over MQTT (the front door calls this)
    await world.services.provisioning.report_bind_token(lamp, TOKEN)
    checked = await c.ok("/awss/token/check", {"token": TOKEN}, api_ver="1.0.9")
    assert checked == {"productKey": pk, "deviceName": "lamp-1", "iotId": lamp}
    filtered = await c.ok("/awss/enrollee/product/filter", {"iotDevices": [
        {"productKey": pk, "deviceName": "lamp-1"}, {"productKey": pk, "deviceName": "nope"}]}, api_ver="1.0.7")
    assert filtered == [{"productKey": pk, "deviceName": "lamp-1", "productName": "Meter", "netType": 3,
                         "nodeType": 0, "categoryKey": "Light", "categoryName": "Lamp", "categoryId": 14}]
    iot_id = await c.ok("/awss/token/user/bind", {"homeId": c.home, "productKey": pk, "deviceName": "lamp-1",
                                                  "token": TOKEN}, api_ver="1.0.8")
    assert iot_id == lamp
    [note] = world.kinds(events.LivingBindNotify)
    assert note.asset_id == lamp and note.payload.operation == "Bind" and note.payload.owned == 1
    assert note.payload.product_key == pk and note.payload.device_key == "lamp-1"
    # the token is used up; a bound device is filtered out unless reset
    r = await c.call("/awss/token/check", {"token": TOKEN})
    assert r["code"] == 6608 and r["message"] == "token not found"
    assert await c.ok("/awss/enrollee/product/filter", {"iotDevices": [{"productKey": pk, "deviceName": "lamp-1"}]}) \
        == []
    assert len(await c.ok("/awss/enrollee/product/filter", {"iotDevices": [
        {"productKey": pk, "deviceName": "lamp-1"}], "reset": True})) == 1
    listed = await c.ok("/uc/listBindingByAccount", {"pageNo": 1, "pageSize": 20}, api_ver="1.0.8")
    assert listed["total"] == 1
    b = listed["data"][0]
    assert (b["iotId"], b["owned"], b["netType"], b["nodeType"], b["status"]) == (lamp, 1, "NET_WIFI", "DEVICE", 1)
    home = await c.ok("/living/home/get", {"homeId": c.home})
    assert (home["deviceCnt"], home["deviceOnlineCnt"]) == (1, 1)


async def test_only_the_latest_unexpired_token_binds(world: World) -> None:
    pk = await world.product()
    lamp = await world.device(pk, "lamp-2")
    c = await world.user("gina")
    await world.services.provisioning.report_bind_token(lamp, TOKEN)
    await world.services.provisioning.report_bind_token(lamp, "B" * 32)
    params = {"homeId": c.home, "productKey": pk, "deviceName": "lamp-2", "token": TOKEN}
    assert (await c.call("/awss/token/user/bind", params))["code"] == 6608
    assert (await c.call("/awss/token/user/bind", {**params, "deviceName": "lamp-x", "token": "B" * 32}))["code"] \
        == 6608
    from sqlalchemy import update

    from thingport.store.schema import living_bind_tokens
    async with world.services.core.db.write() as conn:
        await conn.execute(update(living_bind_tokens).values(expire_time=1))
    assert (await c.call("/awss/token/user/bind", {**params, "token": "b" * 32}))["code"] == 6608
    r = await c.call("/awss/token/user/bind", {**params, "token": None})
    assert r["code"] == 460 and "token" in r["message"]
    with pytest.raises(Exception, match=r"params\.token"):
        await world.services.provisioning.report_bind_token(lamp, "short")


async def test_time_window_bind(world: World) -> None:
    pk = await world.product(bind_window_s=60)
    plug = await world.device(pk, "plug-1", online=True)
    await world.device(pk, "plug-off")
    c = await world.user("hank")
    params = {"homeId": c.home, "productKey": pk, "deviceName": "plug-1"}
    assert await c.ok("/awss/time/window/user/bind", params, api_ver="1.0.8") == plug
    r = await c.call("/awss/time/window/user/bind", {**params, "deviceName": "plug-off"})
    assert r["code"] == 6618 and "deviceName" in r["message"]
    from sqlalchemy import update

    from thingport.store.schema import devices
    async with world.services.core.db.write() as conn:  # connected 61 s ago: past the product's 60 s window
        await conn.execute(update(devices).where(devices.c.asset_id == plug)
                           .values(last_online_time=devices.c.last_online_time - 61_000))
    other = await world.user("ivan")
    r = await other.call("/awss/time/window/user/bind", {**params, "homeId": other.home})
    assert r["code"] == 6618
    await world.services.devices.mark_disconnected(plug)
    await world.services.devices.mark_connected(plug)  # a reconnect is a power-on: the window opens again
    r = await other.call("/awss/time/window/user/bind", {**params, "homeId": other.home})
    assert r["code"] == 403 and "another account" in r["message"]  # but it has an owner
    r = await c.call("/awss/time/window/user/bind", {**params, "productKey": "nopk"})
    assert r["code"] == 5005 and "productKey" in r["message"]


async def test_enrollee_discovery_cipher_and_checkin(world: World) -> None:
    reg_pk = await world.product()
    enr_pk = await world.product()
    dev_pk = await world.product(status="development")
    registrar = await world.device(reg_pk, "hub-1", online=True)
    enrollee = await world.device(enr_pk, "bulb-1")
    dev_enr = await world.device(dev_pk, "proto-1")
    c = await world.user("judy")
    await c.ok("/awss/time/window/user/bind", {"homeId": c.home, "productKey": reg_pk, "deviceName": "hub-1"})
    svc = world.services
    enr_secret = (await svc.products.get(world.caller, enr_pk)).secret
    dev_secret = (await svc.products.get(world.caller, dev_pk)).secret
    payloads = [awss.build_enrollee_ie("bulb-1", enr_pk, bytes(16), enr_secret),
                awss.build_enrollee_ie("proto-1", dev_pk, bytes(16), dev_secret),
                awss.build_enrollee_ie("bulb-1", enr_pk, bytes(16), "forged"), "zz"]
    accepted = await svc.provisioning.report_enrollees(registrar, payloads, ssid="home", bssid="AA:BB:CC:DD:EE:FF",
                                                       rssi=-40)
    assert accepted == [{"productKey": enr_pk, "deviceName": "bulb-1", "timeout": 60},
                        {"productKey": dev_pk, "deviceName": "proto-1", "timeout": 60}]
    got = await c.ok("/awss/enrollee/list/get", {"pageNum": 1, "pageSize": 99}, api_ver="1.0.7")
    assert got["totalNum"] == 1  # development products only with productStatusEnv=dev
    item = got["items"][0]
    assert {k: item[k] for k in ("regIotId", "regProductKey", "regDeviceName", "enrolleeIotId", "enrolleeProductKey",
                                 "enrolleeDeviceName", "bssid", "ssid", "rssi", "type", "status")} == {
        "regIotId": registrar, "regProductKey": reg_pk, "regDeviceName": "hub-1", "enrolleeIotId": enrollee,
        "enrolleeProductKey": enr_pk, "enrolleeDeviceName": "bulb-1", "bssid": "AA:BB:CC:DD:EE:FF", "ssid": "home",
        "rssi": "-40", "type": 0, "status": 0}
    assert item["regProductName"] == item["enrolleeProductName"] == "Meter" and item["gmtCreate"] > 0
    dev = await c.ok("/awss/enrollee/list/get", {"pageNum": 1, "pageSize": 10, "productStatusEnv": "dev"})
    assert dev["totalNum"] == 2 and dev_enr in {i["enrolleeIotId"] for i in dev["items"]}
    other = await world.user("kim")  # not bound to the registrar: sees nothing
    assert (await other.ok("/awss/enrollee/list/get", {"pageNum": 1, "pageSize": 10}))["totalNum"] == 0
    # the app asks for the enrollee's key: the registrar is told to check it in
    key = await c.ok("/awss/cipher/get", {"deviceInfoForCipher": {
        "productKey": enr_pk, "deviceName": "bulb-1", "cipherType": 3, "random": RANDOM, "params": {}}})
    assert key == hashlib.sha256(enr_secret.encode() + b"," + bytes.fromhex(RANDOM)).hexdigest()
    [checkin] = world.kinds(events.LivingEnrolleeCheckin)
    assert checkin.asset_id == registrar and checkin.payload.enrollee == events.CheckinEnrollee(
        product_key=enr_pk, device_name="bulb-1", timeout=60)
    assert (await c.ok("/awss/enrollee/list/get", {"pageNum": 1, "pageSize": 10}))["items"][0]["status"] == 1
    # the registrar gets the same key on thing/cipher/get
    from thingport.services.provisioning import CipherRequest
    reply = await svc.provisioning.registrar_cipher(registrar, CipherRequest(enr_pk, "bulb-1", 3, RANDOM))
    assert reply == {"productKey": enr_pk, "deviceName": "bulb-1", "secret": key}


@pytest.mark.parametrize(("info", "field"), [
    ({"cipherType": 5}, "cipherType"), ({"random": "00"}, "random"), ({"random": "zz" * 16}, "random"),
    ({"cipherType": 6, "params": {}}, "params.mac"), ({"cipherType": 4, "deviceName": None}, "deviceName"),
    ({"productKey": None}, "productKey"), ({"cipherType": "3"}, "cipherType"),
])
async def test_cipher_errors_are_460_naming_the_field(world: World, info: dict[str, object], field: str) -> None:
    pk = await world.product()
    c = await world.user("leo")
    base = {"productKey": pk, "cipherType": 3, "random": RANDOM, "params": {}}
    r = await c.call("/awss/cipher/get", {"deviceInfoForCipher": {**base, **info}})
    assert r["code"] == 460 and field in r["message"], r


async def test_cipher_types_4_6_7(world: World) -> None:
    pk = await world.product()
    d = await world.device(pk, "ble-1")
    c = await world.user("mia")
    ds = (await world.services.devices.get(world.caller, DeviceRef(asset_id=d))).device.secret
    ps = (await world.services.products.get(world.caller, pk)).secret
    rnd, mac = bytes.fromhex(RANDOM), bytes.fromhex("a0b1c2d3e4f5")
    base = {"productKey": pk, "deviceName": "ble-1", "random": RANDOM, "params": {"mac": "A0:B1:C2:D3:E4:F5"}}
    for ctype, expected in [(4, ds.encode() + b"," + rnd), (6, ps.encode() + b"," + mac + b"," + rnd),
                            (7, ds.encode() + b"," + mac + b"," + rnd)]:
        got = await c.ok("/awss/cipher/get", {"deviceInfoForCipher": {**base, "cipherType": ctype}})
        assert got == hashlib.sha256(expected).hexdigest()
    r = await c.call("/awss/cipher/get", {"deviceInfoForCipher": {**base, "cipherType": 4, "deviceName": "none"}})
    assert r["code"] == 6100


async def test_gateway_permit_and_topo_remove(world: World) -> None:
    gw_pk = await world.product(gateway=True)
    sub_pk = await world.product(require_permit_join=True)
    gw = await world.device(gw_pk, "gw-1", online=True)
    sub = await world.device(sub_pk, "sensor-1")
    owner = await world.user("nick")
    await owner.ok("/awss/time/window/user/bind", {"homeId": owner.home, "productKey": gw_pk, "deviceName": "gw-1"})
    prov = world.services.provisioning
    with pytest.raises(Exception, match="does not permit"):
        await prov.check_join(gw, sub_pk)
    assert await owner.ok("/thing/gateway/permit", {"iotId": gw, "productKey": sub_pk, "time": 60},
                          api_ver="1.0.2") is None
    [permit] = world.kinds(events.LivingGatewayPermit)
    assert permit.asset_id == gw and permit.payload.permit == events.JoinPermit(product_key=sub_pk, time=60)
    assert permit.payload.product_key == gw_pk and permit.payload.device_key == "gw-1"
    await prov.check_join(gw, sub_pk)
    await owner.ok("/thing/gateway/permit", {"iotId": gw, "productKey": sub_pk, "time": 65535})
    with pytest.raises(Exception, match="does not permit"):
        await prov.check_join(gw, sub_pk)
    await owner.ok("/thing/gateway/permit", {"iotId": gw, "time": 0})
    await prov.check_join(gw, sub_pk)
    for params, code, field in [({"iotId": gw, "time": 65536}, 460, "time"), ({"iotId": gw}, 460, "time"),
                                ({"iotId": gw, "time": "x"}, 460, "params.time"),
                                ({"iotId": gw, "productKey": "nopk", "time": 1}, 5005, "productKey"),
                                ({"iotId": "nope", "time": 1}, 6100, "iotId"), ({"time": 1}, 460, "iotId")]:
        r = await owner.call("/thing/gateway/permit", params)
        assert r["code"] == code and field in r["message"], (params, r)
    # the sub-device joins (EnOS topology, same relation), then the owner removes it
    await world.services.topology.add_sub_devices(world.caller, DeviceRef(asset_id=gw),
                                                  [DeviceRef(asset_id=sub)])
    world.events.clear()
    r = await owner.call("/thing/topo/remove", {"iotId": gw, "subIotid": "nope"})
    assert r["code"] == 6100 and "subIotId" in r["message"]
    assert await owner.ok("/thing/topo/remove", {"iotId": gw, "subIotId": sub}, api_ver="1.0.2") is None
    [change] = world.kinds(events.LivingTopoChange)
    assert change.asset_id == gw and change.payload.status == 1
    assert change.payload.sub_list == [events.DeviceName(product_key=sub_pk, device_name="sensor-1")]
    [detached] = world.kinds(events.DeviceDetached)
    assert detached.asset_id == sub and isinstance(detached.payload, events.SESSION_ENDING)
    [topo] = world.kinds(events.TopologyChanged)
    assert topo.payload.removed == [sub]
    view = await world.services.devices.get(world.caller, DeviceRef(asset_id=sub))
    assert view.device.gateway_asset_id is None
    r = await owner.call("/thing/topo/remove", {"iotId": gw, "subIotId": sub})
    assert r["code"] == 460 and "subIotId" in r["message"]
    r = await owner.call("/thing/gateway/permit", {"iotId": sub, "time": 1})
    assert r["code"] == 2065  # not bound to the sub-device


async def test_other_users_cannot_touch_devices(world: World) -> None:
    gw_pk = await world.product(gateway=True)
    gw = await world.device(gw_pk, "gw-2", online=True)
    owner, member, stranger = await world.user("olga"), await world.user("pete"), await world.user("quin")
    await owner.ok("/awss/time/window/user/bind", {"homeId": owner.home, "productKey": gw_pk, "deviceName": "gw-2"})
    await world.services.living.share(world.end_user(owner), gw, member.identity_id)
    for who, code in [(stranger, 2065), (member, 2066)]:
        assert (await who.call("/thing/gateway/permit", {"iotId": gw, "time": 10}))["code"] == code
        assert (await who.call("/thing/topo/remove", {"iotId": gw, "subIotId": gw}))["code"] == code
    assert (await stranger.call("/uc/unbindAccountAndDev", {"iotId": gw}))["code"] == 2065
    assert (await stranger.call("/uc/listBindingByDev", {"iotId": gw, "pageNo": 1, "pageSize": 10}))["code"] == 2065
    users = await owner.ok("/uc/listBindingByDev", {"iotId": gw, "pageNo": 1, "pageSize": 10})
    assert users["total"] == 2 and {u["owned"] for u in users["data"]} == {0, 1}
    assert (await member.ok("/uc/listBindingByAccount", {"pageNo": 1, "pageSize": 10, "owned": 0}))["total"] == 1
    # a member unbinds only themselves
    world.events.clear()
    await member.ok("/uc/unbindAccountAndDev", {"iotId": gw}, api_ver="1.0.9")
    assert (await owner.ok("/uc/listBindingByDev", {"iotId": gw, "pageNo": 1, "pageSize": 10}))["total"] == 1
    [unbind] = world.kinds(events.LivingBindNotify)
    assert unbind.payload.operation == "Unbind" and unbind.payload.identity_id == member.identity_id


async def test_owner_unbind_removes_everyone_and_sub_devices(world: World) -> None:
    gw_pk, sub_pk = await world.product(gateway=True), await world.product()
    gw, sub = await world.device(gw_pk, "gw-3", online=True), await world.device(sub_pk, "sub-3", online=True)
    await world.services.topology.add_sub_devices(world.caller, DeviceRef(asset_id=gw), [DeviceRef(asset_id=sub)])
    owner, member = await world.user("rita"), await world.user("sam")
    for dn, pk in (("gw-3", gw_pk), ("sub-3", sub_pk)):
        await owner.ok("/awss/time/window/user/bind", {"homeId": owner.home, "productKey": pk, "deviceName": dn})
    await world.services.living.share(world.end_user(owner), gw, member.identity_id)
    r = await member.call("/uc/unbindAccountAndDev", {"iotId": gw, "unbindSubdevice": True})
    assert r["code"] == 2066 and "unbindSubdevice" in r["message"]
    world.events.clear()
    await owner.ok("/uc/unbindAccountAndDev", {"iotId": gw, "unbindSubdevice": True})
    assert (await owner.ok("/uc/listBindingByAccount", {"pageNo": 1, "pageSize": 10}))["total"] == 0
    assert (await member.ok("/uc/listBindingByAccount", {"pageNo": 1, "pageSize": 10}))["total"] == 0
    assert {(e.asset_id, e.payload.identity_id) for e in world.kinds(events.LivingBindNotify)} == {
        (gw, owner.identity_id), (gw, member.identity_id), (sub, owner.identity_id)}


async def test_cross_organization_access_is_refused(world: World) -> None:
    pk = await world.product(gateway=True)
    gw = await world.device(pk, "gw-x", online=True)
    await world.services.provisioning.report_bind_token(gw, TOKEN)
    other_org = await world.services.accounts.create_org("Other", "o-other")
    other_app = await world.services.accounts.create_app(other_org.org_id, "other")
    stranger_user = await world.services.living.create_user(other_org.org_id, "zed")
    code, _ = await world.services.living.mint_auth_code(stranger_user.identity_id)
    from tests.support.living_client import LivingClient
    stranger = LivingClient(world.http, other_app.app_key, other_app.secret)
    # an auth code of org A does not sign in through an app of org B, and vice versa
    mine = LivingClient(world.http, world.app.app_key, world.app.secret)
    assert (await mine.call("/account/createSessionByAuthCode", {"request": {"authCode": code}},
                            token=False))["code"] == 460
    code, _ = await world.services.living.mint_auth_code(stranger_user.identity_id)
    await stranger.sign_in(code)
    home = await stranger.ok("/living/home/create", {"name": "elsewhere"})
    assert (await stranger.call("/awss/token/check", {"token": TOKEN}))["code"] == 6608
    r = await stranger.call("/awss/token/user/bind", {"homeId": home, "productKey": pk, "deviceName": "gw-x",
                                                      "token": TOKEN})
    assert r["code"] == 6608
    r = await stranger.call("/awss/time/window/user/bind", {"homeId": home, "productKey": pk, "deviceName": "gw-x"})
    assert r["code"] == 5005
    assert (await stranger.call("/thing/gateway/permit", {"iotId": gw, "time": 1}))["code"] == 6100
    assert (await stranger.call("/thing/topo/remove", {"iotId": gw, "subIotId": gw}))["code"] == 6100
    assert await stranger.ok("/awss/enrollee/product/filter", {"iotDevices": [
        {"productKey": pk, "deviceName": "gw-x"}], "productStatusEnv": "dev"}) == []
    r = await stranger.call("/awss/cipher/get", {"deviceInfoForCipher": {"productKey": pk, "cipherType": 3,
                                                                         "random": RANDOM}})
    assert r["code"] == 5005
    # an iotToken of org B is not accepted through org A's app
    mine.iot_token = stranger.iot_token
    assert (await mine.call("/living/home/query", {"pageNo": 1, "pageSize": 10}))["code"] == 401


async def test_paging_limits_and_deleted_devices(world: World) -> None:
    c = await world.user("tess")
    for params, field in [({"pageNum": 1, "pageSize": 101}, "pageSize"), ({"pageNum": 0, "pageSize": 5}, "pageNum"),
                          ({"pageSize": 5}, "pageNum"), ({"pageNum": 1, "pageSize": 5, "productStatusEnv": "x"},
                                                         "productStatusEnv")]:
        r = await c.call("/awss/enrollee/list/get", params)
        assert r["code"] == 460 and field in r["message"], r
    r = await c.call("/awss/enrollee/product/filter", {"iotDevices": [{"productKey": "p"}]})
    assert r["code"] == 460 and "iotDevices[0].deviceName" in r["message"]
    assert (await c.call("/awss/enrollee/product/filter", {"iotDevices": []}))["code"] == 460
    pk = await world.product()
    d = await world.device(pk, "gone-1", online=True)
    await c.ok("/awss/time/window/user/bind", {"homeId": c.home, "productKey": pk, "deviceName": "gone-1"})
    await world.services.devices.delete(world.caller, DeviceRef(asset_id=d))  # through EnOS, say
    assert (await c.ok("/uc/listBindingByAccount", {"pageNo": 1, "pageSize": 10}))["total"] == 0
    assert (await c.call("/uc/unbindAccountAndDev", {"iotId": d}))["code"] == 6100


async def test_an_unexpected_failure_is_500_logged_once(world: World, unexpected: Unexpected) -> None:
    alice = await world.user("alice")
    unexpected.fail(world.services.living, "homes")
    r = await alice.call("/living/home/query", {"pageNo": 1, "pageSize": 1})
    assert (r["code"], r["message"], r["localizedMsg"], r["data"]) == (500, "service error", "service error", None)
    assert unexpected.logged() == f"request {r['id']} failed"
