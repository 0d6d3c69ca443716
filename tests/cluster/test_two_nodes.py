"""Two real ``thingport serve`` nodes with embedded brokers on one PostgreSQL (docs/operations.md,
"Several nodes"): a change made through one node is in force on the other within 1 s (its live
sessions kicked, its caches dropped), a node killed with ``kill -9`` under a create load and a login
storm, in the middle of an OceanConnect push, loses no acknowledged write, its devices log in again
through the other and the other delivers the rest of the pushes from the outbox, and a node that
loses the database refuses writes with the dialect's error, says so on ``/ready`` and recovers by
itself. The times measured are printed (``-s``) and recorded in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import paho.mqtt.client as paho
import pytest
from sqlalchemy import make_url

from tests.conftest import PG_URL, reset_postgres
from tests.support.device_login import enos_connect
from tests.support.processes import free_port, start_thingport, stop
from tests.support.receiver import Receiver, receiver
from tests.support.tcp_proxy import TcpProxy, proxying
from thingport.crypto import signing
from thingport.crypto.keyring import Keyring
from thingport.testing.enos import EnosClient
from thingport.testing.server import App, Device, Product, ThingportServer

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

TOKEN = "two-nodes-operator-token"
DEVICES = "/connect-service/v2.1/devices"


@dataclass
class Node:
    name: str
    server: ThingportServer
    proc: Any
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.data_dir.parent.glob(
            f"serve-{self.url.rsplit(':', 1)[1]}.log"))


@dataclass
class Cluster:
    work: Path
    key_file: Path
    nodes: dict[str, Node] = field(default_factory=dict)

    def start(self, name: str, database_url: str = PG_URL) -> Node:
        http, mqtt = free_port(), free_port()
        data_dir = self.work / f"node-{name}"
        proc = start_thingport(data_dir, http, {
            "THINGPORT_DATABASE_URL": database_url, "THINGPORT_MASTER_KEY_FILE": str(self.key_file),
            "THINGPORT_OPERATOR_TOKEN": TOKEN, "THINGPORT_NODE_ID": name, "THINGPORT_NODE_HEARTBEAT_S": "0.5",
            "THINGPORT_NODE_DEAD_AFTER_S": "3", "THINGPORT_OCEANCONNECT_PUSH_TIMEOUT_S": "3",
            "THINGPORT_OCEANCONNECT_PUSH_ALLOWED_NETWORKS": "127.0.0.0/8"}, mqtt_port=mqtt)
        node = Node(name, ThingportServer(f"http://127.0.0.1:{http}", mqtt, TOKEN, data_dir), proc, data_dir)
        self.nodes[name] = node
        return node


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not PG_URL:
        pytest.skip("two Thingport nodes share PostgreSQL: set THINGPORT_TEST_DATABASE_URL")
    asyncio.run(reset_postgres(PG_URL))
    work = tmp_path_factory.mktemp("two-nodes")
    key_file = work / "master.key"
    Keyring.generate().save(key_file)
    c = Cluster(work, key_file)
    try:
        c.start("A")
        c.start("B")
        yield c
    finally:
        for node in c.nodes.values():
            node.server.close()
            stop(node.proc)


class Session:
    """A device's MQTT session through a node's embedded broker (paho), and when it was closed."""

    def __init__(self, port: int, device: Device, secret: str | None = None) -> None:
        cid, user, password = enos_connect(device.product_key, device.device_key, secret or device.secret)
        self.connack: int | None = None
        self.answered_at = 0.0
        self.closed_at: float | None = None
        self._answered = threading.Event()
        self.client = paho.Client(cid)
        self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        try:
            self.client.connect("127.0.0.1", port, keepalive=30)
        except OSError:
            self.connack = -1
            return
        self.client.loop_start()
        self._answered.wait(5)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: int) -> None:
        self.connack = rc
        self.answered_at = time.monotonic()
        self._answered.set()

    def _on_disconnect(self, _c: Any, _u: Any, _rc: int) -> None:
        self.closed_at = time.monotonic()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def login(port: int, device: Device, secret: str | None = None) -> int:
    """One login's CONNACK code (-1: none)."""
    s = Session(port, device, secret)
    s.close()
    return s.connack if s.connack is not None else -1


def refused_after(port: int, device: Device, since: float, timeout_s: float) -> float:
    """Seconds from ``since`` to the CONNACK of the first login of ``device`` refused (logins tried
    one after the other; the client's own start and stop are not counted)."""
    while True:
        s = Session(port, device)
        s.close()
        assert s.connack is not None, "a login got no answer"
        assert s.answered_at - since < timeout_s, f"CONNACK {s.connack} {s.answered_at - since:.3f} s after the change"
        if s.connack != 0:
            return s.answered_at - since


def until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_a_replace_through_a_is_in_force_on_b_within_a_second(cluster: Cluster) -> None:
    a, b = cluster.nodes["A"], cluster.nodes["B"]
    device = a.server.create_device(device_key="moving-1")
    assert login(b.server.mqtt_port, device) == 0  # B keeps its login record in memory now
    live = Session(b.server.mqtt_port, device)
    assert live.connack == 0
    try:
        started = time.monotonic()
        answer = a.server.enos().data("POST", DEVICES, {"action": "replaceDevice", "assetId": device.asset_id},
                                      {"newDeviceKey": "moved-1"})
        kicked = until(lambda: live.closed_at is not None, 1.0, "the session on B closed")
        # The goal is 1 s (measured alone: 50-300 ms, docs/operations.md); the bound leaves room for a
        # loaded CI machine, where one whole paho login round trip has taken a second by itself
        refused = refused_after(b.server.mqtt_port, device, started, 2.0)
    finally:
        live.close()
    moved = Device(device.org_id, device.asset_id, device.product_key, "moved-1", answer["deviceSecret"])
    assert login(b.server.mqtt_port, moved) == 0
    print(f"\nreplace through A: session on B closed after {kicked * 1000:.0f} ms, "
          f"old secret refused through B {refused * 1000:.0f} ms after the call")


def test_a_grace_period_given_through_a_is_honoured_on_b(cluster: Cluster) -> None:
    """EnOS Replace Device with Thingport's ``gracePeriod`` through A: the session on B goes on, and the old
    key and secret log in through B, until the period ends; then B ends the session and refuses them."""
    a, b = cluster.nodes["A"], cluster.nodes["B"]
    device = a.server.create_device(device_key="rolling-1")
    live = Session(b.server.mqtt_port, device)
    assert live.connack == 0
    try:
        answer = a.server.enos().data("POST", DEVICES, {"action": "replaceDevice", "assetId": device.asset_id},
                                      {"newDeviceKey": "rolled-1", "gracePeriod": 3})
        started = time.monotonic()
        time.sleep(0.5)  # the event has reached B (within a second, the test above)
        assert live.closed_at is None
    finally:
        live.close()  # (paho would connect again once kicked)
    second = Session(b.server.mqtt_port, device)  # the old pair through B
    try:
        assert second.connack == 0
        ended = until(lambda: second.closed_at is not None, 6.0, "the old pair's session on B ended")
    finally:
        second.close()
    assert time.monotonic() - started >= 2.5
    assert login(b.server.mqtt_port, device) != 0
    moved = Device(device.org_id, device.asset_id, device.product_key, "rolled-1", answer["deviceSecret"])
    assert login(b.server.mqtt_port, moved) == 0
    print(f"\ngrace period of 3 s through A: the old pair's session on B ended {ended:.1f} s after it began")


def test_an_application_disabled_through_a_is_refused_by_b_within_a_second(cluster: Cluster) -> None:
    a, b = cluster.nodes["A"], cluster.nodes["B"]
    app = a.server.create_app()
    on_b = ThingportServer(b.url, b.server.mqtt_port, TOKEN, b.data_dir)
    try:
        product = on_b.create_product(app)  # the application and its token cached on B
        client = on_b.enos(app)
        query = {"action": "get", "productKey": product.product_key}
        assert client.call("GET", "/connect-service/v2.1/products", query)["code"] == 0
        a.server.admin("POST", f"/apps/{app.app_key}/disable")
        took = until(lambda: client.call("GET", "/connect-service/v2.1/products", query)["code"] != 0,
                     1.0, "B refusing the disabled application")
    finally:
        on_b.close()
    print(f"\napplication disabled through A: refused by B after {took * 1000:.0f} ms")


def subscribe(node: Node, app: App, notify_type: str, callback_url: str) -> None:
    """An OceanConnect subscription of ``app`` (its form login, then the subscription call)."""
    with httpx.Client(base_url=node.url) as http:
        r = http.post("/iocm/app/sec/v1.1.0/login", data={"appId": app.app_key, "secret": app.secret})
        headers = {"app_key": app.app_key, "Authorization": f"Bearer {r.json()['accessToken']}"}
        r = http.post("/iocm/app/sub/v1.2.0/subscriptions", headers=headers,
                      json={"notifyType": notify_type, "callbackUrl": callback_url})
        assert r.status_code == 201, r.text


def test_kill_9_under_load_loses_no_acknowledged_write(cluster: Cluster) -> None:
    """Creates through both nodes and logins to A; A dies mid-way, in the middle of an OceanConnect
    push; every create acknowledged is there, A's devices log in through B, and B delivers the
    pushes of every create from the outbox: each once, but for the one A had in flight, which the
    callback got from A (unanswered: A was gone) and again from B once A's lease ran out."""
    a, b = cluster.nodes["A"], cluster.nodes["B"]
    product = a.server.create_product()
    storm = [a.server.create_device(product, device_key=f"storm-{i}") for i in range(20)]
    with receiver() as rec:
        subscribe(a, product.app, "deviceAdded", rec.url)
        acknowledged, refused, logged_in = _kill_a_under_load(a, b, product, storm, rec)
        started = time.monotonic()
        until(lambda: set(acknowledged) <= {p["deviceId"] for p in rec.of("deviceAdded")}, 30,
              "every acknowledged create pushed")
        pushed_in = time.monotonic() - started
        answered = Counter(p["deviceId"] for p in rec.of("deviceAdded"))
        # A was mid-push when it died: the one push it never heard answered (the hold is shorter
        # than the push timeout, so no sender gave up on a held push)
        assert len(rec.orphaned) == 1, rec.orphaned
        [in_flight] = rec.orphaned
    twice = [device_id for device_id, n in answered.items() if n > 1]
    assert not twice, f"pushes delivered twice: {twice}"
    assert answered[in_flight["deviceId"]] == 1  # ... which B sent again, once
    print(f"\nkill -9 of A under load: {len(acknowledged)} creates acknowledged, none lost "
          f"({len(refused)} failed as A died); its {len(storm)} devices logged in through B in "
          f"{logged_in:.2f} s; {len(answered)} pushes delivered once each, the last of them "
          f"{pushed_in:.1f} s after the load (A's lease: push timeout + 5 s), the one in flight at the kill twice")
    del cluster.nodes["A"]
    a.server.close()


def _kill_a_under_load(a: Node, b: Node, product: Product, storm: list[Device], rec: Receiver
                       ) -> tuple[list[str], list[str], float]:
    """Creates through both nodes and logins to A for 4 s; A killed with both nodes mid-push (the
    callback holds its answers meanwhile). The creates acknowledged, those that failed, and the
    seconds A's devices took to log in through B."""
    acknowledged: list[str] = []
    refused: list[str] = []
    stop_at = time.monotonic() + 4
    killed = threading.Event()

    def creates(node: Node, n: int) -> None:
        client = node.server.enos(product.app)
        i = 0
        while time.monotonic() < stop_at:
            body = {"productKey": product.product_key, "timezone": "+00:00", "deviceName": {"defaultValue": "x"},
                    "deviceKey": f"load-{node.name}-{n}-{i}"}
            i += 1
            try:
                answer = client.call("POST", DEVICES, {"action": "create"}, body)
            except (httpx.HTTPError, ValueError):
                refused.append(body["deviceKey"])
                if killed.is_set() and node is a:
                    return
                continue
            if answer.get("code") == 0:
                acknowledged.append(answer["data"]["assetId"])

    def logins() -> None:
        while time.monotonic() < stop_at and not killed.is_set():
            for d in storm:
                login(a.server.mqtt_port, d)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(creates, node, n) for node in (a, b) for n in range(3)] + [pool.submit(logins)]
        time.sleep(1.2)
        rec.hold.set()
        until(lambda: rec.held >= 2, 5, "both nodes mid-push")  # one callback: one push in flight per node
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        killed.set()
        rec.hold.clear()
        for f in futures:
            f.result()
    assert acknowledged, "no create answered"
    reader = b.server.enos(product.app)
    missing = [asset_id for asset_id in acknowledged
               if reader.call("GET", DEVICES, {"action": "get", "assetId": asset_id}).get("code") != 0]
    assert not missing, f"{len(missing)} acknowledged creates lost"
    started = time.monotonic()
    assert all(login(b.server.mqtt_port, d) == 0 for d in storm)
    return acknowledged, refused, time.monotonic() - started


@pytest.fixture
def proxied(cluster: Cluster) -> Iterator[tuple[Node, TcpProxy]]:
    """Node C, whose connections to PostgreSQL go through a proxy the test cuts."""
    url = make_url(PG_URL)
    with proxying(url.host or "127.0.0.1", url.port or 5432) as proxy:
        node = cluster.start("C", url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
        try:
            yield node, proxy
        finally:
            node.server.close()
            stop(node.proc)
            del cluster.nodes["C"]


def test_a_node_that_loses_the_database_refuses_writes_and_recovers(proxied: tuple[Node, TcpProxy]) -> None:
    node, proxy = proxied
    product = node.server.create_product()
    client = node.server.enos(product.app)
    assert httpx.get(f"{node.url}/ready").status_code == 200

    def create(key: str) -> httpx.Response:
        body = {"productKey": product.product_key, "timezone": "+00:00", "deviceName": {"defaultValue": "x"},
                "deviceKey": key}
        params = {"orgId": product.org_id, "action": "create"}
        return client.http.request("POST", f"{DEVICES}?{urlencode(params)}", content=json.dumps(body).encode(),
                                   headers=_signed_headers(client, params, body))

    proxy.cut()
    took_ready = until(lambda: httpx.get(f"{node.url}/ready", timeout=5).status_code == 503, 10,
                       "/ready saying not ready")
    assert httpx.get(f"{node.url}/health").status_code == 200  # alive, only not ready
    r = create("while-down")
    assert r.status_code != 500, r.text
    assert r.json()["code"] != 0
    proxy.restore()
    took_back = until(lambda: httpx.get(f"{node.url}/ready", timeout=5).status_code == 200, 15, "/ready again")
    until(lambda: create(f"after-{time.monotonic_ns()}").json().get("code") == 0, 10, "a create succeeding again")
    assert "Traceback" not in node.log()
    print(f"\ndatabase lost: not ready after {took_ready:.2f} s; back: ready after {took_back:.2f} s")


def _signed_headers(client: EnosClient, params: dict[str, str], body: Any) -> dict[str, str]:
    """EnosClient.call's headers, for a test that needs the HTTP status too."""
    text = json.dumps(body)
    ts = client._now_ms()
    token = client.token()
    return {"Content-Type": "application/json;charset=UTF-8", "apim-accesstoken": token, "apim-timestamp": ts,
            "apim-signature": signing.apim_signature(token, params.items(), text, ts, client.app_secret)}
