"""The Living Platform's device side over real MQTT: provisioning requests, permit-join, downlinks.

App actions go through the services the Living dialect calls (its HTTP side is tested in
tests/dialects/living and end to end in tests/compat/test_living_sdk.py); what a device sends and
receives goes over a real MQTT connection, on the embedded broker and behind Mosquitto.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import make_product
from tests.connect.conftest import Door, MakeDevice, connect, reply_to, request, start_node, status_is
from tests.support.device_login import alink_connect, alink_sub, enos_connect
from tests.support.mqtt_client import Device as Client
from thingport.crypto import awss
from thingport.domain.models import Device, DeviceStatus
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.living_accounts import EndUser, MetaPatch
from thingport.services.provisioning import CipherRequest

TOKEN = "00112233445566778899AABBCCDDEEFF"
RANDOM = "0f" * 16


async def end_user(services: Services, caller: Caller, login: str = "alice") -> EndUser:
    """An app user with a current home."""
    created = await services.living.create_user(caller.org_id, login)
    user = EndUser(created.identity_id, caller.org_id, "app")
    await services.living.create_home(user, "Home")
    return user


async def online(door: Door, device: Device, *, subscribe: bool = True) -> Client:
    """An Alink device connected to the door (and subscribed to its own topics, to see anything routed)."""
    client, rc = await connect(door, alink_connect(device.product_key, device.device_key, device.secret))
    assert rc == 0
    if subscribe:
        await client.subscribe((f"/sys/{device.product_key}/{device.device_key}/#", 1))
    return client


async def ask(client: Client, device: Device, path: str, params: Any, rid: str = "1") -> dict[str, Any]:
    """Publish a request on the device's own topic and return its reply."""
    topic = f"/sys/{device.product_key}/{device.device_key}/{path}"
    await client.publish(topic, request(path.replace("/", "."), params, rid), 1)
    return await reply_to(client, topic + "_reply")


async def command(client: Client) -> tuple[str, dict[str, Any]]:
    """The next message the device gets: its topic and its JSON."""
    msg = await client.receive()
    return msg.topic, dict(json.loads(msg.payload))


async def test_token_report_then_bind_and_unbind_notify_the_device(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    lamp = await make_device(service_product, "lamp-1")
    client = await online(door, lamp)
    r = await ask(client, lamp, "thing/awss/enrollee/match", {"token": TOKEN}, "7")
    assert (r["id"], r["code"], r["data"]) == ("7", 200, {})
    user = await end_user(services, caller)
    await services.provisioning.bind_by_token(user, service_product, "lamp-1", TOKEN.lower(), None)
    topic, notify = await command(client)
    assert topic == f"/sys/{service_product}/lamp-1/_thing/event/notify"
    assert notify["method"] == "_thing.event.notify" and notify["params"] == {
        "identifier": "awss.BindNotify",
        "value": {"iotId": lamp.asset_id, "identityId": user.identity_id, "owned": 1, "productKey": service_product,
                  "deviceName": "lamp-1", "operation": "Bind"}}
    # the device's reply is the platform's: consumed, not routed back to the device's own subscription
    await client.publish(f"{topic}_reply", json.dumps({"id": notify["id"], "code": 200, "data": {}}).encode(), 1)
    await services.living.unbind(user, lamp.asset_id)
    topic, notify = await command(client)
    assert topic.endswith("/_thing/event/notify") and notify["params"]["value"]["operation"] == "Unbind"
    await client.close()


async def test_malformed_token_reports_name_the_field_and_the_connection_stays(
        door: Door, service_product: str, make_device: MakeDevice) -> None:
    lamp = await make_device(service_product, "lamp-2")
    client = await online(door, lamp)
    for params, field in (({"token": "abc"}, "params.token: must be 32 hexadecimal"),
                          ({"token": 12345}, "token: must be a string"),
                          ({}, "token: missing"),
                          ([TOKEN], "params: must be an object")):
        r = await ask(client, lamp, "thing/awss/enrollee/match", params)
        assert r["code"] == 460 and r["message"].startswith(field), r
    assert (await ask(client, lamp, "thing/awss/enrollee/match", {"token": TOKEN}))["code"] == 200
    await client.close()


async def test_a_device_offline_when_it_is_bound_misses_the_notice(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    lamp = await make_device(service_product, "lamp-3")
    client = await online(door, lamp)
    assert (await ask(client, lamp, "thing/awss/enrollee/match", {"token": TOKEN}))["code"] == 200
    await client.close()
    await services.provisioning.bind_by_token(await end_user(services, caller), service_product, "lamp-3", TOKEN,
                                              None)
    client = await online(door, lamp)
    # the first thing it gets is the answer to its own request: no notice was kept for it
    topic = f"/sys/{service_product}/lamp-3/thing/awss/enrollee/match"
    await client.publish(topic, request("thing.awss.enrollee.match", {"token": TOKEN}, "after"), 1)
    got, r = await command(client)
    assert (got, r["id"]) == (topic + "_reply", "after")
    await client.close()


async def test_registrar_reports_enrollees_checks_one_in_and_gets_its_key(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    hub = await make_device(service_product, "hub-1")
    await make_device(service_product, "bulb-1")
    secret = (await services.products.get(caller, service_product)).secret
    client = await online(door, hub)
    found = {"awssVer": {"zconfig": "2.0"}, "type": 0, "ssid": "home", "bssid": "AA:BB:CC:DD:EE:FF", "rssi": -48,
             "payload": [awss.build_enrollee_ie("bulb-1", service_product, bytes(16), secret), "00ff"]}
    r = await ask(client, hub, "thing/awss/enrollee/found", found)
    assert r["code"] == 200 and r["data"] == [{"productKey": service_product, "deviceName": "bulb-1", "timeout": 60}]
    cipher = {"productKey": service_product, "deviceName": "bulb-1", "cipherType": 3, "random": RANDOM}
    r = await ask(client, hub, "thing/cipher/get", cipher)
    assert r["code"] == 6100 and "check in" in r["message"]  # the app has not started provisioning it
    # the user bound to the registrar asks for the key: the registrar is told to check the enrollee in
    user = await end_user(services, caller)
    await services.provisioning.bind_by_window(user, service_product, "hub-1", None)
    assert (await command(client))[0].endswith("/_thing/event/notify")
    key = await services.provisioning.app_cipher(user, CipherRequest(service_product, "bulb-1", 3, RANDOM))
    topic, checkin = await command(client)
    assert topic == f"/sys/{service_product}/hub-1/thing/awss/enrollee/checkin"
    assert checkin["method"] == "thing.awss.enrollee.checkin" and checkin["params"] == {
        "productKey": service_product, "deviceName": "bulb-1", "timeout": 60}
    await client.publish(f"{topic}_reply", json.dumps({"id": checkin["id"], "code": 200, "data": {}}).encode(), 1)
    r = await ask(client, hub, "thing/cipher/get", {**cipher, "awssVer": {"zconfig": "2.0"}}, "9")
    assert (r["id"], r["code"]) == ("9", 200)  # and the checkin_reply above was not routed back to the hub
    assert r["data"] == {"productKey": service_product, "deviceName": "bulb-1", "secret": key}
    assert key == awss.cipher_key(secret, bytes.fromhex(RANDOM))
    await client.close()


async def test_malformed_registrar_requests_name_the_field(
        door: Door, service_product: str, make_device: MakeDevice) -> None:
    hub = await make_device(service_product, "hub-2")
    client = await online(door, hub)
    good = {"type": 0, "ssid": "s", "bssid": "b", "rssi": -1, "payload": ["00"]}
    for params, field in (({**good, "payload": "00"}, "payload: must be a non-empty list"),
                          ({**good, "payload": [1]}, "payload: every entry must be a string"),
                          ({**good, "payload": ["00"] * 31}, "payload: at most 30"),
                          ({**good, "rssi": "-1"}, "rssi: must be an integer"),
                          ({**good, "type": 7}, "params.type"),
                          ({**good, "type": True}, "type: must be an integer"),
                          ({**good, "ssid": 5}, "ssid: must be a string"),
                          ({**good, "awssVer": "2.0"}, "awssVer: must be an object")):
        r = await ask(client, hub, "thing/awss/enrollee/found", params)
        assert r["code"] == 460 and r["message"].startswith(field), (params, r)
    assert (await ask(client, hub, "thing/awss/enrollee/found", good))["data"] == []  # unreadable IE: dropped
    cipher = {"productKey": service_product, "deviceName": "bulb", "cipherType": 3, "random": RANDOM}
    for params, field in (({**cipher, "cipherType": "3"}, "cipherType: must be an integer"),
                          ({**cipher, "cipherType": 9}, "cipherType: 9"),
                          ({**cipher, "random": None}, "random: missing"),
                          ({**cipher, "random": "xyz"}, "random: must be 32"),
                          ({**cipher, "deviceName": ["b"]}, "deviceName: must be a string"),
                          ({**cipher, "mac": 1}, "mac: must be a string")):
        r = await ask(client, hub, "thing/cipher/get", params)
        assert r["code"] == 460 and r["message"].startswith(field), (params, r)
    await client.close()


async def test_requests_of_another_devices_topic_are_refused(
        door: Door, gateway_product: str, service_product: str, make_device: MakeDevice) -> None:
    """A gateway may use its sub-devices' topics, but reports only for itself."""
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    client = await online(door, gw, subscribe=False)
    r = await ask(client, gw, "thing/topo/add", [alink_sub(service_product, sub.device_key, sub.secret)])
    assert r["code"] == 200
    r = await ask(client, sub, "thing/awss/enrollee/match", {"token": TOKEN})
    assert r["code"] == 460 and r["message"].startswith("topic:")
    await client.close()


async def test_topo_add_needs_an_open_permit_for_permit_join_products(
        door: Door, services: Services, caller: Caller, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    guarded = await make_device(service_product, "guarded-1")
    await services.living.set_product_meta(caller.org_id, service_product, MetaPatch(require_permit_join=True))
    free_product = await make_product(services, caller)
    free = await make_device(free_product, "free-1")
    gw = await make_device(gateway_product, "gw-1")
    client = await online(door, gw)
    entries = [alink_sub(free_product, "free-1", free.secret), alink_sub(service_product, "guarded-1", guarded.secret)]
    r = await ask(client, gw, "thing/topo/add", entries)
    assert r["code"] == 460 and r["message"].startswith(f"productKey: gateway {gw.asset_id} does not permit")
    assert await services.connectivity.sub_devices(gw.asset_id) == []  # all or nothing
    user = await end_user(services, caller)
    await services.provisioning.bind_by_window(user, gateway_product, "gw-1", None)
    await command(client)  # BindNotify
    await services.provisioning.permit(user, gw.asset_id, service_product, 60)
    topic, permit = await command(client)
    assert topic == f"/sys/{gateway_product}/gw-1/thing/gateway/permit"
    assert permit["method"] == "thing.gateway.permit" and permit["params"] == {"productKey": service_product,
                                                                               "time": 60}
    await client.publish(f"{topic}_reply", json.dumps({"id": permit["id"], "code": 200, "data": {}}).encode(), 1)
    r = await ask(client, gw, "thing/topo/add", entries)
    assert r["code"] == 200 and r["data"] == [{"productKey": free_product, "deviceName": "free-1"},
                                              {"productKey": service_product, "deviceName": "guarded-1"}]
    # closed again: the next sub-device of that product is refused, an EnOS-signed gateway alike
    await services.provisioning.permit(user, gw.asset_id, None, 65535)
    assert (await command(client))[1]["params"] == {"productKey": "", "time": 65535}
    await client.close()
    other = await make_device(service_product, "guarded-2")
    enos_gw, rc = await connect(door, enos_connect(gateway_product, "gw-1", gw.secret))
    assert rc == 0
    r = await ask(enos_gw, gw, "thing/topo/add", [alink_sub(service_product, "guarded-2", other.secret)])
    assert r["code"] == 460 and "does not permit" in r["message"]
    await enos_gw.close()


async def test_removing_a_sub_device_tells_the_gateway_once_and_ends_the_sub_session(
        door: Door, services: Services, caller: Caller, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product, "gw-2")
    sensor = await make_device(service_product, "sensor-1")
    client = await online(door, gw)
    assert (await ask(client, gw, "thing/topo/add", [alink_sub(service_product, "sensor-1", sensor.secret)]))[
        "code"] == 200
    session = f"/ext/session/{gateway_product}/gw-2/combine/login"
    await client.publish(session, request("combine.login", alink_sub(service_product, "sensor-1", sensor.secret)))
    assert (await reply_to(client, session + "_reply"))["code"] == 200
    await status_is(services, caller, sensor.asset_id, DeviceStatus.ONLINE)
    user = await end_user(services, caller)
    await services.provisioning.bind_by_window(user, gateway_product, "gw-2", None)
    await command(client)  # BindNotify
    # the sub-device, logged in through the gateway, gets its own notices on its topics through it
    await services.provisioning.bind_by_window(user, service_product, "sensor-1", None)
    topic, notify = await command(client)
    assert topic == f"/sys/{service_product}/sensor-1/_thing/event/notify"
    assert notify["params"]["value"]["iotId"] == sensor.asset_id

    await services.provisioning.remove_sub_device(user, gw.asset_id, sensor.asset_id)
    topic, change = await command(client)
    assert topic == f"/sys/{gateway_product}/gw-2/thing/topo/change"
    assert change["method"] == "thing.topo.change" and change["params"] == {
        "status": 1, "subList": [{"productKey": service_product, "deviceName": "sensor-1"}]}
    await status_is(services, caller, sensor.asset_id, DeviceStatus.OFFLINE)
    # events reach the gateway in order: the next downlink after the change is the permit, no second change
    await services.provisioning.permit(user, gw.asset_id, None, 0)
    assert (await command(client))[0].endswith("/thing/gateway/permit")
    await client.close()


@pytest.mark.slow
@pytest.mark.subprocess
async def test_behind_an_external_broker_downlinks_go_by_topic_once(
        services: Services, caller: Caller, broker_port: int, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    """No session of this node knows the devices (they connected to Mosquitto): the broker routes by topic."""
    node = await start_node(services, broker_port, "thingport-living")
    try:
        gw = await make_device(gateway_product, "gw-3")
        sensor = await make_device(service_product, "sensor-3")
        client = Client(broker_port, "gw-3")
        assert await client.connect() == 0
        base = f"/sys/{gateway_product}/gw-3"  # what a device SDK subscribes to (not its own requests)
        await client.subscribe(*((f"{base}/{path}", 1) for path in (
            "thing/topo/add_reply", "thing/awss/enrollee/match_reply", "_thing/event/notify", "thing/topo/change",
            "thing/gateway/permit")))
        r = await ask(client, gw, "thing/topo/add", [alink_sub(service_product, "sensor-3", sensor.secret)])
        assert r["code"] == 200
        r = await ask(client, gw, "thing/awss/enrollee/match", {"token": TOKEN})
        assert r["code"] == 200
        user = await end_user(services, caller)
        await services.provisioning.bind_by_token(user, gateway_product, "gw-3", TOKEN, None)
        topic, notify = await command(client)
        assert topic.endswith("/_thing/event/notify") and notify["params"]["value"]["operation"] == "Bind"
        await services.provisioning.remove_sub_device(user, gw.asset_id, sensor.asset_id)
        topic, change = await command(client)
        assert topic.endswith("/thing/topo/change") and change["params"]["status"] == 1
        await services.provisioning.permit(user, gw.asset_id, None, 0)
        assert (await command(client))[0].endswith("/thing/gateway/permit")
        await client.close()
    finally:
        await node.stop()
