"""External-broker mode against a real Mosquitto: Thingport as a privileged client on shared subscriptions.

A plain MQTT client plays the gateway: it talks only to Mosquitto, and the answers come from
Thingport nodes consuming the request topics through ``$share/thingport/…``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PG_URL, make_product, reset_postgres
from tests.connect.conftest import MakeDevice, gateway_client, reply_to, request, start_node, status_is
from tests.support import mosquitto
from tests.support.device_login import enos_sub_sign
from tests.support.mqtt_client import Device as Client
from thingport.app import create_app
from thingport.connect.external import BrokerUrl, EmqxKick, ExternalBroker, MqttLink
from thingport.connect.frontdoor import FrontDoor
from thingport.domain.models import Device, DeviceStatus, I18nText, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.settings import Settings


def sub_entry(pk: str, sub: Device, cid: str = "c1", ts: str = "1700000000000") -> dict[str, Any]:
    return {"productKey": pk, "deviceKey": sub.device_key, "clientId": cid, "timestamp": ts, "signMethod": "sha256",
            "sign": enos_sub_sign(pk, sub.device_key, sub.secret, cid=cid, ts=ts)}


@pytest.mark.slow
@pytest.mark.subprocess
async def test_the_shared_subscriptions_cover_every_request_topic(node: ExternalBroker) -> None:
    assert isinstance(node.link, MqttLink)
    shared = node.link.filters(node.door.requests.filters())
    assert "$share/thingport//sys/+/+/thing/topo/add" in shared
    assert "$share/thingport//ext/session/+/+/combine/login" in shared
    assert len(shared) == len(node.door.requests.filters()) >= 10


@pytest.mark.slow
@pytest.mark.subprocess
async def test_a_gateway_on_mosquitto_is_answered_by_thingport(
        node: ExternalBroker, broker_port: int, services: Services, caller: Caller, service_product: str,
        gateway_product: str, make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    client = await gateway_client(broker_port, gw, gateway_product)
    base = f"/sys/{gateway_product}/{gw.device_key}"
    session = f"/ext/session/{gateway_product}/{gw.device_key}"

    await client.publish(f"{base}/thing/topo/add", request("thing.topo.add", [sub_entry(service_product, sub)]), 1)
    r = await reply_to(client, f"{base}/thing/topo/add_reply")
    assert (r["id"], r["code"]) == ("1", 200), r
    assert (await services.topology.gateway_of(caller, DeviceRef(asset_id=sub.asset_id))).device.asset_id \
        == gw.asset_id

    await client.publish(f"{session}/combine/login", request("combine.login", sub_entry(service_product, sub), "2"),
                         1)
    r = await reply_to(client, f"{session}/combine/login_reply")
    assert r["code"] == 200 and r["data"]["assetId"] == sub.asset_id, r
    await status_is(services, caller, sub.asset_id, DeviceStatus.ONLINE)

    # malformed requests get an error reply, the consumer keeps going
    await client.publish(f"{session}/combine/login", b"not json", 1)
    assert (await reply_to(client, f"{session}/combine/login_reply"))["code"] == 460

    # a platform downlink reaches the gateway through the broker: disabling the sub-device
    await services.devices.set_enabled(caller, DeviceRef(asset_id=sub.asset_id), False)
    msg = await client.receive()
    assert msg.topic == f"{session}/combine/disable"
    assert json.loads(msg.payload)["params"] == {"productKey": service_product, "deviceKey": sub.device_key}
    await services.devices.set_enabled(caller, DeviceRef(asset_id=sub.asset_id), True)
    await status_is(services, caller, sub.asset_id, DeviceStatus.OFFLINE)

    await client.publish(f"{session}/combine/login", request("combine.login", sub_entry(service_product, sub), "3"),
                         1)
    assert (await reply_to(client, f"{session}/combine/login_reply"))["code"] == 200
    await status_is(services, caller, sub.asset_id, DeviceStatus.ONLINE)
    await client.publish(f"{session}/combine/logout",
                         request("combine.logout", {"productKey": service_product, "deviceKey": sub.device_key}, "4"))
    assert (await reply_to(client, f"{session}/combine/logout_reply"))["code"] == 200
    await status_is(services, caller, sub.asset_id, DeviceStatus.OFFLINE)
    await client.close()


@pytest.mark.slow
@pytest.mark.subprocess
async def test_nodes_in_one_share_group_split_the_requests(
        node: ExternalBroker, broker_port: int, services: Services, gateway_product: str,
        make_device: MakeDevice) -> None:
    other = await start_node(services, broker_port, "thingport-b")
    handled: dict[str, int] = {"thingport-a": 0, "thingport-b": 0}
    for name, n in (("thingport-a", node), ("thingport-b", other)):
        original = n.door.remote.on_bridged_publish

        async def counting(topic: str, payload: bytes, qos: int = 1, *, _name: str = name,
                           _orig: Any = original) -> bool:
            handled[_name] += 1
            return bool(await _orig(topic, payload, qos))

        n.door.remote.on_bridged_publish = counting  # type: ignore[method-assign]
    try:
        gw = await make_device(gateway_product)
        client = await gateway_client(broker_port, gw, gateway_product)
        base = f"/sys/{gateway_product}/{gw.device_key}"
        total = 20
        for i in range(total):
            await client.publish(f"{base}/thing/topo/get", request("thing.topo.get", {}, str(i)), 1)
        ids = set()
        for _ in range(total):
            r = await reply_to(client, f"{base}/thing/topo/get_reply")
            assert r["code"] == 200
            ids.add(r["id"])
        assert ids == {str(i) for i in range(total)}  # every request answered exactly once
        await client.nothing_more()
        assert sum(handled.values()) == total
        assert handled["thingport-a"] > 0 and handled["thingport-b"] > 0, handled
        await client.close()
    finally:
        await other.stop()


@pytest.mark.slow
@pytest.mark.subprocess
async def test_the_consumer_reconnects_after_losing_the_broker(
        services: Services, tmp_path: Path, gateway_product: str, make_device: MakeDevice) -> None:
    if mosquitto.binary() is None:
        pytest.skip("mosquitto is not installed")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    with mosquitto.running(first) as port:
        n = await start_node(services, port, "thingport-a")
    # the broker is gone; a new one on the same port: the node finds it again and resubscribes
    try:
        with mosquitto.running(second, port=port):
            gw = await make_device(gateway_product)
            async with asyncio.timeout(10):
                while n.link.closed.is_set():
                    await asyncio.sleep(0.1)
            client = await gateway_client(port, gw, gateway_product)
            base = f"/sys/{gateway_product}/{gw.device_key}"
            await client.publish(f"{base}/thing/topo/get", request("thing.topo.get", {}), 1)
            assert (await reply_to(client, f"{base}/thing/topo/get_reply"))["code"] == 200
            await client.close()
    finally:
        await n.stop()


async def test_emqx_kick_uses_the_rest_api() -> None:
    seen: list[tuple[str, str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.method, req.url.raw_path.decode(), req.headers.get("authorization", "")))
        if req.method == "GET":
            return httpx.Response(200, json={"data": [{"clientid": "dk|securemode=2|"}], "meta": {"count": 1}})
        return httpx.Response(204 if "dk" in req.url.path else 404)

    kick = EmqxKick("http://emqx:18083/", "key", "secret", transport=httpx.MockTransport(handler))
    assert await kick.user("dk&pk")
    assert not await kick.client("gone")
    basic = "Basic " + base64.b64encode(b"key:secret").decode()
    assert seen == [("GET", "/api/v5/clients?username=dk%26pk&limit=100", basic),
                    ("DELETE", "/api/v5/clients/dk%7Csecuremode%3D2%7C", basic),
                    ("DELETE", "/api/v5/clients/gone", basic)]


@pytest.mark.slow
@pytest.mark.subprocess
async def test_a_disabled_device_is_told_and_kicked_through_emqx_rest(
        services: Services, broker_port: int, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    calls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(f"{req.method} {req.url.raw_path.decode()}")
        found = req.url.params.get("username") == f"{dev.device_key}&{service_product}"
        return httpx.Response(200, json={"data": [{"clientid": "meter-1"}] if found else [], "meta": {}})

    kick = EmqxKick("http://emqx:18083", "k", "s", transport=httpx.MockTransport(handler))
    n = ExternalBroker(FrontDoor(services), MqttLink(BrokerUrl("127.0.0.1", broker_port, False), "thingport",
                                                     "thingport-a"), kick)
    await n.start()
    try:
        device = Client(broker_port, "meter-1")
        assert await device.connect() == 0
        await device.subscribe((f"/sys/{service_product}/{dev.device_key}/#", 1))
        # no session of this node knows the device: the notice goes to its topic, the kick by user name
        await services.devices.set_enabled(caller, DeviceRef(asset_id=dev.asset_id), False)
        msg = await device.receive()
        assert msg.topic == f"/sys/{service_product}/{dev.device_key}/thing/disable"
        assert json.loads(msg.payload)["method"] == "thing.disable"
        assert calls[:2] == [f"GET /api/v5/clients?username={dev.device_key}%26{service_product}&limit=100",
                             "DELETE /api/v5/clients/meter-1"]
        await device.close()
    finally:
        await n.stop()


@pytest.mark.slow
@pytest.mark.subprocess
async def test_serve_in_external_mode_consumes_and_answers_hooks(
        settings: Settings, backend: str, broker_port: int, tmp_path: Path) -> None:
    if backend == "postgresql":
        await reset_postgres(PG_URL)
    cfg = replace(settings, mqtt_port=1, mqtt_external_url=f"mqtt://127.0.0.1:{broker_port}",
                  emqx_hook_token="hook-token")
    app = create_app(cfg)
    async with app.lifespan(), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                 base_url="http://thingport.test") as http:
        svc: Services = app.state.services
        external = app.state.mqtt
        assert isinstance(external, ExternalBroker) and app.state.door is external.door  # no embedded broker
        org = await svc.accounts.create_org("Acme", "o-acme")
        await svc.accounts.create_model(org.org_id, "model1")
        caller = Caller.operator(org.org_id)
        gateway_product = await make_product(svc, caller, ProductType.GATEWAY)
        gw = (await svc.devices.create(caller, DeviceSpec(gateway_product, I18nText("gw"), "+00:00"))).device
        client = await gateway_client(broker_port, gw, gateway_product)
        base = f"/sys/{gateway_product}/{gw.device_key}"
        await client.publish(f"{base}/thing/topo/get", request("thing.topo.get", {}), 1)
        assert (await reply_to(client, f"{base}/thing/topo/get_reply"))["code"] == 200
        await client.close()
        r = await http.post("/mqtt/emqx/events", headers={"Authorization": "Bearer hook-token"},
                            json={"event": "client.connected", "clientid": "gw-1",
                                  "username": f"{gw.device_key}&{gateway_product}"})
        assert r.json() == {"result": "ok"}
        await status_is(svc, caller, gw.asset_id, DeviceStatus.ONLINE)
