"""Pushes reach a real HTTP callback: shapes, order, retries, expiry, and after a restart of Thingport."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oc_client import OcClient
from tests.support.processes import free_port, start_thingport, stop
from tests.support.receiver import receiver
from thingport.app import ensure_initialised
from thingport.dialects.oceanconnect.pushes import OceanConnectWorker
from thingport.dialects.oceanconnect.render import INFO_KEYS
from thingport.services.container import Services
from thingport.services.context import Core
from thingport.settings import Settings
from thingport.store.db import Database

SUB = "/iocm/app/sub/v1.2.0/subscriptions"
TYPES = ("deviceAdded", "bindDevice", "deviceInfoChanged", "deviceDeleted")


async def subscribe_all(oc: OcClient, url: str) -> None:
    for t in TYPES:
        r = await oc.call("POST", SUB, {"notifyType": t, "callbackUrl": url})
        assert r.status_code == 201, r.text


async def test_push_shapes_and_order(oc: OcClient, services: Services) -> None:
    worker = OceanConnectWorker(services)
    try:
        with receiver() as rec:
            await subscribe_all(oc, rec.url)
            did = (await oc.register("push-0001", deviceInfo={"name": "m", "manufacturerId": "acme"}))["deviceId"]
            await services.oceanconnect.registrations.complete_bind(did)
            await services.devices.mark_connected(did)   # what the MQTT front door does
            await services.devices.mark_disconnected(did)
            r = await oc.call("PUT", f"/iocm/app/dm/v1.4.0/devices/{did}", {"location": "attic"})
            assert r.status_code == 204
            assert (await oc.call("DELETE", f"/iocm/app/dm/v1.4.0/devices/{did}")).status_code == 204
            assert await worker.run_once() == 6, rec.bodies
            kinds = [(b["notifyType"], b.get("resultCode") or b["deviceInfo"]["status"]) for b in rec.bodies[:-1]]
            # the device was gone when the pushes were queued: they describe it from the events
            assert kinds == [("deviceAdded", "OFFLINE"), ("bindDevice", "succeeded"), ("deviceInfoChanged", "ONLINE"),
                             ("deviceInfoChanged", "OFFLINE"), ("deviceInfoChanged", None)]
            added = rec.of("deviceAdded")[0]
            assert set(added) == {"notifyType", "deviceId", "gatewayId", "nodeType", "deviceInfo"}
            assert set(added["deviceInfo"]) == set(INFO_KEYS) and added["deviceInfo"]["statusDetail"] == "NOT_ACTIVE"
            assert added["deviceId"] == did and added["gatewayId"] == did and added["nodeType"] == "UNKNOWN"
            bind = rec.of("bindDevice")[0]
            assert bind["resultCode"] == "succeeded" and bind["deviceInfo"]["nodeId"] == "push-0001"
            assert "gatewayId" not in bind
            changed = rec.of("deviceInfoChanged")
            statuses = [c["deviceInfo"]["status"] for c in changed]
            assert statuses[:2] == ["ONLINE", "OFFLINE"] and len(changed) == 3
            online = changed[0]
            assert online["networkStatus"] is None and online["deviceInfo"]["name"] is None
            assert changed[2]["deviceInfo"]["nodeId"] == "push-0001"
            assert rec.of("deviceDeleted") == [{"notifyType": "deviceDeleted", "deviceId": did, "gatewayId": did}]
            assert await services.oceanconnect.pushes.queued() == 0
    finally:
        await worker.stop()


@pytest.mark.slow
async def test_retry_with_back_off(oc: OcClient, services: Services) -> None:
    worker = OceanConnectWorker(services)
    try:
        with receiver() as rec:
            r = await oc.call("POST", SUB, {"notifyType": "deviceAdded", "callbackUrl": rec.url})
            assert r.status_code == 201
            rec.fail_next = 1
            await oc.register("retry-0001")
            assert await worker.run_once() == 1
            assert rec.bodies == [] and await services.oceanconnect.pushes.queued() == 1
            assert await worker.run_once() == 0  # not due yet: back-off
            await asyncio.sleep(1.1)
            assert await worker.run_once() == 1
            assert len(rec.of("deviceAdded")) == 1 and await services.oceanconnect.pushes.queued() == 0
            added = rec.of("deviceAdded")[0]
            assert added["nodeType"] == "ENDPOINT" and added["deviceInfo"]["nodeId"] == "retry-0001"
            assert (added["deviceInfo"]["status"], added["deviceInfo"]["statusDetail"]) == ("OFFLINE", "NOT_ACTIVE")
    finally:
        await worker.stop()


@pytest.mark.slow
async def test_expired_registration_pushes(oc: OcClient, services: Services) -> None:
    worker = OceanConnectWorker(services)
    try:
        with receiver() as rec:
            await subscribe_all(oc, rec.url)
            did = (await oc.register("late-0001", timeout=1))["deviceId"]
            assert await services.oceanconnect.registrations.expire(10**15) == 1
            await worker.run_once()
            expired = rec.of("bindDevice")
            assert len(expired) == 1 and expired[0]["resultCode"] == "expired" and expired[0]["deviceId"] == did
            assert expired[0]["deviceInfo"]["nodeId"] == "late-0001"
            assert rec.of("deviceDeleted")[0]["deviceId"] == did
    finally:
        await worker.stop()


async def test_unsubscribed_types_and_other_orgs_get_nothing(oc: OcClient, services: Services) -> None:
    worker = OceanConnectWorker(services)
    try:
        with receiver() as rec:
            r = await oc.call("POST", SUB, {"notifyType": "deviceDeleted", "callbackUrl": rec.url})
            assert r.status_code == 201
            await oc.register("quiet-0001")
            other = await services.accounts.create_app((await services.accounts.create_org("O", "o-9")).org_id, "x")
            client = OcClient(oc.http, other.app_key, other.secret)
            await client.login()
            did = (await client.register("quiet-0002"))["deviceId"]
            assert (await client.call("DELETE", f"/iocm/app/dm/v1.4.0/devices/{did}")).status_code == 204
            assert await worker.run_once() == 0 and rec.bodies == []
    finally:
        await worker.stop()


# --------------------------------------------------------------------------------------------- restart

#: Short back-off and expiry scans, so the restart test does not wait minutes.
FAST_RETRIES = {"THINGPORT_OCEANCONNECT_PUSH_BACKOFF_MAX_S": "1", "THINGPORT_OCEANCONNECT_EXPIRY_INTERVAL_S": "1"}


async def provision(data_dir: Path) -> tuple[str, str]:
    settings = Settings(data_dir=data_dir)
    keyring, _ = ensure_initialised(settings)
    db = Database(settings.db_url)
    await db.migrate()
    services = Services.build(Core(settings, keyring, db))
    await services.accounts.create_org("Acme", "o1")
    app = await services.accounts.create_app("o1", "ops")
    await db.close()
    return app.app_key, app.secret


async def wait_for(cond: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.subprocess
async def test_pushes_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    app_key, secret = await provision(data_dir)
    port, callback_port = free_port(), free_port()
    proc = start_thingport(data_dir, port, FAST_RETRIES)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            oc = OcClient(http, app_key, secret)
            await oc.login()
            await subscribe_all(oc, f"http://127.0.0.1:{callback_port}/callback")  # nobody listens yet
            did = (await oc.register("restart-0001", timeout=0))["deviceId"]
            late = (await oc.register("restart-0002", timeout=4))["deviceId"]
            await asyncio.sleep(1.0)  # a first delivery attempt fails: connection refused
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with receiver(callback_port) as rec:
            proc = start_thingport(data_dir, port, FAST_RETRIES)
            await wait_for(lambda: {b["deviceId"] for b in rec.of("deviceAdded")} == {did, late})
            # the lapsed registration is deleted by the restarted server's expiry task
            await wait_for(lambda: [b["resultCode"] for b in rec.of("bindDevice")] == ["expired"])
            await wait_for(lambda: [b["deviceId"] for b in rec.of("deviceDeleted")] == [late])
    finally:
        stop(proc)
