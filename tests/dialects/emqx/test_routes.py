"""The EMQX 5 hooks, called with bodies shaped as EMQX renders its request templates (docs/mqtt.md)."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest

from tests.connect.conftest import MakeDevice, gateway_product, make_device, status_is  # noqa: F401 (fixtures)
from tests.support.device_login import enos_connect, enos_sub_sign, oceanconnect_connect
from thingport.dialects.emqx import routes
from thingport.domain.models import DeviceStatus
from thingport.services.connectivity import Credential
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef
from thingport.settings import Settings

TOKEN = "hook-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, emqx_hook_token=TOKEN, mqtt_external_url="mqtt://thingport:platform-pass@127.0.0.1:1883",
                   auth_cache_ttl_s=60)


async def authn(http: httpx.AsyncClient, fields: tuple[str, str, str], peer: str = "10.0.0.7",
                headers: dict[str, str] = AUTH) -> httpx.Response:
    client_id, username, password = fields
    body = {"clientid": client_id, "username": username, "password": password, "peerhost": peer,
            "proto_name": "MQTT", "mountpoint": ""}
    return await http.post("/mqtt/emqx/authn", json=body, headers=headers)


async def authz(http: httpx.AsyncClient, username: str, topic: str, action: str) -> dict[str, Any]:
    body = {"clientid": "any", "username": username, "peerhost": "10.0.0.7", "topic": topic, "action": action,
            "qos": "1", "retain": "false"}
    r = await http.post("/mqtt/emqx/authz", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    return dict(r.json())


def event(kind: str, client_id: str, username: str, **extra: Any) -> dict[str, Any]:
    """A rule's ``SELECT *`` output for ``$events/client_connected`` / ``client_disconnected``."""
    now = int(time.time() * 1000)
    return {"event": kind, "clientid": client_id, "username": username, "peername": "10.0.0.7:52918",
            "sockname": "0.0.0.0:1883", "proto_name": "MQTT", "proto_ver": 4, "keepalive": 60, "clean_start": True,
            "timestamp": now, "node": "emqx@10.0.0.2", "metadata": {"rule_id": "thingport"}, **extra}


async def test_authentication_uses_the_device_login_check(http: httpx.AsyncClient, service_product: str,
                                                          make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    r = await authn(http, enos_connect(service_product, dev.device_key, dev.secret))
    assert r.status_code == 200 and r.json() == {"result": "allow", "is_superuser": False}
    assert r.headers["content-type"].startswith("application/json")
    r = await authn(http, enos_connect(service_product, dev.device_key, "wrong"))
    assert r.json() == {"result": "deny", "is_superuser": False}
    r = await authn(http, oceanconnect_connect(dev.asset_id, dev.secret))
    assert r.json()["result"] == "allow"
    r = await authn(http, ("no-scheme", "x", "y"))
    assert r.json()["result"] == "deny"
    # the platform's own privileged client is the only superuser
    r = await authn(http, ("thingport-node-1", "thingport", "platform-pass"))
    assert r.json() == {"result": "allow", "is_superuser": True}
    r = await authn(http, ("thingport-node-1", "thingport", "guess"))
    assert r.json()["result"] == "deny"


async def test_failed_logins_are_throttled_per_address(http: httpx.AsyncClient, service_product: str,
                                                       make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    for _ in range(5):
        await authn(http, enos_connect(service_product, dev.device_key, "wrong"))
    assert (await authn(http, enos_connect(service_product, dev.device_key, dev.secret))).json()["result"] == "deny"
    other_peer = await authn(http, enos_connect(service_product, dev.device_key, dev.secret), peer="10.0.0.8")
    assert other_peer.json()["result"] == "allow"


async def test_only_the_broker_may_call_the_hooks(http: httpx.AsyncClient, service_product: str,
                                                  make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    fields = enos_connect(service_product, dev.device_key, dev.secret)
    assert (await authn(http, fields, headers={})).status_code == 401
    assert (await authn(http, fields, headers={"Authorization": "Bearer nope"})).status_code == 401
    r = await http.post("/mqtt/emqx/events", json=event("client.connected", "c", f"{dev.device_key}&x"))
    assert r.status_code == 401


async def test_malformed_hook_requests_are_denied_naming_the_field(http: httpx.AsyncClient) -> None:
    r = await http.post("/mqtt/emqx/authn", json={"username": "a&b", "password": "x"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["result"] == "deny" and "clientid" in r.json()["message"]
    r = await http.post("/mqtt/emqx/authz", json={"clientid": "c", "username": "a&b", "topic": "/t",
                                                  "action": "all"}, headers=AUTH)
    assert r.json()["result"] == "deny" and "action" in r.json()["message"]
    r = await http.post("/mqtt/emqx/authz", content=b"{not json", headers=AUTH)
    assert r.json()["result"] == "deny"
    r = await http.post("/mqtt/emqx/events", json={"event": "session.subscribed", "clientid": "c"}, headers=AUTH)
    assert r.status_code == 400 and "event" in r.json()["message"]


async def test_authorization_follows_device_and_gateway_rights_on_any_node(
        http: httpx.AsyncClient, services: Services, caller: Caller, service_product: str,
        gateway_product: str, make_device: MakeDevice) -> None:  # noqa: F811
    a = await make_device(service_product)
    b = await make_device(service_product)
    gw = await make_device(gateway_product)
    user = f"{a.device_key}&{service_product}"
    # no authentication call reached this node first: rights come from the user name alone
    assert (await authz(http, user, f"/sys/{service_product}/{a.device_key}/thing/event/x/post", "publish")) \
        == {"result": "allow"}
    assert (await authz(http, user, f"/sys/{service_product}/{a.device_key}/#", "subscribe"))["result"] == "allow"
    assert (await authz(http, user, f"/sys/{service_product}/{b.device_key}/#", "subscribe"))["result"] == "deny"
    assert (await authz(http, user, "/sys/+/+/#", "subscribe"))["result"] == "deny"
    assert (await authz(http, "nobody&nothing", "/sys/nothing/nobody/x", "publish"))["result"] == "deny"
    assert (await authz(http, a.asset_id, f"/huawei/v1/devices/{a.asset_id}/data/json", "publish"))["result"] \
        == "allow"

    gw_user = f"{gw.device_key}&{gateway_product}"
    sub_topic = f"/sys/{service_product}/{b.device_key}/thing/event/x/post"
    assert (await authz(http, gw_user, sub_topic, "publish"))["result"] == "deny"
    ts = "1700000000000"
    await services.connectivity.add_topology(gw.asset_id, [Credential(
        service_product, b.device_key, {"clientId": "c1", "productKey": service_product, "timestamp": ts}, "sha256",
        enos_sub_sign(service_product, b.device_key, b.secret, cid="c1", ts=ts))])
    # the topology change drops this node's cached rights at once
    assert (await authz(http, gw_user, sub_topic, "publish"))["result"] == "allow"

    await services.devices.set_enabled(caller, DeviceRef(asset_id=a.asset_id), False)
    assert (await authz(http, user, f"/sys/{service_product}/{a.device_key}/thing/event/x/post", "publish")) \
        == {"result": "deny"}


async def test_authorization_reads_the_topic_grammar_not_any_position(
        http: httpx.AsyncClient, service_product: str, make_device: MakeDevice) -> None:  # noqa: F811
    """A device keyed ``thing``: its pair stands at segments 3-4 of a device keyed with its product key."""
    a = await make_device(service_product, "thing")
    user = f"thing&{service_product}"
    theirs = f"/sys/PkOther1/{service_product}"
    for topic, action in ((f"{theirs}/thing/#", "subscribe"), (f"{theirs}/thing/event/x/post", "publish"),
                          (f"/PkOther1/{service_product}/thing/x", "publish")):
        assert (await authz(http, user, topic, action))["result"] == "deny", topic
    assert (await authz(http, user, f"/sys/{service_product}/{a.device_key}/thing/x", "publish"))["result"] == "allow"


async def test_client_events_set_online_state(http: httpx.AsyncClient, services: Services, caller: Caller,
                                              service_product: str, make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    user = f"{dev.device_key}&{service_product}"
    cid = f"{dev.device_key}|securemode=2,signmethod=sha256,timestamp=1|"
    r = await http.post("/mqtt/emqx/events", json=event("client.connected", cid, user, connected_at=1), headers=AUTH)
    assert r.status_code == 200 and r.json() == {"result": "ok"}
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    view = (await services.devices.get(caller, DeviceRef(asset_id=dev.asset_id))).device
    assert view.active_time and view.last_online_time
    # a takeover by the same client keeps the device online
    r = await http.post("/mqtt/emqx/events", json=event("client.disconnected", cid, user, reason="takenover"),
                        headers=AUTH)
    assert r.status_code == 200
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    r = await http.post("/mqtt/emqx/events", json=event("client.disconnected", cid, user, reason="keepalive_timeout",
                                                        disconnected_at=2), headers=AUTH)
    assert r.json() == {"result": "ok"}
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)
    r = await http.post("/mqtt/emqx/events", json=event("client.connected", "x", "nobody&nothing"), headers=AUTH)
    assert r.json() == {"result": "ignored"}


async def test_disconnect_seen_by_another_node_marks_offline(http: httpx.AsyncClient, services: Services,
                                                              caller: Caller, service_product: str,
                                                              make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    user = f"{dev.device_key}&{service_product}"
    await services.devices.mark_connected(dev.asset_id)  # another node saw the connect
    r = await http.post("/mqtt/emqx/events", json=event("client.disconnected", "c", user, reason="normal"),
                        headers=AUTH)
    assert r.json() == {"result": "ok"}
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)


async def test_the_end_of_an_older_connection_keeps_the_newer_online(
        http: httpx.AsyncClient, services: Services, caller: Caller, service_product: str,
        make_device: MakeDevice) -> None:  # noqa: F811
    dev = await make_device(service_product)
    user = f"{dev.device_key}&{service_product}"
    for cid in ("old-client", "new-client"):
        r = await http.post("/mqtt/emqx/events", json=event("client.connected", cid, user), headers=AUTH)
        assert r.json() == {"result": "ok"}
    r = await http.post("/mqtt/emqx/events", json=event("client.disconnected", "old-client", user, reason="kicked"),
                        headers=AUTH)
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    r = await http.post("/mqtt/emqx/events", json=event("client.disconnected", "new-client", user, reason="normal"),
                        headers=AUTH)
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)


async def test_a_deep_body_is_a_denial_naming_the_body(http: httpx.AsyncClient,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    deep = b'{"clientid": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    routes.REFUSALS.reset()
    with caplog.at_level(logging.WARNING):
        for hook in ("authn", "authz"):
            r = await http.post(f"/mqtt/emqx/{hook}", content=deep, headers=AUTH)
            assert r.status_code == 200 and r.json()["result"] == "deny", r.text
            assert r.json()["message"].startswith("body: arrays and objects nested")
        r = await http.post("/mqtt/emqx/events", content=deep, headers=AUTH)
        assert r.status_code == 400 and r.json()["result"] == "error"
    assert len([rec for rec in caplog.records if rec.levelno == logging.WARNING]) == 1  # rate-limited


async def test_an_unexpected_failure_is_a_denial(http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(routes, "door_of", broken)
    with caplog.at_level(logging.ERROR):
        r = await http.post("/mqtt/emqx/authz", json={"clientid": "c", "username": "u", "topic": "t",
                                                      "action": "publish"}, headers=AUTH)
    assert r.status_code == 200 and r.json() == {"result": "deny", "is_superuser": False, "message": "internal error"}
    assert len([rec for rec in caplog.records if rec.levelno >= logging.ERROR]) == 1
