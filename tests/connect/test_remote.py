"""Sessions derived for an external broker's clients: which family answers a bridged request.

A node answering a request through the shared subscription did not see the device's CONNECT; the
rule is :func:`thingport.connect.family.of_remote_device`'s. The first tests drive the remote
sessions directly, with a downlink that records what a node would publish; the last goes through a
real Mosquitto.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.connect.conftest import MakeDevice, gateway_client, reply_to, request
from tests.support.device_login import alink_connect, alink_sub
from thingport.connect.external import ExternalBroker
from thingport.connect.frontdoor import FrontDoor
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef


@dataclass
class Published:
    """A topic-routed downlink that keeps what it is given (an external broker's privileged client)."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def send_to(self, client_id: str, topic: str, payload: bytes, qos: int = 0) -> bool:
        self.sent.append((topic, payload))
        return True

    async def disconnect_client(self, client_id: str, reason: str = "", *, discard_session: bool = False) -> bool:
        return False

    async def disconnect_user(self, username: str, reason: str = "") -> bool:
        return False

    def reply(self, topic: str) -> dict[str, Any]:
        return dict(json.loads(next(p for t, p in reversed(self.sent) if t == topic + "_reply")))


def node(services: Services) -> tuple[FrontDoor, Published]:
    door, out = FrontDoor(services), Published()
    door.attach(out)
    return door, out


async def test_a_bridged_request_takes_the_family_on_record_else_the_requests_own(
        services: Services, caller: Caller, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    await services.topology.add_sub_devices(caller, DeviceRef(asset_id=gw.asset_id), [DeviceRef(asset_id=sub.asset_id)])
    base = f"/sys/{gateway_product}/{gw.device_key}"
    cid, user, password = alink_connect(gateway_product, gw.device_key, gw.secret)
    learnt, rights_only, fresh, reader = node(services), node(services), node(services), node(services)
    try:
        # the node that checked the Alink login answers in Alink even a request that names no device
        assert (await learnt[0].remote.authenticate(ConnectInfo(cid, user, password.encode(), True, 60, None,
                                                                  False))).accepted
        for door, _ in (learnt, fresh):
            assert await door.remote.on_bridged_publish(f"{base}/thing/topo/get", request("thing.topo.get", {}))
        assert learnt[1].reply(f"{base}/thing/topo/get")["data"] == [
            {"productKey": service_product, "deviceName": sub.device_key}]
        assert fresh[1].reply(f"{base}/thing/topo/get")["data"] == [
            {"productKey": service_product, "deviceKey": sub.device_key}]
        # with nothing on record the request decides: "deviceName" → Alink's codes, also on a node that
        # only checked the gateway's rights (that proves no family); but the first request decides for
        # the cache time
        assert await rights_only[0].remote.authorize(user, f"{base}/thing/topo/delete", "publish")
        nobody = request("thing.topo.delete", [{"productKey": service_product, "deviceName": "nobody"}])
        for door, _ in (reader, fresh, rights_only):
            assert await door.remote.on_bridged_publish(f"{base}/thing/topo/delete", nobody)
        assert reader[1].reply(f"{base}/thing/topo/delete")["code"] == 6100  # Alink: device not found
        assert fresh[1].reply(f"{base}/thing/topo/delete")["code"] == 402  # EnOS: device not found
        assert rights_only[1].reply(f"{base}/thing/topo/delete")["code"] == 6100
    finally:
        for door, _ in (learnt, rights_only, fresh, reader):
            door.close()


async def test_a_device_connected_through_another_node_speaks_what_its_requests_say(
        services: Services, gateway_product: str, service_product: str, make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    base = f"/sys/{gateway_product}/{gw.device_key}"
    door, out = node(services)
    try:
        # the broker's connect event gives this node a live session, but no family: the rule decides
        assert await door.remote.connected("conn-1", f"{gw.device_key}&{gateway_product}")
        nobody = request("thing.topo.delete", [{"productKey": service_product, "deviceName": "nobody"}])
        assert await door.remote.on_bridged_publish(f"{base}/thing/topo/delete", nobody)
        assert out.reply(f"{base}/thing/topo/delete")["code"] == 6100  # Alink: device not found
        assert door.live(gw.asset_id) is not None
    finally:
        door.close()


async def test_a_change_to_one_device_forgets_only_what_concerns_it(
        services: Services, caller: Caller, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    other = await make_device(service_product)
    await services.topology.add_sub_devices(caller, DeviceRef(asset_id=gw.asset_id), [DeviceRef(asset_id=sub.asset_id)])
    base = f"/sys/{gateway_product}/{gw.device_key}"
    other_user = f"{other.device_key}&{service_product}"
    cid, user, password = alink_connect(gateway_product, gw.device_key, gw.secret)
    door, out = node(services)
    try:
        assert (await door.remote.authenticate(ConnectInfo(cid, user, password.encode(), True, 60, None,
                                                            False))).accepted
        assert await door.remote.authorize(other_user, f"/sys/{service_product}/{other.device_key}/thing/x", "publish")
        # another device's rights change through this node: it is derived again at once …
        await services.devices.set_enabled(caller, DeviceRef(asset_id=other.asset_id), False)
        assert not await door.remote.authorize(other_user, f"/sys/{service_product}/{other.device_key}/thing/x",
                                               "publish")
        await services.devices.set_enabled(caller, DeviceRef(asset_id=other.asset_id), True)
        assert await door.remote.authorize(other_user, f"/sys/{service_product}/{other.device_key}/thing/x", "publish")
        # … and the gateway whose login this node checked is still answered in Alink
        assert await door.remote.on_bridged_publish(f"{base}/thing/topo/get", request("thing.topo.get", {}))
        assert out.reply(f"{base}/thing/topo/get")["data"] == [
            {"productKey": service_product, "deviceName": sub.device_key}]
        # a change to the gateway's topology re-reads its rights, not its family
        await services.topology.add_sub_devices(caller, DeviceRef(asset_id=gw.asset_id),
                                                [DeviceRef(asset_id=other.asset_id)])
        assert await door.remote.authorize(user, f"/sys/{service_product}/{other.device_key}/thing/x", "publish")
        assert await door.remote.on_bridged_publish(f"{base}/thing/topo/get", request("thing.topo.get", {}, "2"))
        assert {e["deviceName"] for e in out.reply(f"{base}/thing/topo/get")["data"]} == {sub.device_key,
                                                                                         other.device_key}
    finally:
        door.close()


@pytest.mark.slow
@pytest.mark.subprocess
async def test_alink_requests_are_answered_in_alink_form(
        node: ExternalBroker, broker_port: int, service_product: str, gateway_product: str,
        make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    client = await gateway_client(broker_port, gw, gateway_product)
    base = f"/sys/{gateway_product}/{gw.device_key}"
    entry = alink_sub(service_product, sub.device_key, sub.secret)
    await client.publish(f"{base}/thing/topo/add", request("thing.topo.add", [entry]), 1)
    r = await reply_to(client, f"{base}/thing/topo/add_reply")
    assert r["code"] == 200 and r["data"] == [{"productKey": service_product, "deviceName": sub.device_key}], r
    await client.publish(f"{base}/thing/topo/delete",
                         request("thing.topo.delete", [{"productKey": service_product, "deviceName": "nobody"}]), 1)
    assert (await reply_to(client, f"{base}/thing/topo/delete_reply"))["code"] == 6100  # Alink: device not found
    await client.close()
