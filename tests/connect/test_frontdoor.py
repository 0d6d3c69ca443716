"""Devices logging in and living on the embedded broker, as a real MQTT client sees it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.connect.conftest import Door, MakeDevice, request
from tests.support.device_login import (
    alink_connect,
    alink_sign,
    alink_sub,
    enos_connect,
    enos_sub_sign,
    oceanconnect_connect,
)
from tests.support.mqtt_client import Device as Client
from thingport.domain.models import Device, DeviceStatus
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def status_is(services: Services, caller: Caller, asset_id: str, status: DeviceStatus) -> None:
    async def check() -> bool:
        return (await services.devices.get(caller, DeviceRef(asset_id=asset_id))).device.status is status
    await eventually(check)


async def connect(door: Door, fields: tuple[str, str, str]) -> tuple[Client, int]:
    client = await door.client(*fields)
    return client, await client.connect()


async def reply_to(client: Client, topic: str) -> dict[str, Any]:
    while True:
        msg = await client.receive()
        if msg.topic == topic:
            return dict(json.loads(msg.payload))


@pytest.mark.parametrize("method", ["sha256", "hmacsha256", "sha1", "hmacsha1", "md5", "hmacmd5"])
async def test_enos_login_activates_and_state_follows_the_connection(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice,
        method: str) -> None:
    dev = await make_device(service_product)
    client, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret, method=method,
                                                  ts="1690000000000.123"))
    assert rc == 0
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    view = (await services.devices.get(caller, DeviceRef(asset_id=dev.asset_id))).device
    assert view.active_time and view.last_online_time
    await client.close()
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)
    assert (await services.devices.get(caller, DeviceRef(asset_id=dev.asset_id))).device.last_offline_time


async def test_alink_login_with_hmac_password(door: Door, services: Services, caller: Caller,
                                              service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    client, rc = await connect(door, alink_connect(service_product, dev.device_key, dev.secret))
    assert rc == 0
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await client.close()


async def test_oceanconnect_login_by_device_id(door: Door, services: Services, caller: Caller,
                                               service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    client, rc = await connect(door, oceanconnect_connect(dev.asset_id, dev.secret))
    assert rc == 0
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await client.close()
    # sigType 1 checks the hour; sigType 0 does not
    _, rc = await connect(door, oceanconnect_connect(dev.asset_id, dev.secret, ts="2018072417"))
    assert rc == 4
    ok, rc = await connect(door, oceanconnect_connect(dev.asset_id, dev.secret, ts="2018072417", sig_type=0))
    assert rc == 0
    await ok.close()


async def test_refusals_reveal_nothing_and_repeated_failures_are_throttled(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    other = await make_device(service_product)
    assert (await connect(door, enos_connect(service_product, dev.device_key, "wrong")))[1] == 4
    assert (await connect(door, enos_connect(service_product, "nobody", dev.secret)))[1] == 4
    await services.devices.set_enabled(caller, DeviceRef(asset_id=other.asset_id), False)
    assert (await connect(door, enos_connect(service_product, other.device_key, other.secret)))[1] == 4
    assert (await connect(door, ("no-scheme", "x", "y")))[1] == 2
    for _ in range(4):
        await connect(door, enos_connect(service_product, dev.device_key, "wrong"))
    # five failures of this address + user name: even the right password is refused for now
    assert (await connect(door, enos_connect(service_product, dev.device_key, dev.secret)))[1] == 5
    door.door.throttle.succeeded(("127.0.0.1", f"{dev.device_key}&{service_product}"))
    client, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    assert rc == 0
    await client.close()


async def test_a_device_uses_only_its_own_topics(door: Door, service_product: str, make_device: MakeDevice) -> None:
    a = await make_device(service_product)
    b = await make_device(service_product)
    ca, _ = await connect(door, enos_connect(service_product, a.device_key, a.secret))
    cb, _ = await connect(door, enos_connect(service_product, b.device_key, b.secret))
    assert await ca.subscribe((f"/sys/{service_product}/{a.device_key}/#", 1)) == [1]
    assert await ca.subscribe((f"/sys/{service_product}/{b.device_key}/#", 1)) == [0x80]
    assert await ca.subscribe(("/sys/+/+/#", 1)) == [0x80]
    assert await cb.subscribe((f"/sys/{service_product}/{b.device_key}/thing/event/x", 0)) == [0]
    await ca.publish(f"/sys/{service_product}/{b.device_key}/thing/event/x", b"{}")
    await cb.nothing_more()
    await ca.close()
    await cb.close()


async def test_replace_closes_the_session_and_only_the_new_secret_works(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    client, _ = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    view = await services.devices.replace_key(caller, DeviceRef(asset_id=dev.asset_id), "new-key")
    assert await client.wait_disconnected()
    await status_is(services, caller, dev.asset_id, DeviceStatus.INACTIVE)
    assert (await connect(door, enos_connect(service_product, dev.device_key, dev.secret)))[1] == 4
    assert (await connect(door, enos_connect(service_product, "new-key", dev.secret)))[1] == 4
    fresh, rc = await connect(door, enos_connect(service_product, "new-key", view.device.secret))
    assert rc == 0
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await fresh.close()


@pytest.mark.parametrize("action", ["disable", "delete"])
async def test_disable_and_delete_are_notified_then_the_session_closes(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice,
        action: str) -> None:
    dev = await make_device(service_product)
    client, _ = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    ref = DeviceRef(asset_id=dev.asset_id)
    if action == "disable":
        await services.devices.set_enabled(caller, ref, False)
    else:
        await services.devices.delete(caller, ref)
    msg = await client.receive()
    assert msg.topic == f"/sys/{service_product}/{dev.device_key}/thing/{action}"
    assert json.loads(msg.payload)["method"] == f"thing.{action}"
    assert await client.wait_disconnected()
    assert (await connect(door, enos_connect(service_product, dev.device_key, dev.secret)))[1] == 4


async def test_a_second_login_of_the_same_device_replaces_the_first(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    first, _ = await connect(door, enos_connect(service_product, dev.device_key, dev.secret, ts="1"))
    second, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret, ts="2"))
    assert rc == 0
    assert await first.wait_disconnected()
    await asyncio.sleep(0.1)
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await second.close()
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)


async def test_enos_dynamic_activation_pushes_the_secret_once(
        door: Door, services: Services, caller: Caller, dynamic_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(dynamic_product)
    product = await services.products.get(caller, dynamic_product)
    client, rc = await connect(door, enos_connect(dynamic_product, dev.device_key, product.secret, mode=3))
    assert rc == 0
    msg = await client.receive()
    assert msg.topic == f"/ext/session/{dynamic_product}/{dev.device_key}/thing/activate/info"
    body = json.loads(msg.payload)
    assert body["method"] == "thing.activate.info"
    assert body["params"] == {"assetId": dev.asset_id, "productKey": dynamic_product,
                              "deviceKey": dev.device_key, "deviceSecret": dev.secret}
    await client.publish(f"/ext/session/{dynamic_product}/{dev.device_key}/thing/activate/info_reply",
                         json.dumps({"id": body["id"], "code": 200, "data": None}).encode())
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await client.close()
    # activated: the product secret no longer works, the device secret does
    assert (await connect(door, enos_connect(dynamic_product, dev.device_key, product.secret, mode=3)))[1] == 4
    static, rc = await connect(door, enos_connect(dynamic_product, dev.device_key, dev.secret))
    assert rc == 0
    await static.close()


async def test_product_secret_is_refused_where_dynamic_activation_is_off(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    product = await services.products.get(caller, service_product)
    assert (await connect(door, enos_connect(service_product, dev.device_key, product.secret, mode=3)))[1] == 4


async def test_alink_dynamic_registration_over_mqtt(
        door: Door, services: Services, caller: Caller, dynamic_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(dynamic_product)
    product = await services.products.get(caller, dynamic_product)
    sign = alink_sign(product.secret, f"deviceName{dev.device_key}productKey{dynamic_product}random42", "sha256")
    client = await door.client(
        f"{dev.device_key}.{dynamic_product}|random=42,authType=register,securemode=2,signmethod=hmacsha256|",
        f"{dev.device_key}&{dynamic_product}", sign)
    assert await client.connect() == 0
    msg = await client.receive()
    assert msg.topic == "/ext/register"
    assert json.loads(msg.payload) == {"productKey": dynamic_product, "deviceName": dev.device_key,
                                       "deviceSecret": dev.secret}
    assert await client.wait_disconnected()
    # registering is not logging in: the device is still inactive
    assert (await services.devices.get(caller, DeviceRef(asset_id=dev.asset_id))).device.status \
        is DeviceStatus.INACTIVE
    bad = await door.client(
        f"{dev.device_key}.{dynamic_product}|random=43,authType=register,securemode=2,signmethod=hmacsha256|",
        f"{dev.device_key}&{dynamic_product}", sign)
    assert await bad.connect() == 4


async def enos_gateway(door: Door, gw: Device, pk: str) -> Client:
    client, rc = await connect(door, enos_connect(pk, gw.device_key, gw.secret))
    assert rc == 0
    return client


async def test_enos_gateway_topology_and_sub_device_sessions(
        door: Door, services: Services, caller: Caller, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    stranger = await make_device(service_product)
    client = await enos_gateway(door, gw, gateway_product)
    base = f"/sys/{gateway_product}/{gw.device_key}"
    ts = "1700000000000"
    entry = {"productKey": service_product, "deviceKey": sub.device_key, "clientId": "c1", "timestamp": ts,
             "signMethod": "sha256", "sign": enos_sub_sign(service_product, sub.device_key, sub.secret,
                                                            cid="c1", ts=ts)}
    bad = {**entry, "deviceKey": stranger.device_key}
    await client.publish(f"{base}/thing/topo/add", request("thing.topo.add", [bad]), 1)
    r = await reply_to(client, f"{base}/thing/topo/add_reply")
    assert r["code"] == 401 and "sign" in r["message"]
    await client.publish(f"{base}/thing/topo/add", request("thing.topo.add", [entry], "2"), 1)
    r = await reply_to(client, f"{base}/thing/topo/add_reply")
    assert (r["id"], r["code"]) == ("2", 200), r
    # the REST topology sees it
    assert (await services.topology.gateway_of(caller, DeviceRef(asset_id=sub.asset_id))).device.asset_id \
        == gw.asset_id
    await client.publish(f"{base}/thing/topo/get", request("thing.topo.get", {}, "3"))
    r = await reply_to(client, f"{base}/thing/topo/get_reply")
    assert r["data"] == [{"productKey": service_product, "deviceKey": sub.device_key}]

    session = f"/ext/session/{gateway_product}/{gw.device_key}"
    await client.publish(f"{session}/combine/login", request("combine.login", {**entry, "secureMode": "2"}, "4"))
    r = await reply_to(client, f"{session}/combine/login_reply")
    assert r["code"] == 200 and r["data"]["assetId"] == sub.asset_id, r
    await status_is(services, caller, sub.asset_id, DeviceStatus.ONLINE)
    # the gateway may now use the sub-device's topics
    assert await client.subscribe((f"/sys/{service_product}/{sub.device_key}/#", 0)) == [0]
    await client.publish(f"{session}/combine/logout",
                         request("combine.logout", {"productKey": service_product, "deviceKey": sub.device_key}))
    await reply_to(client, f"{session}/combine/logout_reply")
    await status_is(services, caller, sub.asset_id, DeviceStatus.OFFLINE)

    batch = {"clientId": "login.batch", "timestamp": ts, "signMethod": "sha256", "subDevices": [
        {"productKey": service_product, "deviceKey": sub.device_key, "secureMode": "2",
         "sign": enos_sub_sign(service_product, sub.device_key, sub.secret, cid="login.batch", ts=ts)},
        {"productKey": service_product, "deviceKey": stranger.device_key, "secureMode": "2", "sign": "00"}]}
    await client.publish(f"{session}/combine/login/batch", request("combine.login.batch", batch, "5"))
    r = await reply_to(client, f"{session}/combine/login/batch_reply")
    assert [d["deviceKey"] for d in r["data"]["loginedSubDevices"]] == [sub.device_key]
    assert [d["deviceKey"] for d in r["data"]["failedSubDevices"]] == [stranger.device_key]
    await status_is(services, caller, sub.asset_id, DeviceStatus.ONLINE)

    # disabling the sub-device tells the gateway and logs the sub-device out
    await services.devices.set_enabled(caller, DeviceRef(asset_id=sub.asset_id), False)
    msg = await client.receive()
    assert msg.topic == f"{session}/combine/disable"
    assert json.loads(msg.payload)["params"] == {"productKey": service_product, "deviceKey": sub.device_key}
    await services.devices.set_enabled(caller, DeviceRef(asset_id=sub.asset_id), True)
    assert (await client.receive()).topic == f"{session}/combine/enable"

    await client.publish(f"{base}/thing/topo/delete",
                         request("thing.topo.delete", [{"productKey": service_product, "deviceKey": sub.device_key}]))
    r = await reply_to(client, f"{base}/thing/topo/delete_reply")
    assert r["code"] == 200
    assert (await services.devices.get(caller, DeviceRef(asset_id=sub.asset_id))).device.gateway_asset_id is None
    await client.close()


async def test_gateway_disconnect_takes_its_sub_devices_offline(
        door: Door, services: Services, caller: Caller, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    await services.topology.add_sub_devices(caller, DeviceRef(asset_id=gw.asset_id),
                                            [DeviceRef(asset_id=sub.asset_id)])
    client = await enos_gateway(door, gw, gateway_product)
    session = f"/ext/session/{gateway_product}/{gw.device_key}"
    params = {"productKey": service_product, "deviceKey": sub.device_key, "clientId": "c", "timestamp": "1",
              "signMethod": "sha1", "sign": enos_sub_sign(service_product, sub.device_key, sub.secret,
                                                          cid="c", ts="1", method="sha1")}
    await client.publish(f"{session}/combine/login", request("combine.login", params))
    assert (await reply_to(client, f"{session}/combine/login_reply"))["code"] == 200
    await status_is(services, caller, sub.asset_id, DeviceStatus.ONLINE)
    await client.close()
    await status_is(services, caller, sub.asset_id, DeviceStatus.OFFLINE)
    await status_is(services, caller, gw.asset_id, DeviceStatus.OFFLINE)


async def test_sub_device_outside_the_topology_cannot_log_in(
        door: Door, gateway_product: str, service_product: str, make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    client = await enos_gateway(door, gw, gateway_product)
    session = f"/ext/session/{gateway_product}/{gw.device_key}"
    params = {"productKey": service_product, "deviceKey": sub.device_key, "clientId": "c", "timestamp": "1",
              "signMethod": "sha256", "sign": enos_sub_sign(service_product, sub.device_key, sub.secret,
                                                            cid="c", ts="1")}
    await client.publish(f"{session}/combine/login", request("combine.login", params))
    r = await reply_to(client, f"{session}/combine/login_reply")
    assert r["code"] == 460 and "not a sub-device" in r["message"]
    await client.close()


async def test_malformed_requests_get_error_replies_and_the_connection_stays(
        door: Door, gateway_product: str, make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    client = await enos_gateway(door, gw, gateway_product)
    base = f"/sys/{gateway_product}/{gw.device_key}"
    await client.publish(f"{base}/thing/topo/add", b"not json")
    r = await reply_to(client, f"{base}/thing/topo/add_reply")
    assert r["code"] == 460 and "JSON" in r["message"]
    await client.publish(f"{base}/thing/topo/add", request("thing.topo.add", {"not": "a list"}, "9"))
    r = await reply_to(client, f"{base}/thing/topo/add_reply")
    assert (r["id"], r["code"]) == ("9", 460)
    await client.publish(f"{base}/thing/topo/add", request("thing.topo.add", [{"productKey": 1}] * 31, "10"))
    r = await reply_to(client, f"{base}/thing/topo/add_reply")
    assert r["code"] == 460 and "at most 30" in r["message"]
    await client.publish(f"{base}/thing/topo/get", request("thing.topo.get", {}, "11"))
    assert (await reply_to(client, f"{base}/thing/topo/get_reply"))["code"] == 200
    await client.close()


async def test_enos_device_register_through_a_gateway(
        door: Door, services: Services, caller: Caller, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    client = await enos_gateway(door, gw, gateway_product)
    base = f"/sys/{gateway_product}/{gw.device_key}"
    params = [{"productKey": service_product, "deviceKey": "reg-1", "deviceName": "plain name"},
              {"productKey": service_product, "deviceName": {"defaultValue": "n", "i18nValue": {"zh_CN": "名"}},
               "timezone": "+08:00"}]
    await client.publish(f"{base}/thing/device/register", request("thing.device.register", params))
    r = await reply_to(client, f"{base}/thing/device/register_reply")
    assert r["code"] == 200, r
    assert r["data"][0]["deviceKey"] == "reg-1" and r["data"][0]["deviceSecret"]
    view = await services.devices.get(caller, DeviceRef(asset_id=r["data"][1]["assetId"]))
    assert view.device.name.translations == {"zh_CN": "名"} and view.device.secret == r["data"][1]["deviceSecret"]
    await client.close()


async def test_alink_gateway_topology_and_change_notifications(
        door: Door, services: Services, caller: Caller, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    other = await make_device(service_product)
    client, rc = await connect(door, alink_connect(gateway_product, gw.device_key, gw.secret))
    assert rc == 0
    base = f"/sys/{gateway_product}/{gw.device_key}"
    await client.publish(f"{base}/thing/topo/add",
                         request("thing.topo.add", [alink_sub(service_product, sub.device_key, sub.secret)]), 1)
    r = await reply_to(client, f"{base}/thing/topo/add_reply")
    assert r["code"] == 200 and r["data"] == [{"productKey": service_product, "deviceName": sub.device_key}]
    login = {**alink_sub(service_product, sub.device_key, sub.secret), "cleanSession": "false"}
    session = f"/ext/session/{gateway_product}/{gw.device_key}"
    await client.publish(f"{session}/combine/batch_login",
                         request("combine.batch_login", {"signMethod": "hmacSha256", "deviceList": [login]}))
    r = await reply_to(client, f"{session}/combine/batch_login_reply")
    assert r["code"] == 200 and r["data"] == [{"productKey": service_product, "deviceName": sub.device_key}]
    await status_is(services, caller, sub.asset_id, DeviceStatus.ONLINE)
    # a sub-device unknown to the platform
    await client.publish(f"{base}/thing/topo/add",
                         request("thing.topo.add", [alink_sub(service_product, "ghost", "x")], "7"))
    assert (await reply_to(client, f"{base}/thing/topo/add_reply"))["code"] == 6100
    # changes made elsewhere (REST) reach the gateway on thing/topo/change
    await services.topology.add_sub_devices(caller, DeviceRef(asset_id=gw.asset_id),
                                            [DeviceRef(asset_id=other.asset_id)])
    change = json.loads((await client.receive()).payload)
    assert change["params"] == {"status": 0, "subList": [{"productKey": service_product,
                                                          "deviceName": other.device_key}]}
    await services.topology.remove_sub_devices(caller, DeviceRef(asset_id=gw.asset_id),
                                               [DeviceRef(asset_id=sub.asset_id)])
    msg = await client.receive()
    assert msg.topic == f"{base}/thing/topo/change"
    assert json.loads(msg.payload)["params"]["status"] == 1
    await status_is(services, caller, sub.asset_id, DeviceStatus.OFFLINE)
    await client.close()
