"""The life of device sessions on the embedded broker, as a real MQTT client sees it: logins refused or
accepted, online state, topic rights, one connection per device, gateways' sub-devices."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import make_product
from tests.connect.conftest import Door, MakeDevice, connect, enos_gateway, reply_to, request, status_is
from tests.support.device_login import enos_connect, enos_sub_sign
from thingport.connect import sim
from thingport.connect.mqtt import codec
from thingport.domain.models import DeviceStatus, I18nText, Organization
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec


@pytest.mark.parametrize("method", ["sha256", "hmacsha256", "sha1", "hmacsha1", "md5", "hmacmd5"])
async def test_enos_login_activates_and_state_follows_the_connection(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice,
        method: str) -> None:
    dev = await make_device(service_product)
    client, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret, method=method,
                                                  ts="1690000000000.123"))
    assert rc == 0
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    view = (await services.devices.get(caller, DeviceRef(asset_id=dev.asset_id))).device
    assert view.active_time and view.last_online_time
    await client.close()
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)
    assert (await services.devices.get(caller, DeviceRef(asset_id=dev.asset_id))).device.last_offline_time


async def test_refusals_reveal_nothing_and_repeated_failures_are_throttled(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    other = await make_device(service_product)
    assert (await connect(door, enos_connect(service_product, dev.device_key, "wrong")))[1] == 4
    assert (await connect(door, enos_connect(service_product, "nobody", dev.secret)))[1] == 4
    await services.devices.set_enabled(caller, DeviceRef(asset_id=other.asset_id), False)
    assert (await connect(door, enos_connect(service_product, other.device_key, other.secret)))[1] == 4
    assert (await connect(door, ("no-scheme", "x", "y")))[1] == 2
    for _ in range(4):
        await connect(door, enos_connect(service_product, dev.device_key, "wrong"))
    # five failures of this address + user name: even the right password is refused for now
    assert (await connect(door, enos_connect(service_product, dev.device_key, dev.secret)))[1] == 5
    door.door.throttle.succeeded(("127.0.0.1", f"{dev.device_key}&{service_product}"))
    client, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    assert rc == 0
    await client.close()


async def test_a_device_uses_only_its_own_topics(door: Door, service_product: str, make_device: MakeDevice) -> None:
    a = await make_device(service_product)
    b = await make_device(service_product)
    ca, _ = await connect(door, enos_connect(service_product, a.device_key, a.secret))
    cb, _ = await connect(door, enos_connect(service_product, b.device_key, b.secret))
    assert await ca.subscribe((f"/sys/{service_product}/{a.device_key}/#", 1)) == [1]
    assert await ca.subscribe((f"/sys/{service_product}/{b.device_key}/#", 1)) == [0x80]
    assert await ca.subscribe(("/sys/+/+/#", 1)) == [0x80]
    assert await cb.subscribe((f"/sys/{service_product}/{b.device_key}/thing/event/x", 0)) == [0]
    await ca.publish(f"/sys/{service_product}/{b.device_key}/thing/event/x", b"{}")
    await cb.nothing_more()
    await ca.close()
    await cb.close()


async def test_a_device_keyed_like_a_topic_word_cannot_reach_another_tenant(
        door: Door, services: Services, service_product: str, make_device: MakeDevice) -> None:
    """The attack: organization B keys a device with A's product key, A keys one ``thing``; A's pair
    then stood at segments 3-4 of B's topics (``/sys/{pkB}/{pkA}/thing/…``) and was taken as A's right."""
    await services.accounts.create_org("Other", "o-other")
    await services.accounts.create_model("o-other", "model1")
    other = Caller.operator("o-other")
    pk_b = await make_product(services, other)
    b = (await services.devices.create(other, DeviceSpec(pk_b, I18nText("b"), "+08:00", device_key=service_product))
         ).device
    a = await make_device(service_product, "thing")
    ca, _ = await connect(door, enos_connect(service_product, a.device_key, a.secret))
    cb, _ = await connect(door, enos_connect(pk_b, b.device_key, b.secret))
    theirs = f"/sys/{pk_b}/{b.device_key}"
    assert await ca.subscribe((f"{theirs}/thing/#", 1), (f"/{pk_b}/{b.device_key}/thing/#", 1)) == [0x80, 0x80]
    assert await ca.subscribe((f"/sys/{service_product}/thing/#", 1)) == [1]
    assert await cb.subscribe((f"{theirs}/#", 1)) == [1]
    # A's publish on B's topic is dropped before its PUBACK; B's own uplink is then the first B hears
    await ca.publish(f"{theirs}/thing/event/property/post", b'{"from":"a"}', 1)
    await cb.publish(f"{theirs}/thing/event/property/post", b'{"from":"b"}', 1)
    assert (await cb.receive()).payload == b'{"from":"b"}'
    # B's uplink reached B before A's marker was even sent: had A been subscribed, it came first
    await ca.publish(f"/sys/{service_product}/thing/marker", b"marker", 1)
    assert (await ca.receive()).payload == b"marker"
    await ca.close()
    await cb.close()


async def test_a_second_login_of_the_same_device_replaces_the_first(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    first, _ = await connect(door, enos_connect(service_product, dev.device_key, dev.secret, ts="1"))
    second, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret, ts="2"))
    assert rc == 0
    assert await first.wait_disconnected()
    await asyncio.sleep(0.1)
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await second.close()
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)


async def test_gateway_disconnect_takes_its_sub_devices_offline(
        door: Door, services: Services, caller: Caller, gateway_product: str, service_product: str,
        make_device: MakeDevice) -> None:
    gw = await make_device(gateway_product)
    sub = await make_device(service_product)
    await services.topology.add_sub_devices(caller, DeviceRef(asset_id=gw.asset_id),
                                            [DeviceRef(asset_id=sub.asset_id)])
    client = await enos_gateway(door, gw, gateway_product)
    session = f"/ext/session/{gateway_product}/{gw.device_key}"
    params = {"productKey": service_product, "deviceKey": sub.device_key, "clientId": "c", "timestamp": "1",
              "signMethod": "sha1", "sign": enos_sub_sign(service_product, sub.device_key, sub.secret,
                                                          cid="c", ts="1", method="sha1")}
    await client.publish(f"{session}/combine/login", request("combine.login", params))
    assert (await reply_to(client, f"{session}/combine/login_reply"))["code"] == 200
    await status_is(services, caller, sub.asset_id, DeviceStatus.ONLINE)
    await client.close()
    await status_is(services, caller, sub.asset_id, DeviceStatus.OFFLINE)
    await status_is(services, caller, gw.asset_id, DeviceStatus.OFFLINE)


# --- logins read nothing, state is written in batches (issue 12) -------------------------------------

async def test_a_login_right_after_a_replace_takes_the_new_credentials_only(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    await services.connectivity.credentials.load()
    first, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret, ts="1"))
    assert rc == 0
    view = await services.devices.replace_key(caller, DeviceRef(asset_id=dev.asset_id), "replaced-1")
    assert await first.wait_disconnected()
    # no wait of any kind: the old key and secret are refused, the new pair is taken
    assert (await connect(door, enos_connect(service_product, dev.device_key, dev.secret, ts="2")))[1] == 4
    assert (await connect(door, enos_connect(service_product, "replaced-1", dev.secret, ts="3")))[1] == 4
    fresh, rc = await connect(door, enos_connect(service_product, "replaced-1", view.device.secret, ts="4"))
    assert rc == 0
    await fresh.close()


async def test_the_activating_login_is_written_before_its_connack(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    client, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    assert rc == 0
    async with services.core.read() as conn:  # read at once: no batch has had to run since
        stored = await services.core.devices.by_id(conn, dev.asset_id)
    assert stored is not None and stored.active_time
    await client.close()


async def test_connecting_and_leaving_at_once_ends_offline(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    """Logins and logouts of many devices racing within batches: each ends in the state it was left in."""
    devices = [await make_device(service_product) for _ in range(12)]
    logins = [sim.SimDevice(service_product, d.device_key, d.secret) for d in devices]
    result = await sim.storm("127.0.0.1", door.port, logins, concurrency=12)
    assert result.connected == 12
    await result.close()  # every one leaves right away, some before their arrival is written
    stays = await sim.storm("127.0.0.1", door.port, logins[:4], concurrency=4)  # and some come back
    for d in devices[:4]:
        await status_is(services, caller, d.asset_id, DeviceStatus.ONLINE)
    for d in devices[4:]:
        await status_is(services, caller, d.asset_id, DeviceStatus.OFFLINE)
    await services.connectivity.presence.flush()
    for d in devices[4:]:
        got = (await services.devices.get(caller, DeviceRef(asset_id=d.asset_id))).device
        assert got.last_online_time and got.last_offline_time and got.last_offline_time >= got.last_online_time
    await stays.close()


async def test_a_takeover_race_leaves_the_device_online(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    """The same client id logging in again and again: the device is online throughout and at the end."""
    dev = await make_device(service_product)
    fields = enos_connect(service_product, dev.device_key, dev.secret, ts="7")
    clients = [await door.client(*fields) for _ in range(5)]
    assert await asyncio.gather(*(c.connect() for c in clients)) == [0] * 5
    await services.connectivity.presence.flush()
    await asyncio.sleep(0.1)
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    for c in clients:
        await c.close()
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)


async def test_a_login_storm_loses_no_login(door: Door, services: Services, org: Organization,
                                            caller: Caller) -> None:
    """300 devices at once, 100 in flight: every one gets CONNACK 0, none waits for a retry, and the
    broker counted no timeout, refusal or abandoned login."""
    fleet = await sim.create_fleet(services, org.org_id, devices=300)
    await services.connectivity.credentials.load()
    started = asyncio.get_running_loop().time()
    result = await sim.storm("127.0.0.1", door.port, fleet, concurrency=100)
    try:
        assert (result.connected, result.refused, result.failed) == (300, 0, 0)
        assert asyncio.get_running_loop().time() - started < 10  # no connection waited out a SYN retry
        stats = door.broker.stats()
        assert (stats.connects, stats.refused, stats.connect_timeouts, stats.abandoned_logins) == (300, 0, 0, 0)
        await services.connectivity.presence.flush()
        assert (await services.devices.stats(caller, None)).online == 300
    finally:
        await result.close()


async def test_a_first_login_whose_client_leaves_before_its_connack_ends_offline(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    """Its activation wrote the device online (one write for both); the broker reports the login
    abandoned and the front door sets the device offline again."""
    dev = await make_device(service_product)
    cid, user, password = enos_connect(service_product, dev.device_key, dev.secret)
    _, writer = await asyncio.open_connection("127.0.0.1", door.port)
    writer.write(codec.encode(codec.Connect(cid, True, 60, None, user, password.encode())))
    await writer.drain()
    writer.transport.abort()  # gone while the activation is being written
    async with asyncio.timeout(5):
        while door.broker.stats().abandoned_logins == 0:
            await asyncio.sleep(0.01)
    await services.connectivity.presence.flush()
    got = (await services.devices.get(caller, DeviceRef(asset_id=dev.asset_id))).device
    assert got.active_time and got.status is DeviceStatus.OFFLINE


async def test_a_login_of_an_active_device_in_memory_is_decided_without_a_task(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick hooks decide it in the broker's callback: the async authenticate is never asked,
    and a refusal counts towards the throttle as ever."""
    dev = await make_device(service_product)
    services.connectivity.credentials.keeps = True  # as on SQLite (see services/credentials.py)
    await services.connectivity.credentials.load()
    first, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret, ts="1"))
    assert rc == 0  # the first login activates: that one takes the async path
    await first.close()

    async def not_asked(*_: object, **__: object) -> None:
        raise AssertionError("the async authenticate was asked")

    monkeypatch.setattr(door.door, "authenticate", not_asked)
    again, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret, ts="2"))
    assert rc == 0
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    assert (await connect(door, enos_connect(service_product, dev.device_key, "wrong", ts="3")))[1] == 4
    assert door.door.throttle._failures  # counted
    await again.close()
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)


async def test_logins_are_counted_for_the_console(door: Door, services: Services, service_product: str,
                                                  make_device: MakeDevice) -> None:
    """Accepted and refused logins land in the current minute of the console's tally, by reason."""
    dev = await make_device(service_product)
    client, rc = await connect(door, enos_connect(service_product, dev.device_key, dev.secret))
    assert rc == 0
    await client.close()
    assert (await connect(door, enos_connect(service_product, dev.device_key, "wrong")))[1] == 4
    assert (await connect(door, ("no-scheme", "x", "y")))[1] == 2
    now = services.activity.last_hour()[-1]
    assert (now.accepted, now.refused) == (1, {"credential": 1, "unreadable": 1})
