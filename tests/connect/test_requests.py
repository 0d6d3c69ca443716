"""Gateway requests over MQTT on the embedded broker: topology, sub-device sessions, registration,
malformed requests."""

from __future__ import annotations

import json

import pytest

from tests.connect.conftest import Door, MakeDevice, connect, enos_gateway, reply_to, request, status_is
from tests.support.device_login import alink_connect, alink_sub, enos_sub_sign
from thingport.connect import requests
from thingport.domain.models import DeviceStatus
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef


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


async def test_a_request_nested_1000_deep_is_answered_460_without_a_traceback(
        door: Door, gateway_product: str, make_device: MakeDevice, caplog: pytest.LogCaptureFixture) -> None:
    requests.REPORTS.reset()
    gw = await make_device(gateway_product)
    client = await enos_gateway(door, gw, gateway_product)
    base = f"/sys/{gateway_product}/{gw.device_key}"
    deep = b'{"id":"1","params":' + b"[" * 1000 + b"]" * 1000 + b"}"
    for topic in ("thing/topo/add", "thing/device/register", "thing/topo/delete"):
        await client.publish(f"{base}/{topic}", deep, 1)
        r = await reply_to(client, f"{base}/{topic}_reply")
        assert r["code"] == 460 and r["message"].startswith("payload: arrays and objects nested more than 32")
    await client.publish(f"{base}/thing/topo/add", request("thing.topo.add", [{"productKey": 1e300 * 10}]), 1)
    assert (await reply_to(client, f"{base}/thing/topo/add_reply"))["code"] == 460
    assert not [r for r in caplog.records if r.exc_info]
    assert len([r for r in caplog.records if "malformed request" in r.getMessage()]) == 1
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


async def test_a_topology_change_over_mqtt_is_audited_as_the_gateways(
        door: Door, services: Services, gateway_product: str, service_product: str, make_device: MakeDevice) -> None:
    from thingport.store.audit import AuditFilter

    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    client = await enos_gateway(door, gw, gateway_product)
    base = f"/sys/{gateway_product}/{gw.device_key}"
    ts = "1700000000000"
    entry = {"productKey": service_product, "deviceKey": sub.device_key, "clientId": "c1", "timestamp": ts,
             "signMethod": "sha256", "sign": enos_sub_sign(service_product, sub.device_key, sub.secret,
                                                            cid="c1", ts=ts)}
    await client.publish(f"{base}/thing/topo/add", request("thing.topo.add", [entry], "41"), 1)
    assert (await reply_to(client, f"{base}/thing/topo/add_reply"))["code"] == 200
    await client.publish(f"{base}/thing/topo/get", request("thing.topo.get", {}, "42"))
    await reply_to(client, f"{base}/thing/topo/get_reply")
    records = await services.audit.search(AuditFilter(actor=f"device:{gw.asset_id}"), 10)
    assert [(r.channel, r.action, r.request_id, r.outcome) for r in records] == [
        ("mqtt", "sys/thing/topo/add", "41", "ok")]  # the read left none
    assert door.door.requests.counts[("enos", "sys/thing/topo/add")] == 1
    await client.close()
