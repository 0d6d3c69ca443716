"""RabbitMQ's HTTP auth backend hooks, called with the form fields RabbitMQ 3.10 sends (docs/operations.md)."""

from __future__ import annotations

import logging
from dataclasses import replace

import httpx
import pytest

from tests.connect.conftest import MakeDevice, gateway_product, make_device  # noqa: F401 (fixtures)
from tests.support.device_login import alink_connect, enos_connect
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef
from thingport.settings import Settings

TOKEN = "hook-secret"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, rabbitmq_hook_token=TOKEN, rabbitmq_amqp_url="amqp://thingport:pw@127.0.0.1:5672/",
                   auth_cache_ttl_s=60)


async def ask(http: httpx.AsyncClient, kind: str, token: str = TOKEN, **fields: str) -> str:
    r = await http.post(f"/mqtt/rabbitmq/{kind}", params={"token": token}, data={"vhost": "/", **fields})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


async def user(http: httpx.AsyncClient, fields: tuple[str, str, str], **extra: str) -> str:
    client_id, username, password = fields
    return await ask(http, "user", username=username, password=password, client_id=client_id, **extra)


async def topic(http: httpx.AsyncClient, username: str, key: str, permission: str = "write") -> str:
    return await ask(http, "topic", username=username, resource="topic", name="amq.topic", permission=permission,
                     routing_key=key, **{"variable_map.client_id": "c1", "variable_map.username": username,
                                         "variable_map.vhost": "/"})


async def test_logins_are_the_front_doors_and_only_mqtt_clients_get_in(
        http: httpx.AsyncClient, service_product: str, make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    fields = enos_connect(service_product, dev.device_key, dev.secret)
    assert await user(http, fields) == "allow"
    assert await user(http, alink_connect(service_product, dev.device_key, dev.secret)) == "allow"
    assert await user(http, (fields[0], fields[1], "wrong")) == "deny"
    # an AMQP login (no client_id) with good device credentials, or another virtual host
    assert await ask(http, "user", username=fields[1], password=fields[2]) == "deny"
    assert await user(http, fields, vhost="other") == "deny"


async def test_a_device_whose_key_holds_a_dot_is_refused_saying_why(
        http: httpx.AsyncClient, service_product: str, make_device: MakeDevice,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    dev = await make_device(service_product, "meter.1")
    caplog.set_level(logging.WARNING)
    assert await user(http, enos_connect(service_product, "meter.1", dev.secret)) == "deny"
    assert "'meter.1' contains '.'" in caplog.text and "docs/operations.md" in caplog.text


async def test_vhost_and_resource_checks_allow_the_mqtt_plugins_own_queues_and_exchange(
        http: httpx.AsyncClient, services: Services, caller: Caller, service_product: str,
        make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    name = f"{dev.device_key}&{service_product}"
    cid = "c1|securemode=2,signmethod=sha256|"
    assert await ask(http, "vhost", username=name, ip="10.0.0.7", client_id=cid) == "allow"
    assert await ask(http, "vhost", username=name, ip="10.0.0.7") == "deny"  # not MQTT
    for q, perm in (("0", "configure"), ("1", "read"), ("1", "write")):
        assert await ask(http, "resource", username=name, resource="queue", name=f"mqtt-subscription-{cid}qos{q}",
                         permission=perm, client_id=cid) == "allow"
    assert await ask(http, "resource", username=name, resource="queue", name="mqtt-subscription-otherqos1",
                     permission="read", client_id=cid) == "deny"
    assert await ask(http, "resource", username=name, resource="exchange", name="amq.topic", permission="write",
                     client_id=cid) == "allow"
    assert await ask(http, "resource", username=name, resource="exchange", name="amq.direct", permission="write",
                     client_id=cid) == "deny"
    assert await ask(http, "resource", username=name, resource="exchange", name="amq.topic", permission="configure",
                     client_id=cid) == "deny"
    await services.devices.set_enabled(caller, DeviceRef(asset_id=dev.asset_id), False)
    assert await ask(http, "vhost", username=name, ip="10.0.0.7", client_id=cid) == "deny"


async def test_topic_checks_map_routing_keys_back_to_topics(
        http: httpx.AsyncClient, services: Services, caller: Caller, gateway_product: str,  # noqa: F811
        service_product: str, make_device: MakeDevice) -> None:  # noqa: F811
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    await services.topology.add_sub_devices(caller, DeviceRef(asset_id=gw.asset_id), [DeviceRef(asset_id=sub.asset_id)])
    name = f"{gw.device_key}&{gateway_product}"
    assert await topic(http, name, f".sys.{gateway_product}.{gw.device_key}.thing.topo.add") == "allow"
    assert await topic(http, name, f".sys.{gateway_product}.{gw.device_key}.#", "read") == "allow"
    assert await topic(http, name, f".ext.session.{gateway_product}.{gw.device_key}.*", "read") == "allow"
    assert await topic(http, name, f".sys.{service_product}.{sub.device_key}.thing.event.property.post") == "allow"
    assert await topic(http, name, f".sys.{service_product}.other.thing.event.property.post") == "deny"
    assert await topic(http, name, ".sys.#", "read") == "deny"
    assert await topic(http, name, f".sys.{gateway_product}.{gw.device_key}.x", "configure") == "deny"


async def test_only_rabbitmq_may_ask(http: httpx.AsyncClient, settings: Settings) -> None:
    r = await http.post("/mqtt/rabbitmq/user", params={"token": "wrong"}, data={"username": "x"})
    assert r.status_code == 401
    r = await http.post("/mqtt/rabbitmq/user", data={"username": "x"})
    assert r.status_code == 401


async def test_the_hooks_are_off_without_a_token(http: httpx.AsyncClient, settings: Settings, services: Services,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.core, "settings", replace(settings, rabbitmq_hook_token=""))
    r = await http.post("/mqtt/rabbitmq/user", params={"token": ""}, data={"username": "x"})
    assert r.status_code == 403  # RabbitMQ takes any answer but 200 allow as a refusal
