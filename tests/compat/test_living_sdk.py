"""The Living Platform consumer story end to end: the real app client and real devices on real MQTT.

The app is the vendor's ``alibabacloud-iot-api-gateway`` client, unchanged, against a running
Thingport over HTTP. The devices connect to that server's embedded broker: the vendor's device SDK
``aliyun-iot-linkkit`` 1.2.13 where it has the feature (login, topology, sub-device login, topology
changes, and any other downlink through its ``on_topic_message``), and a plain paho client signing
like the C SDK for what linkkit has no API for (``thing/awss/enrollee/match`` and ``found``,
``thing/cipher/get``). The operator's part (products, devices, users) goes through the EnOS API
and the admin API. Every assertion is on what a client was answered or was sent.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from dataclasses import replace
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from alibabacloud_iot_api_gateway.client import Client
from alibabacloud_iot_api_gateway.models import CommonParams, Config, IoTApiRequest
from alibabacloud_tea_util.models import RuntimeOptions
from enosapi.client.EnOSDefaultClient import EnOSDefaultClient
from linkkit.linkkit import LinkKit

from tests.compat.conftest import Account
from tests.compat.enos_requests import GetProductRequest
from tests.compat.test_enos_mqtt_sdk import device, product, wait_status
from tests.compat.test_enos_sdk import ok
from tests.compat.test_linkkit import stop
from tests.support.device_login import alink_connect, enrollee_ie
from tests.support.live_server import LiveServer
from tests.support.processes import free_port
from thingport.settings import Settings

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

WAIT = 10.0
RANDOM = "00112233445566778899aabbccddeeff"
TOKEN = "0123456789ABCDEF0123456789ABCDEF"
SHORT_WINDOW_S = 1


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The compat server of tests/compat/conftest.py, with its embedded broker on."""
    return replace(settings, mqtt_port=free_port())


class App:
    """An app on the vendor SDK: every call is signed by the SDK itself."""

    def __init__(self, live: LiveServer, account: Account, secret: str | None = None) -> None:
        host = live.url.removeprefix("http://")
        self.client = Client(Config(app_key=account.app_key, app_secret=secret or account.secret, domain=host,
                                    protocol="http"))
        self.iot_token: str | None = None

    def call(self, path: str, params: dict[str, Any], api_ver: str = "1.0.2") -> tuple[int, Any, dict[str, str]]:
        req = IoTApiRequest(version="1.0", params=params,
                            request=CommonParams(api_ver=api_ver, iot_token=self.iot_token, language="en-US"))
        r = self.client.do_request(path, "http", "POST", None, req, RuntimeOptions())
        return r.status_code, json.loads(r.body), r.headers

    def ok(self, path: str, params: dict[str, Any], api_ver: str = "1.0.2") -> Any:
        status, body, _ = self.call(path, params, api_ver)
        assert status == 200 and body["code"] == 200, body
        return body["data"]

    def code(self, path: str, params: dict[str, Any], api_ver: str = "1.0.2") -> int:
        status, body, _ = self.call(path, params, api_ver)
        assert status == 200, body
        return int(body["code"])


class PlainDevice:
    """A device on paho alone, for the topics linkkit 1.2.13 has no API for."""

    def __init__(self, live: LiveServer, pk: str, dn: str, secret: str) -> None:
        self.base = f"/sys/{pk}/{dn}"
        self.inbox: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        connected = threading.Event()
        client_id, username, password = alink_connect(pk, dn, secret)
        self.client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, rc: rc == 0 and connected.set()
        self.client.on_message = lambda _c, _u, m: self.inbox.put((m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", live.mqtt_port, 60)
        self.client.loop_start()
        assert connected.wait(WAIT), f"{dn} could not log in"
        self._ids = 0

    def request(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """Publish an Alink request on the device's own topic; its reply must be the next message."""
        self._ids += 1
        body = {"id": str(self._ids), "version": "1.0", "method": path.replace("/", "."), "params": params}
        self.client.publish(f"{self.base}/{path}", json.dumps(body), 1)
        reply = self.next(f"{path}_reply")
        assert reply["id"] == str(self._ids), reply
        return reply

    def next(self, path: str) -> dict[str, Any]:
        """The next message the device gets, which must be on ``path`` under its topics."""
        topic, body = self.inbox.get(timeout=WAIT)
        assert topic == f"{self.base}/{path}", (topic, body)
        return body

    def answer(self, command: dict[str, Any], path: str) -> None:
        """Acknowledge a platform command, as the C SDK does."""
        reply = {"id": command["id"], "code": 200, "data": {}}
        self.client.publish(f"{self.base}/{path}_reply", json.dumps(reply), 1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Kit:
    """A linkkit device; what the SDK reports through the hooked callbacks, in arrival order."""

    def __init__(self, live: LiveServer, pk: str, dn: str, secret: str) -> None:
        self.base = f"/sys/{pk}/{dn}"
        self.inbox: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self.kit = LinkKit("127.0.0.1", pk, dn, secret)
        self.kit.config_mqtt(port=live.mqtt_port, secure="", keep_alive=60)
        for name in ("on_connect", "on_gateway_add_subdev_topo_reply", "on_gateway_login_subdev_reply",
                     "on_gateway_topo_change", "on_topic_message"):
            setattr(self.kit, name, self._hook(name))
        self.kit.connect_async()
        _flag, rc, _ud = self.next("on_connect")
        assert rc == 0, f"{dn} could not log in"

    def _hook(self, name: str) -> Any:
        return lambda *args: self.inbox.put((name, args))

    def next(self, callback: str) -> tuple[Any, ...]:
        """The arguments of the next callback linkkit made, which must be ``callback``."""
        name, args = self.inbox.get(timeout=WAIT)
        assert name == callback, (name, args)
        return args

    def message(self, path: str) -> dict[str, Any]:
        """The next callback must be ``on_topic_message`` for ``path`` under the device's topics."""
        topic, payload, _qos, _ud = self.next("on_topic_message")
        assert topic == f"{self.base}/{path}", (topic, payload)
        return dict(json.loads(payload))

    def close(self) -> None:
        stop(self.kit)


def bind_notify(body: dict[str, Any], iot_id: str, identity_id: str) -> None:
    assert body["method"] == "_thing.event.notify" and body["params"]["identifier"] == "awss.BindNotify"
    value = body["params"]["value"]
    assert (value["iotId"], value["identityId"], value["owned"], value["operation"]) == (iot_id, identity_id, 1,
                                                                                         "Bind")


def test_consumer_story(live: LiveServer, account: Account) -> None:
    # the operator: products with Living metadata, devices, an end user with an auth code
    api = EnOSDefaultClient(live.url, account.app_key, account.secret)

    def living_product(product_type: str = "Device", **meta: Any) -> tuple[str, str]:
        pk = product(api, account, product_type=product_type)
        live.admin("PUT", f"/living/orgs/{account.org_id}/products/{pk}", {"status": "published", **meta})
        return pk, ok(api.execute(GetProductRequest(account.org_id, pk)))["productSecret"]

    lamp_pk, lamp_product_secret = living_product()
    short_pk, _ = living_product(bindWindowS=SHORT_WINDOW_S)
    gw_pk, _ = living_product("Gateway")
    sub_pk, _ = living_product(requirePermitJoin=True)
    devices = {name: device(api, account, pk, name) for name, pk in (
        ("hub-1", lamp_pk), ("bulb", lamp_pk), ("lamp", lamp_pk), ("plug", lamp_pk), ("late", short_pk),
        ("gw-1", gw_pk), ("sensor", sub_pk))}
    iot = {name: d["assetId"] for name, d in devices.items()}
    user = live.admin("POST", f"/living/orgs/{account.org_id}/users", {"login": "alice"})
    code = live.admin("POST", f"/living/users/{user['identityId']}/auth-codes")["authCode"]

    late = PlainDevice(live, short_pk, "late", devices["late"]["deviceSecret"])  # its short window starts now
    late_since = time.monotonic()
    hub = PlainDevice(live, lamp_pk, "hub-1", devices["hub-1"]["deviceSecret"])
    lamp = PlainDevice(live, lamp_pk, "lamp", devices["lamp"]["deviceSecret"])
    plug = Kit(live, lamp_pk, "plug", devices["plug"]["deviceSecret"])
    gw = Kit(live, gw_pk, "gw-1", devices["gw-1"]["deviceSecret"])
    try:
        # the app signs in and creates a home
        app = App(live, account)
        session = app.ok("/account/createSessionByAuthCode",
                         {"request": {"authCode": code, "accountType": "OA_SESSION"}}, "1.0.4")
        assert session["identityId"] == user["identityId"] and session["iotTokenExpire"] > 0
        app.iot_token = session["iotToken"]
        home = app.ok("/living/home/create", {"name": "Home"}, "1.1.0")

        # a registrar, bound to the user, reports an enrollee it sniffed
        assert app.ok("/awss/time/window/user/bind", {"homeId": home, "productKey": lamp_pk,
                                                      "deviceName": "hub-1"}, "1.0.8") == iot["hub-1"]
        bind_notify(hub.next("_thing/event/notify"), iot["hub-1"], user["identityId"])
        ie = enrollee_ie(lamp_pk, "bulb", lamp_product_secret, bytes(16))
        found = hub.request("thing/awss/enrollee/found", {
            "awssVer": {"zconfig": "2.0"}, "type": 0, "ssid": "home-wifi", "bssid": "11:22:33:44:55:66",
            "rssi": -50, "payload": [ie]})
        assert found["code"] == 200 and found["data"] == [{"productKey": lamp_pk, "deviceName": "bulb",
                                                           "timeout": 60}]
        listed = app.ok("/awss/enrollee/list/get", {"pageNum": 1, "pageSize": 99}, "1.0.7")
        assert listed["totalNum"] == 1
        assert (listed["items"][0]["enrolleeIotId"], listed["items"][0]["regIotId"]) == (iot["bulb"], iot["hub-1"])
        # the app gets the enrollee's key: the registrar is told to check it in, then gets the same key
        key = app.ok("/awss/cipher/get", {"deviceInfoForCipher": {
            "productKey": lamp_pk, "deviceName": "bulb", "cipherType": 3, "random": RANDOM, "params": {}}}, "1.0.7")
        assert key == hashlib.sha256(f"{lamp_product_secret},".encode() + bytes.fromhex(RANDOM)).hexdigest()
        checkin = hub.next("thing/awss/enrollee/checkin")
        assert checkin["method"] == "thing.awss.enrollee.checkin"
        assert checkin["params"] == {"productKey": lamp_pk, "deviceName": "bulb", "timeout": 60}
        hub.answer(checkin, "thing/awss/enrollee/checkin")
        cipher = hub.request("thing/cipher/get", {"awssVer": {"zconfig": "2.0"}, "productKey": lamp_pk,
                                                  "deviceName": "bulb", "cipherType": 3, "random": RANDOM})
        assert cipher["code"] == 200 and cipher["data"] == {"productKey": lamp_pk, "deviceName": "bulb",
                                                            "secret": key}

        # a device reports its token; the app binds it by token and the device is told
        assert lamp.request("thing/awss/enrollee/match", {"token": TOKEN})["code"] == 200
        assert app.ok("/awss/token/check", {"token": TOKEN}, "1.0.9")["iotId"] == iot["lamp"]
        assert app.ok("/awss/token/user/bind", {"homeId": home, "productKey": lamp_pk, "deviceName": "lamp",
                                                "token": TOKEN}, "1.0.8") == iot["lamp"]
        notify = lamp.next("_thing/event/notify")
        bind_notify(notify, iot["lamp"], user["identityId"])
        assert (notify["params"]["value"]["productKey"], notify["params"]["value"]["deviceName"]) == (lamp_pk, "lamp")
        lamp.answer(notify, "_thing/event/notify")
        status, body, _ = app.call("/awss/token/check", {"token": TOKEN}, "1.0.9")
        assert (status, body["code"], body["message"]) == (200, 6608, "token not found")

        # another device connected (linkkit): bound by time window, and told through the SDK
        assert app.ok("/awss/time/window/user/bind", {"homeId": home, "productKey": lamp_pk,
                                                      "deviceName": "plug"}, "1.0.8") == iot["plug"]
        bind_notify(plug.message("_thing/event/notify"), iot["plug"], user["identityId"])
        # after its window: refused
        time.sleep(max(0.0, late_since + SHORT_WINDOW_S + 0.1 - time.monotonic()))  # no message marks it
        assert app.code("/awss/time/window/user/bind", {"homeId": home, "productKey": short_pk,
                                                        "deviceName": "late"}, "1.0.8") == 6618

        # the gateway (linkkit): bound, its permit-required sub-device refused until the app permits
        assert app.ok("/awss/time/window/user/bind", {"homeId": home, "productKey": gw_pk,
                                                      "deviceName": "gw-1"}, "1.0.8") == iot["gw-1"]
        bind_notify(gw.message("_thing/event/notify"), iot["gw-1"], user["identityId"])
        sensor = [[sub_pk, "sensor", devices["sensor"]["deviceSecret"]]]
        assert gw.kit.gateway_add_subdev_topo(sensor)[0] == 0
        _rid, code_, data, message, _ud = gw.next("on_gateway_add_subdev_topo_reply")
        assert code_ == 460 and "does not permit" in message, (code_, data, message)
        assert app.ok("/thing/gateway/permit", {"iotId": iot["gw-1"], "productKey": sub_pk, "time": 60}) is None
        permit = gw.message("thing/gateway/permit")
        assert permit["method"] == "thing.gateway.permit" and permit["params"] == {"productKey": sub_pk, "time": 60}
        assert gw.kit.gateway_add_subdev_topo(sensor)[0] == 0
        _rid, code_, data, _msg, _ud = gw.next("on_gateway_add_subdev_topo_reply")
        assert code_ == 200 and data == [{"productKey": sub_pk, "deviceName": "sensor"}]
        assert gw.kit.gateway_login_subdev(sensor)[0] == 0
        assert gw.next("on_gateway_login_subdev_reply")[1] == 200
        wait_status(api, account, iot["sensor"], "online")

        # the app removes the sub-device: one thing/topo/change, and the sub-device's session ends
        assert app.ok("/thing/topo/remove", {"iotId": iot["gw-1"], "subIotId": iot["sensor"]}) is None
        _rid, params, _ud = gw.next("on_gateway_topo_change")
        assert params == {"status": 1, "subList": [{"productKey": sub_pk, "deviceName": "sensor"}]}
        wait_status(api, account, iot["sensor"], "offline")
        assert app.ok("/thing/gateway/permit", {"iotId": iot["gw-1"], "time": 65535}) is None
        assert gw.message("thing/gateway/permit")["params"] == {"productKey": "", "time": 65535}  # no 2nd change

        listed = app.ok("/uc/listBindingByAccount", {"pageNo": 1, "pageSize": 50}, "1.0.8")
        assert {b["iotId"] for b in listed["data"]} == {iot["hub-1"], iot["lamp"], iot["plug"], iot["gw-1"]}
        assert {b["status"] for b in listed["data"]} == {1}  # all online
    finally:
        for d in (late, hub, lamp, plug, gw):
            d.close()


def test_wrong_secret_gets_400_with_the_string_to_sign(live: LiveServer, account: Account) -> None:
    app = App(live, account, secret="not-the-secret")
    status, body, headers = app.call("/living/home/query", {"pageNo": 1, "pageSize": 10}, "1.1.0")
    assert status == 400 and body["code"] == 400
    message = {k.lower(): v for k, v in headers.items()}["x-ca-error-message"]
    assert message.startswith("Invalid Signature, Server StringToSign:`POST#application/json#")


def test_bad_iot_token_is_401(live: LiveServer, account: Account) -> None:
    app = App(live, account)
    app.iot_token = "0" * 32
    status, body, _ = app.call("/living/home/query", {"pageNo": 1, "pageSize": 10}, "1.1.0")
    assert status == 200 and body["code"] == 401 and "iotToken" in body["message"]
