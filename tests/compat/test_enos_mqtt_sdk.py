"""The real ``enos-mqtt-sdk-python`` 0.1.1 device SDK against a running Thingport's embedded broker.

Credentials are made through the HTTP API with the real ``enos-api-sdk-python`` client, the way a
user would: static login, dynamic activation, a gateway adding a sub-device and logging it in,
and a replaced device whose old secret stops working while the new one is accepted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import pytest
from enos.core.internal.MqttConnection import MqttConnection
from enos.core.internal.Profile import Profile
from enos.core.login.DynamicActivationLogin import DynamicActivationLogin
from enos.core.MqttClient import MqttClient
from enos.message.upstream.status.SubDeviceLoginRequest import SubDeviceLoginRequest
from enos.message.upstream.status.SubDeviceLogoutRequest import SubDeviceLogoutRequest
from enos.message.upstream.topo.SubDeviceInfo import SubDeviceInfo
from enos.message.upstream.topo.TopoAddRequest import TopoAddRequest
from enos.message.upstream.topo.TopoGetRequest import TopoGetRequest
from enosapi.client.EnOSDefaultClient import EnOSDefaultClient

from tests.compat.conftest import MODEL_ID, Account
from tests.compat.enos_requests import (
    CreateDeviceRequest,
    CreateProductV21Request,
    GetDeviceRequest,
    GetProductRequest,
    ReplaceDeviceRequest,
)
from tests.compat.test_enos_sdk import ok
from tests.support.live_server import LiveServer
from tests.support.processes import free_port
from thingport.settings import Settings

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

# A refused login makes the SDK wait this long for a CONNACK it will never like (default 10 s).
MqttConnection._MqttConnection__connect_timeout = 3  # type: ignore[attr-defined]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The compat server of tests/compat/conftest.py, with its embedded broker on."""
    return replace(settings, mqtt_port=free_port())


@pytest.fixture
def api(live: LiveServer, account: Account) -> EnOSDefaultClient:
    return EnOSDefaultClient(live.url, account.app_key, account.secret)


def broker_url(live: LiveServer) -> str:
    return f"tcp://127.0.0.1:{live.mqtt_port}"


def product(api: EnOSDefaultClient, account: Account, **extra: Any) -> str:
    return str(ok(api.execute(CreateProductV21Request(account.org_id, MODEL_ID, **extra))))


def device(api: EnOSDefaultClient, account: Account, pk: str, dk: str) -> dict[str, Any]:
    return dict(ok(api.execute(CreateDeviceRequest(account.org_id, pk, dk))))


def status(api: EnOSDefaultClient, account: Account, asset_id: str) -> str:
    return str(ok(api.execute(GetDeviceRequest(account.org_id, asset_id=asset_id)))["status"])


def wait_status(api: EnOSDefaultClient, account: Account, asset_id: str, expected: str) -> None:
    deadline = time.monotonic() + 5
    while (seen := status(api, account, asset_id)) != expected:
        assert time.monotonic() < deadline, f"status stayed {seen}, expected {expected}"
        time.sleep(0.05)


def connected(client: MqttClient) -> MqttClient:
    client.get_profile().set_auto_reconnect(False)
    client.connect()
    return client


def test_static_login_and_replace(live: LiveServer, api: EnOSDefaultClient, account: Account) -> None:
    pk = product(api, account)
    dev = device(api, account, pk, "sdk-meter")
    client = connected(MqttClient(broker_url(live), pk, "sdk-meter", dev["deviceSecret"]))
    assert client.is_connected()
    wait_status(api, account, dev["assetId"], "online")

    replaced = ok(api.execute(ReplaceDeviceRequest(account.org_id, "sdk-meter-2", asset_id=dev["assetId"])))
    deadline = time.monotonic() + 5
    while client.is_connected():
        assert time.monotonic() < deadline, "the replaced device's session stayed open"
        time.sleep(0.05)
    wait_status(api, account, dev["assetId"], "inactive")
    client.close()

    old = connected(MqttClient(broker_url(live), pk, "sdk-meter", dev["deviceSecret"]))
    assert not old.is_connected()
    old.close()
    new = connected(MqttClient(broker_url(live), pk, "sdk-meter-2", replaced["deviceSecret"]))
    assert new.is_connected()
    wait_status(api, account, dev["assetId"], "online")
    new.close()


def test_dynamic_activation(live: LiveServer, api: EnOSDefaultClient, account: Account) -> None:
    pk = product(api, account, dynamicActivateEnabled=True)
    product_secret = ok(api.execute(GetProductRequest(account.org_id, pk)))["productSecret"]
    dev = device(api, account, pk, "dyn-1")
    got: list[str] = []
    arrived = threading.Event()

    def on_activate(secret: str) -> None:
        got.append(secret)
        arrived.set()

    profile = Profile.create_instance(DynamicActivationLogin(broker_url(live), pk, product_secret, "dyn-1"))
    client = MqttClient(profile=profile)
    client.on_device_dynamic_active = on_activate
    connected(client)
    assert arrived.wait(5), "no activation push"
    assert got == [dev["deviceSecret"]]
    wait_status(api, account, dev["assetId"], "online")
    client.close()
    static = connected(MqttClient(broker_url(live), pk, "dyn-1", got[0]))
    assert static.is_connected()
    static.close()
    again = connected(MqttClient(profile=Profile.create_instance(
        DynamicActivationLogin(broker_url(live), pk, product_secret, "dyn-1"))))
    assert not again.is_connected(), "an activated device must not activate again"
    again.close()


def test_gateway_adds_and_logs_in_a_sub_device(live: LiveServer, api: EnOSDefaultClient, account: Account) -> None:
    gw_pk = product(api, account, product_type="Gateway")
    sub_pk = product(api, account)
    gw = device(api, account, gw_pk, "gw-1")
    sub = device(api, account, sub_pk, "sub-1")
    client = connected(MqttClient(broker_url(live), gw_pk, "gw-1", gw["deviceSecret"]))
    added = client.publish(TopoAddRequest.builder().add_sub_device(
        SubDeviceInfo(sub_pk, "sub-1", sub["deviceSecret"])).build())
    assert added.get_code() == 200, added.get_message()
    topo = client.publish(TopoGetRequest.builder().build())
    assert topo.get_code() == 200
    assert [d["deviceKey"] for d in topo.get_data()] == ["sub-1"]
    login = client.publish(SubDeviceLoginRequest.builder().set_sub_device_info(
        sub_pk, "sub-1", sub["deviceSecret"]).build())
    assert login.get_code() == 200, login.get_message()
    wait_status(api, account, sub["assetId"], "online")
    logout = client.publish(SubDeviceLogoutRequest.builder().set_sub_product_key(sub_pk)
                            .set_sub_device_key("sub-1").build())
    assert logout.get_code() == 200
    wait_status(api, account, sub["assetId"], "offline")
    client.close()
