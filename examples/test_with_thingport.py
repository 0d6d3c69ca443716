"""Your firmware's and your backend's tests against Thingport instead of a vendor's cloud.

`pip install thingport` gives pytest the fixtures `thingport_server`, `thingport_app` and
`thingport_device` (docs/testing.md); there is nothing to configure. These tests drive the vendors'
own Python SDKs: `enos-mqtt-sdk-python` as the device, `enos-api-sdk-python` as the application.

    pip install thingport enos-mqtt-sdk-python requests
    pip install --no-deps enos-api-sdk-python==0.0.4   # its pins predate Python 3.10 (docs/enos.md)
    pytest examples/
"""

import threading
import time

from enos.core.message.IConnectCallback import IConnectCallback
from enos.core.MqttClient import MqttClient
from enosapi.client.EnOSDefaultClient import EnOSDefaultClient
from enosapi.request.CreateProductRequest import CreateProductRequest
from enosapi.request.ListProductsRequest import ListProductsRequest


class Online(IConnectCallback):
    def __init__(self):
        self.event = threading.Event()

    def on_connect(self):
        self.event.set()


def device_sdk(server, device):
    """The EnOS device SDK, logged in as ``device`` to Thingport's MQTT broker.

    It connects with a callback: the SDK's blocking connect() can miss a CONNACK that arrives as
    fast as a local server sends it, and then waits its whole 10 s timeout (docs/quickstart.md).
    """
    client = MqttClient(server.mqtt_url, device.product_key, device.device_key, device.secret)
    client.get_profile().set_auto_reconnect(False)
    online = Online()
    client.connect(online)
    assert online.event.wait(10), "no CONNACK"
    return client


def test_a_device_logs_in_with_the_enos_device_sdk(thingport_server, thingport_device):
    client = device_sdk(thingport_server, thingport_device)
    try:
        assert client.is_connected()
    finally:
        client.close()


def test_replacing_a_device_ends_its_session(thingport_server, thingport_app, thingport_device):
    client = device_sdk(thingport_server, thingport_device)
    enos = thingport_server.enos(thingport_app)  # signs Connect Service calls as the application
    replaced = enos.data("POST", "/connect-service/v2.1/devices",
                         {"action": "replaceDevice", "assetId": thingport_device.asset_id},
                         {"newDeviceKey": "replacement-1"})
    assert replaced["deviceKey"] == "replacement-1" and replaced["deviceSecret"] != thingport_device.secret
    deadline = time.monotonic() + 5
    while client.is_connected():
        assert time.monotonic() < deadline, "the replaced device is still connected"
        time.sleep(0.05)
    client.close()


def test_a_backend_creates_products_with_the_enos_api_sdk(thingport_server, thingport_app):
    api = EnOSDefaultClient(thingport_server.url, thingport_app.app_key, thingport_app.secret)
    body = {"productName": {"defaultValue": "Inverter"}, "productType": "Device", "dataFormat": "Json",
            "modelId": "model", "biDirectionalAuth": False}
    created = api.execute(CreateProductRequest(thingport_app.org_id, body))
    assert created.is_success(), created.submsg
    listed = api.execute(ListProductsRequest(thingport_app.org_id))
    assert [p["productKey"] for p in listed.data] == [created.data]
