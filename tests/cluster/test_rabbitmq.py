"""Beyond one machine: two Thingport nodes behind HAProxy, devices on a two-node RabbitMQ cluster, PostgreSQL.

The deployment of docs/deploy.md, with its own files (``deploy/haproxy/haproxy.cfg``,
``deploy/rabbitmq/*``) on loopback ports. RabbitMQ's HTTP auth backend asks HAProxy, which spreads the
checks over the two Thingport nodes; node A consumes AMQP from RabbitMQ node 1, node B from node 2.
The vendor SDKs log in through either RabbitMQ node; a replace made through node A kicks the device
wherever it is connected; topology requests over MQTT are answered; and after ``kill -9`` of node A,
connected devices stay connected and logins and requests go on through node B. The times measured
are printed (``-s``) and recorded in docs/deploy.md.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from enos.core.MqttClient import MqttClient
from enos.message.upstream.topo.SubDeviceInfo import SubDeviceInfo
from enos.message.upstream.topo.TopoAddRequest import TopoAddRequest
from enos.message.upstream.topo.TopoGetRequest import TopoGetRequest
from enosapi.client.EnOSDefaultClient import EnOSDefaultClient
from linkkit.linkkit import LinkKit

from tests.compat.conftest import Account, make_account
from tests.compat.enos_requests import ReplaceDeviceRequest
from tests.compat.test_enos_mqtt_sdk import connected, device, product, wait_status
from tests.compat.test_enos_sdk import ok
from tests.compat.test_linkkit import Callbacks
from tests.compat.test_linkkit import stop as stop_linkkit
from tests.conftest import PG_URL, reset_postgres
from tests.support import haproxy, rabbitmq
from tests.support.device_login import enos_connect
from tests.support.live_server import LiveServer
from tests.support.processes import free_port, start_thingport, stop
from thingport.crypto.keyring import Keyring

pytestmark = [pytest.mark.slow, pytest.mark.subprocess, pytest.mark.rabbitmq, pytest.mark.sdk]

HOOK_TOKEN = "cluster-hook-token"
OPERATOR_TOKEN = "cluster-operator-token"
#: RabbitMQ's CONNACK for whatever its auth backend denies.
REFUSED = 4


@dataclass
class Deployment:
    cluster: rabbitmq.Cluster
    #: HAProxy's HTTP frontend (the API and RabbitMQ's auth backend), its MQTT frontend and stats page.
    url: str
    mqtt_port: int
    stats_url: str
    nodes: dict[str, tuple[str, subprocess.Popen[bytes]]] = field(default_factory=dict)

    work: Path = Path()

    def node_url(self, name: str) -> str:
        return self.nodes[name][0]

    def logs(self) -> str:
        """What the Thingport nodes logged."""
        return "".join(p.read_text(errors="replace") for p in self.work.glob("serve-*.log"))

    def rabbit_port(self, i: int) -> int:
        return self.cluster.nodes[i].mqtt_port


def needs() -> str | None:
    """Why the scenario cannot run here, if it cannot (CI installs everything it needs)."""
    if rabbitmq.sbin() is None:
        return "rabbitmq-server is not installed (.ci/run installs it: apt-get install rabbitmq-server)"
    if haproxy.binary() is None:
        return "haproxy is not installed (.ci/run installs it: apt-get install haproxy)"
    if not PG_URL:
        return "two Thingport nodes share PostgreSQL: set THINGPORT_TEST_DATABASE_URL"
    return None


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    reason = needs()
    if reason is not None:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("cluster")
    asyncio.run(reset_postgres(PG_URL))
    http_a, http_b, lb_http, lb_mqtt, stats = (free_port() for _ in range(5))
    key_file = work / "master.key"
    Keyring.generate().save(key_file)
    auth = f"http://127.0.0.1:{lb_http}/mqtt/rabbitmq/{{kind}}?token={HOOK_TOKEN}"
    with rabbitmq.running(work, auth) as cluster:
        env = {"THINGPORT_HTTP_BIND": f"127.0.0.1:{lb_http}", "THINGPORT_NODE1_HTTP": f"127.0.0.1:{http_a}",
               "THINGPORT_NODE2_HTTP": f"127.0.0.1:{http_b}", "MQTT_BIND": f"127.0.0.1:{lb_mqtt}",
               "MQTT_SERVER1": f"127.0.0.1:{cluster.nodes[0].mqtt_port}",
               "MQTT_SERVER2": f"127.0.0.1:{cluster.nodes[1].mqtt_port}", "HAPROXY_STATS_BIND": f"127.0.0.1:{stats}"}
        with haproxy.running(work, env, wait_for=lb_http):
            dep = Deployment(cluster, f"http://127.0.0.1:{lb_http}", lb_mqtt, f"http://127.0.0.1:{stats}", work=work)
            try:
                for i, (name, port) in enumerate((("A", http_a), ("B", http_b))):
                    data_dir = work / f"node-{name}"
                    dep.nodes[name] = (f"http://127.0.0.1:{port}", start_thingport(data_dir, port, {
                        "THINGPORT_DATABASE_URL": PG_URL, "THINGPORT_MASTER_KEY_FILE": str(key_file),
                        "THINGPORT_OPERATOR_TOKEN": OPERATOR_TOKEN, "THINGPORT_RABBITMQ_AMQP_URL": cluster.amqp_url(i),
                        "THINGPORT_RABBITMQ_API_URL": cluster.api_url(i), "THINGPORT_RABBITMQ_HOOK_TOKEN": HOOK_TOKEN}))
                # HAProxy found both nodes down before they started: until its health checks see them up
                until(lambda: all(state == "UP" for server, state in haproxy.server_states(dep.stats_url).items()
                                  if server.startswith("thingport_")), 15, "HAProxy seeing both nodes up")
                yield dep
            finally:
                for _, proc in dep.nodes.values():
                    stop(proc)


def enos_url(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


def login(port: int, pk: str, dk: str, secret: str, timeout_s: float = 5.0) -> int:
    """A signed EnOS login with a plain MQTT client: the CONNACK code (-1: no answer in time)."""
    cid, user, password = enos_connect(pk, dk, secret)
    got: list[int] = []
    answered = threading.Event()

    def on_connect(_c: Any, _u: Any, _f: Any, rc: int) -> None:
        got.append(rc)
        answered.set()

    client = paho.Client(cid)
    client.username_pw_set(user, password)
    client.on_connect = on_connect
    try:
        client.connect("127.0.0.1", port, keepalive=30)
    except OSError:
        return -1
    client.loop_start()
    answered.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    return got[0] if got else -1


def until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until ``check()`` holds; fails after ``timeout_s``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.05)
    return time.monotonic() - start


def start_linkkit(port: int, pk: str, dn: str, secret: str) -> tuple[LinkKit, Callbacks]:
    kit = LinkKit("127.0.0.1", pk, dn, secret)
    kit.config_mqtt(port=port, secure="", keep_alive=60)
    calls = Callbacks()
    kit.on_connect = calls.hook("connect")
    kit.on_gateway_add_subdev_topo_reply = calls.hook("topo_add")
    kit.on_gateway_login_subdev_reply = calls.hook("login")
    kit.on_subscribe_topic = calls.hook("subscribe")
    kit.connect_async()
    assert calls.wait("connect")[1] == 0
    # Alibaba's cloud subscribes a device to its system topics itself; a broker does only what the
    # client asks, so the app subscribes (docs/operations.md, "RabbitMQ")
    assert kit.subscribe_topic([(f"/sys/{pk}/{dn}/#", 1), (f"/ext/session/{pk}/{dn}/#", 1)])[0] == 0
    calls.wait("subscribe")
    return kit, calls


def test_two_nodes_behind_rabbitmq(deployment: Deployment) -> None:
    dep = deployment
    live = LiveServer(dep.url, OPERATOR_TOKEN)
    account: Account = make_account(live)
    api = EnOSDefaultClient(dep.url, account.app_key, account.secret)
    gw_pk = product(api, account, product_type="Gateway")
    sub_pk = product(api, account)
    gw, sub, meter = (device(api, account, pk, dk) for pk, dk in ((gw_pk, "gw-1"), (sub_pk, "sub-1"),
                                                                  (sub_pk, "meter-1")))
    lk_gw, lk_sub = device(api, account, gw_pk, "lk-gw"), device(api, account, sub_pk, "lk-sub")
    dotted, probe = device(api, account, sub_pk, "meter.2"), device(api, account, sub_pk, "probe-1")
    measured: dict[str, float] = {}

    # the EnOS SDK through RabbitMQ node 1: online, its topology request answered by either Thingport node
    enos_gw = connected(MqttClient(enos_url(dep.rabbit_port(0)), gw_pk, "gw-1", gw["deviceSecret"]))
    assert enos_gw.is_connected()
    wait_status(api, account, gw["assetId"], "online")
    added = enos_gw.publish(TopoAddRequest.builder().add_sub_device(
        SubDeviceInfo(sub_pk, "sub-1", sub["deviceSecret"])).build())
    assert added.get_code() == 200, added.get_message()
    assert [d["deviceKey"] for d in enos_gw.publish(TopoGetRequest.builder().build()).get_data()] == ["sub-1"]

    # linkkit through RabbitMQ node 2: answered in Alink form
    kit, calls = start_linkkit(dep.rabbit_port(1), gw_pk, "lk-gw", lk_gw["deviceSecret"])
    try:
        wait_status(api, account, lk_gw["assetId"], "online")
        assert kit.gateway_add_subdev_topo([[sub_pk, "lk-sub", lk_sub["deviceSecret"]]])[0] == 0
        _rid, code, data, _msg, _ud = calls.wait("topo_add")
        assert code == 200 and data == [{"productKey": sub_pk, "deviceName": "lk-sub"}], data

        # a device whose key holds '.' is refused behind RabbitMQ (its topics would not survive), saying why
        assert login(dep.rabbit_port(0), sub_pk, "meter.2", dotted["deviceSecret"]) == REFUSED
        assert "'meter.2' contains '.'" in dep.logs()

        # a replace through node A kicks the device on RabbitMQ node 2, wherever its session is known
        meter_client = connected(MqttClient(enos_url(dep.rabbit_port(1)), sub_pk, "meter-1", meter["deviceSecret"]))
        wait_status(api, account, meter["assetId"], "online")
        node_a = EnOSDefaultClient(dep.node_url("A"), account.app_key, account.secret)
        started = time.monotonic()
        replaced = ok(node_a.execute(ReplaceDeviceRequest(account.org_id, "meter-1b", asset_id=meter["assetId"])))
        measured["replace → kicked (s)"] = time.monotonic() - started + until(
            lambda: not meter_client.is_connected(), 10, "the replaced device's connection closed")
        meter_client.close()
        assert login(dep.rabbit_port(0), sub_pk, "meter-1", meter["deviceSecret"]) == REFUSED
        assert login(dep.rabbit_port(1), sub_pk, "meter-1b", replaced["deviceSecret"]) == 0
        assert login(dep.mqtt_port, sub_pk, "meter-1b", replaced["deviceSecret"]) == 0  # through HAProxy's MQTT

        # kill -9 of node A: devices stay connected to RabbitMQ, node B answers logins and requests
        killed = time.monotonic()
        dep.nodes["A"][1].send_signal(signal.SIGKILL)
        dep.nodes["A"][1].wait()
        refused: list[int] = []
        for i in (0, 1):
            until(lambda i=i: login(dep.rabbit_port(i), sub_pk, "probe-1", probe["deviceSecret"]) == 0
                  or bool(refused.append(i)), 15, f"a login through RabbitMQ node {i + 1} after the kill")
            measured[f"kill -9 → login through RabbitMQ node {i + 1} (s)"] = time.monotonic() - killed
        measured["logins refused after the kill"] = len(refused)
        started = time.monotonic()
        got = enos_gw.publish(TopoGetRequest.builder().build())
        measured["a request after the kill answered in (s)"] = time.monotonic() - started
        assert got.get_code() == 200 and enos_gw.is_connected()
        assert kit.gateway_add_subdev_topo([[sub_pk, "lk-sub", lk_sub["deviceSecret"]]])[0] == 0
        assert calls.wait("topo_add")[1] == 200
        until(lambda: haproxy.server_states(dep.stats_url)["thingport_http/thingport1"].startswith("DOWN"), 15,
              "HAProxy's health check marking node A down")
        measured["kill -9 → HAProxy marks node A down (s)"] = time.monotonic() - killed
        assert not calls.events["connect"].is_set()  # linkkit's connection never dropped
        enos_gw.close()
    finally:
        stop_linkkit(kit)
    print("\ncluster measurements:", json.dumps({k: round(v, 3) for k, v in measured.items()}, indent=1))

