"""The helpers of the test server users get from ``pip install thingport`` (docs/testing.md), used
through the plugin's own fixtures, as a user's test would."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from thingport.connect.mqtt.client import ConnectRefused, MqttClient
from thingport.crypto import caller_secret
from thingport.testing import App, Device, EnosError, ThingportServer

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def login(server: ThingportServer, device: Device, secret: str | None = None) -> int:
    """The CONNACK code of the device's EnOS login (0: accepted)."""
    client_id, user, password = device.enos_login()
    if secret is not None:
        from dataclasses import replace

        client_id, user, password = replace(device, secret=secret).enos_login()

    async def go() -> int:
        client = MqttClient(client_id, username=user, password=password)
        try:
            await client.connect(server.mqtt_host, server.mqtt_port)
        except ConnectRefused as exc:
            return exc.return_code
        await client.close()
        return 0

    return asyncio.run(go())


def test_the_fixtures_give_a_device_that_logs_in(thingport_server: ThingportServer, thingport_app: App,
                                                 thingport_device: Device) -> None:
    assert httpx.get(f"{thingport_server.url}/health").json()["status"] == "ok"
    assert thingport_server.mqtt_url == f"tcp://127.0.0.1:{thingport_server.mqtt_port}"
    assert thingport_device.org_id == thingport_app.org_id and len(thingport_device.secret) == 20
    assert login(thingport_server, thingport_device) == 0
    assert login(thingport_server, thingport_device, secret="x" * 20) == 4
    got = thingport_server.wait_for_status(thingport_device, "offline", app=thingport_app)
    assert got["deviceSecret"] == thingport_device.secret


def test_each_app_has_an_organization_of_its_own(thingport_server: ThingportServer) -> None:
    first, second = thingport_server.create_app(), thingport_server.create_app(name="second")
    assert first.org_id != second.org_id
    thingport_server.create_device(thingport_server.create_product(first))
    search = {"pagination": {"pageNo": 1, "pageSize": 10}}
    for app, count in ((first, 1), (second, 0)):
        found = thingport_server.enos(app).data("POST", "/connect-service/v2.1/devices", {"action": "search"}, search)
        assert len(found) == count


def test_products_devices_permissions_and_v24_secrets(thingport_server: ThingportServer) -> None:
    org = thingport_server.create_org("Acme", org_id="o-plugin", model_id="meter")
    app = thingport_server.create_app(org, rsa_key=True)
    gateway = thingport_server.create_product(app, name="Hub", gateway=True, dynamic_activation=True)
    assert gateway.gateway and gateway.secret and gateway.org_id == "o-plugin"
    device = thingport_server.create_device(gateway, device_key="hub-1", tags={"site": "north"})
    assert (device.device_key, device.product_key) == ("hub-1", gateway.product_key)

    enos = thingport_server.enos(app)
    v24 = enos.data("GET", "/connect-service/v2.4/devices",
                    {"action": "get", "assetId": device.asset_id, "requireSecret": "true"})
    assert app.private_key_pem is not None
    assert caller_secret.decrypt(app.private_key_pem, v24["deviceSecret"], v24["sessionKey"]) == device.secret
    for _ in range(3):  # the same call again at once: each is signed with a later timestamp
        enos.data("GET", "/connect-service/v2.1/devices", {"action": "get", "assetId": device.asset_id})

    reader = thingport_server.create_app(org, permissions=["device:read"])
    with pytest.raises(EnosError, match="99403"):
        thingport_server.create_product(reader)


def test_helpers_without_arguments_share_one_app_and_product(thingport_server: ThingportServer) -> None:
    a, b = thingport_server.create_device(), thingport_server.create_device()
    assert a.product_key == b.product_key and a.asset_id != b.asset_id
    assert thingport_server.default_app() is thingport_server.default_app()
    assert thingport_server.admin("GET", "/orgs")
