"""OceanConnect logins: what the scheme reads of a CONNECT; bind by verify code, password mode, the life
of a device on the embedded broker.

The registrations and refreshes go through the real northbound routes (``/iocm/app/...``), the
device through a real MQTT client, and the pushes to a real HTTP callback server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from tests.connect.conftest import Door, MakeDevice, connect, status_is
from tests.dialects.oceanconnect.conftest import LOOPBACK
from tests.support.device_login import oceanconnect_connect
from tests.support.mqtt_client import Device as Client
from tests.support.oc_client import OcClient, oc_error
from tests.support.receiver import Receiver, receiver
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.schemes.oceanconnect import OceanConnectLogin, OceanConnectScheme
from thingport.connect.session import DeviceSession
from thingport.dialects.oceanconnect.pushes import OceanConnectWorker
from thingport.domain.models import DeviceStatus
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.settings import Settings

REG = "/iocm/app/reg/v1.1.0/deviceCredentials"
REG_V2 = "/iocm/app/reg/v2.0.0/deviceCredentials"
BY_NODE_ID = 2


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The pushes go to a receiver on loopback, which an operator setting lets them reach."""
    return replace(settings, oceanconnect_push_allowed_networks=LOOPBACK)


@pytest.fixture
async def pushes(oc: OcClient, services: Services) -> AsyncIterator[tuple[Receiver, OceanConnectWorker]]:
    worker = OceanConnectWorker(services)
    with receiver() as rec:
        for notify_type in ("bindDevice", "deviceInfoChanged"):
            r = await oc.call("POST", "/iocm/app/sub/v1.2.0/subscriptions",
                              {"notifyType": notify_type, "callbackUrl": rec.url})
            assert r.status_code == 201, r.text
        yield rec, worker
    await worker.stop()


def info(client_id: str, username: str | None = "dk&pk", password: bytes | None = b"pw") -> ConnectInfo:
    return ConnectInfo(client_id, username, password, True, 60, None, False)


def test_oceanconnect_logins_are_read_by_device_id_and_node_id() -> None:
    oc = OceanConnectScheme().read(info("D39564861q3gDa_0_1_2018072417", "D39564861q3gDa"))
    assert isinstance(oc, OceanConnectLogin)
    assert (oc.identifier, oc.auth_type, oc.check_time, oc.timestamp) == ("D39564861q3gDa", 0, True,
                                                                          "2018072417")
    node = OceanConnectScheme().read(info("urn:imei:8612_3_2_0_2018072417", "urn:imei:8612_3"))
    assert isinstance(node, OceanConnectLogin) and (node.identifier, node.auth_type) == ("urn:imei:8612_3", 2)


def test_other_forms_are_not_oceanconnect_logins() -> None:
    assert OceanConnectScheme().read(info("dk|securemode=2,signmethod=sha256|")) is None
    assert OceanConnectScheme().read(info("D1_1_1_2018072417", "D1")) is None  # authType 1: never described


async def test_oceanconnect_login_by_device_id(door: Door, services: Services, caller: Caller,
                                               service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    client, rc = await connect(door, oceanconnect_connect(dev.asset_id, dev.secret))
    assert rc == 0
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await client.close()
    # sigType 1 checks the hour; sigType 0 does not
    _, rc = await connect(door, oceanconnect_connect(dev.asset_id, dev.secret, ts="2018072417"))
    assert rc == 4
    ok, rc = await connect(door, oceanconnect_connect(dev.asset_id, dev.secret, ts="2018072417", sig_type=0))
    assert rc == 0
    await ok.close()


async def bind(door: Door, node_id: str, verify_code: str) -> tuple[Client, dict[str, Any]]:
    """Log in by nodeId with the verify code and read the bind answer (it needs no SUBSCRIBE)."""
    client, rc = await connect(door, oceanconnect_connect(node_id, verify_code, auth_type=BY_NODE_ID))
    assert rc == 0
    msg = await client.receive()
    assert msg.topic == f"/huawei/v1/bind/{node_id}" and msg.qos == 1
    return client, dict(json.loads(msg.payload))


async def test_the_life_of_a_device(door: Door, oc: OcClient, services: Services, caller: Caller,
                                    pushes: tuple[Receiver, OceanConnectWorker]) -> None:
    rec, worker = pushes
    reg = await oc.register("life-node-0001", verifyCode="FIRST-CODE", timeout=0)
    did = reg["deviceId"]
    # before its bind the device has no secret to log in with by deviceId, and a wrong code fails
    assert (await connect(door, oceanconnect_connect(did, "FIRST-CODE")))[1] == 4
    assert (await connect(door, oceanconnect_connect("life-node-0001", "WRONG", auth_type=BY_NODE_ID)))[1] == 4

    client, answer = await bind(door, "life-node-0001", "FIRST-CODE")
    assert answer["result"] == 0 and answer["deviceId"] == did and answer["nodeId"] == "life-node-0001"
    first_secret = answer["deviceSecret"]
    assert len(first_secret) == 20 and int(first_secret, 16) >= 0
    await status_is(services, caller, did, DeviceStatus.ONLINE)
    # the bound session is the device's: its own topics, not another's
    assert await client.subscribe((f"/huawei/v1/devices/{did}/command/json", 1)) == [1]
    assert await client.subscribe(("/huawei/v1/devices/someone-else/command/json", 1)) == [0x80]
    activation = (await oc.call("GET", f"{REG}/{did}")).json()
    assert activation["activated"] is True and activation["deviceId"] == did
    await worker.run_once()  # as the background worker would, while the device is still as it bound
    assert [(b["deviceId"], b["resultCode"], b["deviceInfo"]["nodeId"]) for b in rec.of("bindDevice")] == [
        (did, "succeeded", "life-node-0001")]

    # refused while online, changing nothing
    r = await oc.call("PUT", f"{REG}/{did}", {"verifyCode": "SECOND-CODE"})
    oc_error(r, 400, "100611")
    await client.close()
    await status_is(services, caller, did, DeviceStatus.OFFLINE)

    # the verify code was used up; the device logs in with what it was given, by deviceId or nodeId
    assert (await connect(door, oceanconnect_connect("life-node-0001", "FIRST-CODE", auth_type=BY_NODE_ID)))[1] == 4
    again, rc = await connect(door, oceanconnect_connect(did, first_secret))
    assert rc == 0
    await again.close()
    by_node, rc = await connect(door, oceanconnect_connect("life-node-0001", first_secret, auth_type=BY_NODE_ID))
    assert rc == 0
    await status_is(services, caller, did, DeviceStatus.ONLINE)  # written (in a batch) before it goes offline
    await by_node.close()
    await status_is(services, caller, did, DeviceStatus.OFFLINE)

    # refresh: a new nodeId and verify code; the old credentials die at once
    r = await oc.call("PUT", f"{REG}/{did}", {"nodeId": "life-node-0002", "verifyCode": "SECOND-CODE"})
    assert r.status_code == 200, r.text
    assert r.json() == {"verifyCode": "SECOND-CODE", "timeout": 180}
    assert (await connect(door, oceanconnect_connect(did, first_secret)))[1] == 4
    assert (await connect(door, oceanconnect_connect("life-node-0001", first_secret, auth_type=BY_NODE_ID)))[1] == 4
    # re-bind with the new verify code: the same deviceId, a new secret
    rebound, answer = await bind(door, "life-node-0002", "SECOND-CODE")
    assert answer["deviceId"] == did and answer["nodeId"] == "life-node-0002"
    assert answer["deviceSecret"] != first_secret
    await status_is(services, caller, did, DeviceStatus.ONLINE)
    await rebound.close()
    await status_is(services, caller, did, DeviceStatus.OFFLINE)
    final, rc = await connect(door, oceanconnect_connect(did, answer["deviceSecret"]))
    assert rc == 0
    await status_is(services, caller, did, DeviceStatus.ONLINE)  # written in a batch, a moment later
    await final.close()
    await status_is(services, caller, did, DeviceStatus.OFFLINE)

    await worker.run_once()
    assert [(b["resultCode"], b["deviceInfo"]["nodeId"]) for b in rec.of("bindDevice")] == [
        ("succeeded", "life-node-0001"), ("succeeded", "life-node-0002")]
    statuses = [c["deviceInfo"]["status"] for c in rec.of("deviceInfoChanged")
                if c["deviceInfo"]["status"] in ("ONLINE", "OFFLINE")]
    assert statuses[:2] == ["ONLINE", "OFFLINE"] and statuses[-2:] == ["ONLINE", "OFFLINE"]


async def test_password_mode_logs_in_directly_and_its_first_login_is_its_bind(
        door: Door, oc: OcClient, pushes: tuple[Receiver, OceanConnectWorker]) -> None:
    rec, worker = pushes
    r = await oc.call("POST", REG_V2, {"secret": "0123456789abcdef0123",
                                       "deviceInfo": {"nodeId": "pw-node-0001", "name": "meter"}})
    assert r.status_code == 200, r.text
    did = r.json()["deviceId"]
    assert (await oc.call("GET", f"{REG}/{did}")).json()["activated"] is False
    assert (await connect(door, oceanconnect_connect(did, "0123456789abcdef0124")))[1] == 4
    client, rc = await connect(door, oceanconnect_connect(did, "0123456789abcdef0123"))
    assert rc == 0
    await client.nothing_more()  # no bind answer: the device has its secret already
    await client.close()
    by_node, rc = await connect(door, oceanconnect_connect("pw-node-0001", "0123456789abcdef0123",
                                                           auth_type=BY_NODE_ID))
    assert rc == 0
    await by_node.close()
    assert (await oc.call("GET", f"{REG}/{did}")).json()["activated"] is True
    await worker.run_once()
    assert [b["resultCode"] for b in rec.of("bindDevice")] == ["succeeded"]  # once, not per login


async def test_a_verify_code_binds_one_device_once(door: Door, oc: OcClient) -> None:
    """Logins racing with one verify code: exactly one is accepted and told the secret."""
    await oc.register("race-node-0001", verifyCode="RACE-CODE")
    fields = oceanconnect_connect("race-node-0001", "RACE-CODE", auth_type=BY_NODE_ID)
    clients = [await door.client(*fields), await door.client(*fields)]
    codes = await asyncio.gather(*(c.connect() for c in clients))
    assert sorted(codes) == [0, 4]
    for c in clients:
        await c.close()


@pytest.mark.slow
async def test_expired_and_unknown_registrations_cannot_bind(door: Door, oc: OcClient, services: Services) -> None:
    reg = await oc.register("late-node-0001", verifyCode="LATE-CODE", timeout=1)
    await asyncio.sleep(1.1)
    assert (await connect(door, oceanconnect_connect("late-node-0001", "LATE-CODE", auth_type=BY_NODE_ID)))[1] == 4
    await services.oceanconnect.registrations.expire()
    assert (await oc.call("GET", f"{REG}/{reg['deviceId']}")).status_code == 404
    assert (await connect(door, oceanconnect_connect("nobody-0001", "LATE-CODE", auth_type=BY_NODE_ID)))[1] == 4
    # sigType 1 checks the hour for nodeId logins too
    await oc.register("hour-node-0001", verifyCode="HOUR-CODE")
    stale = oceanconnect_connect("hour-node-0001", "HOUR-CODE", auth_type=BY_NODE_ID, ts="2018072417")
    assert (await connect(door, stale))[1] == 4
    _, answer = await bind(door, "hour-node-0001", "HOUR-CODE")
    assert answer["nodeId"] == "hour-node-0001"


async def test_an_external_broker_cannot_bind_and_leaves_the_code_unused(door: Door, oc: OcClient) -> None:
    """Behind an external broker the answer could not follow the CONNACK: refused before it is used."""
    await oc.register("ext-node-0001", verifyCode="EXT-CODE")
    cid, user, password = oceanconnect_connect("ext-node-0001", "EXT-CODE", auth_type=BY_NODE_ID)
    result = await door.door.remote.authenticate(ConnectInfo(cid, user, password.encode(), True, 60, None, False))
    assert not isinstance(result.principal, DeviceSession)
    _, answer = await bind(door, "ext-node-0001", "EXT-CODE")  # still pending: the embedded broker binds it
    # and once bound, the external broker's rights lookup knows the device by its nodeId as user name
    session = await door.door.remote.session_for("ext-node-0001")
    assert session is not None and session.asset_id == answer["deviceId"]
