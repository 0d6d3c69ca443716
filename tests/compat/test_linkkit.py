"""The real ``aliyun-iot-linkkit`` 1.2.13 device SDK against a running Thingport's embedded broker.

Devices are created through the EnOS HTTP API (one registry for every dialect); the SDK logs in
with the Alink HMAC scheme, adds a sub-device to its topology and logs it in (``batch_login``),
and is told of a topology change made over HTTP.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from enosapi.client.EnOSDefaultClient import EnOSDefaultClient
from enosapi.util.const import Const
from linkkit.linkkit import LinkKit

from tests.compat.conftest import Account
from tests.compat.enos_requests import ConnectServiceRequest
from tests.compat.test_enos_mqtt_sdk import device, product, wait_status
from tests.compat.test_enos_sdk import ok
from tests.support.live_server import LiveServer
from tests.support.processes import free_port
from thingport.settings import Settings

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

WAIT = 10.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, mqtt_port=free_port())


@pytest.fixture
def api(live: LiveServer, account: Account) -> EnOSDefaultClient:
    return EnOSDefaultClient(live.url, account.app_key, account.secret)


@dataclass
class Callbacks:
    """What linkkit reported, one event per callback kind."""

    seen: dict[str, Any] = field(default_factory=dict)
    events: dict[str, threading.Event] = field(default_factory=dict)

    def hook(self, name: str) -> Any:
        self.events[name] = threading.Event()

        def record(*args: Any) -> None:
            self.seen[name] = args
            self.events[name].set()
        return record

    def wait(self, name: str) -> Any:
        assert self.events[name].wait(WAIT), f"linkkit never called {name}"
        self.events[name].clear()
        return self.seen[name]


def stop(kit: LinkKit) -> None:
    """Disconnect and destroy a linkkit client.

    paho 1.x writes DISCONNECT from the caller's thread while its network thread may be writing too
    (the PUBACK of the last downlink); when that thread sends the queued DISCONNECT first and closes
    the socket, the caller's own write fails with EBADF. The race is the client's, not the server's
    (the server sees a clean DISCONNECT), so it is tolerated here rather than failing the test.
    """
    with contextlib.suppress(OSError):
        kit.disconnect()
    kit.destruct()


def start(live: LiveServer, pk: str, dn: str, secret: str) -> tuple[LinkKit, Callbacks]:
    kit = LinkKit("127.0.0.1", pk, dn, secret)
    kit.config_mqtt(port=live.mqtt_port, secure="", keep_alive=60)
    calls = Callbacks()
    kit.on_connect = calls.hook("connect")
    kit.on_gateway_add_subdev_topo_reply = calls.hook("topo_add")
    kit.on_gateway_login_subdev_reply = calls.hook("login")
    kit.on_gateway_topo_change = calls.hook("topo_change")
    kit.connect_async()
    return kit, calls


def test_login_topology_and_sub_device_login(live: LiveServer, api: EnOSDefaultClient, account: Account) -> None:
    gw_pk = product(api, account, product_type="Gateway")
    sub_pk = product(api, account)
    gw = device(api, account, gw_pk, "lk-gw")
    sub = device(api, account, sub_pk, "lk-sub")
    other = device(api, account, sub_pk, "lk-other")
    kit, calls = start(live, gw_pk, "lk-gw", gw["deviceSecret"])
    try:
        _session_flag, rc, _ud = calls.wait("connect")
        assert rc == 0
        wait_status(api, account, gw["assetId"], "online")

        rc, _ = kit.gateway_add_subdev_topo([[sub_pk, "lk-sub", sub["deviceSecret"]]])
        assert rc == 0
        _rid, code, data, _msg, _ud = calls.wait("topo_add")
        assert code == 200 and data == [{"productKey": sub_pk, "deviceName": "lk-sub"}]

        rc, _ = kit.gateway_login_subdev([[sub_pk, "lk-sub", sub["deviceSecret"]]])
        assert rc == 0
        _rid, code, data, _msg, _ud = calls.wait("login")
        assert code == 200, data
        wait_status(api, account, sub["assetId"], "online")

        # a change made over HTTP reaches the gateway as thing/topo/change
        ok(api.execute(ConnectServiceRequest(
            account.org_id, Const.request_post, "v2.1", "device-topos", "addSubDevice",
            body={"gateway": {"assetId": gw["assetId"]}, "subDevices": [{"assetId": other["assetId"]}]})))
        _rid, params, _ud = calls.wait("topo_change")
        assert params == {"status": 0, "subList": [{"productKey": sub_pk, "deviceName": "lk-other"}]}
    finally:
        stop(kit)
    wait_status(api, account, sub["assetId"], "offline")
