"""Pushes reach a real HTTP callback: shapes, order, retries, expiry, and after a restart of Thingport."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dialects.oceanconnect.conftest import LOOPBACK
from tests.support.oc_client import OcClient, oc_error
from tests.support.processes import free_port, start_thingport, stop
from tests.support.receiver import receiver
from thingport.app import ensure_initialised
from thingport.dialects.oceanconnect.pushes import OceanConnectWorker
from thingport.dialects.oceanconnect.render import INFO_KEYS
from thingport.domain.errors import InvalidArgument
from thingport.services.container import Services
from thingport.services.context import Caller, Core
from thingport.services.oceanconnect.subscriptions import SubscriptionService
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


# ------------------------------------------------------------------------------------- where pushes go

@contextlib.asynccontextmanager
async def http_server(answer: bytes) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A loopback HTTP server that records each request's head and gives every request ``answer``."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        heads.append(head)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], heads


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def resolver(answers: dict[str, list[str]]) -> Any:
    """``loop.getaddrinfo`` answering from ``answers`` (what DNS says of a name right now)."""
    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]
    return getaddrinfo


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.8:8080/cb",
                                 "https://[fd00::1]/cb", "http://[::ffff:192.168.1.1]/cb", "http://100.64.1.1/cb",
                                 "http://0.0.0.0:8080/cb", "http://224.0.0.1/cb"])
async def test_a_callback_url_the_server_alone_can_reach_is_refused(oc: OcClient, url: str) -> None:
    r = await oc.call("POST", SUB, {"notifyType": "deviceAdded", "callbackUrl": url})
    oc_error(r, 400, "100222", "callbackUrl: ", "pushes go to public addresses only")


async def test_loopback_is_refused_unless_the_operator_allows_it(services: Services, caller: Caller) -> None:
    strict = SubscriptionService(Core(replace(services.core.settings, oceanconnect_push_allowed_networks=""),
                                      services.core.keyring, services.core.db))
    for url in ("http://127.0.0.1:9/cb", "http://localhost:9/cb", "http://2130706433:9/cb", "http://[::1]:9/cb"):
        with pytest.raises(InvalidArgument, match=r"^callbackUrl: .*loopback address") as refused:
            await strict.subscribe(replace(caller, app_key="app-1"), "deviceAdded", url, "HTTP")
        assert refused.value.field == "callbackUrl"


async def test_the_address_connected_to_is_the_one_checked_when_connecting(
        oc: OcClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    dns = {"callback.test": ["127.0.0.1"]}
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver(dns))
    worker = OceanConnectWorker(services)
    try:
        async with http_server(OK) as (port, heads):
            r = await oc.call("POST", SUB, {"notifyType": "deviceAdded", "callbackUrl": f"http://callback.test:{port}/cb"})
            assert r.status_code == 201
            await oc.register("dns-0001")
            assert await worker.run_once() == 1 and await services.oceanconnect.pushes.queued() == 0
            assert f"Host: callback.test:{port}".encode() in heads[0]  # the name, not the address connected to
            # the name now resolves to an address the operator did not allow: refused when connecting
            dns["callback.test"] = ["127.0.0.1", "10.0.0.7"]
            await oc.register("dns-0002")
            assert await worker.run_once() == 1 and len(heads) == 1
            assert await services.oceanconnect.pushes.queued() == 1
            refused = r"refused: callback\.test resolves to 10\.0\.0\.7 is a private"
            with pytest.raises(httpx.ConnectError, match=refused):
                await worker.client.post(f"http://callback.test:{port}/cb")
    finally:
        await worker.stop()


async def test_redirects_are_not_followed(oc: OcClient, services: Services) -> None:
    worker = OceanConnectWorker(services)
    try:
        async with http_server(OK) as (inner, reached):
            moved = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{inner}/admin\r\n" \
                    "Content-Length: 0\r\nConnection: close\r\n\r\n"
            async with http_server(moved.encode()) as (outer, asked):
                r = await oc.call("POST", SUB, {"notifyType": "deviceAdded", "callbackUrl": f"http://127.0.0.1:{outer}/"})
                assert r.status_code == 201
                await oc.register("redirect-0001")
                assert await worker.run_once() == 1
                assert len(asked) == 1 and reached == []
                assert await services.oceanconnect.pushes.queued() == 1  # a 3xx is a failed delivery, retried
    finally:
        await worker.stop()


# --------------------------------------------------------------------------------------------- restart

#: Short back-off and expiry scans, so the restart test does not wait minutes; the receiver is on loopback.
FAST_RETRIES = {"THINGPORT_OCEANCONNECT_PUSH_BACKOFF_MAX_S": "1", "THINGPORT_OCEANCONNECT_EXPIRY_INTERVAL_S": "1",
                "THINGPORT_OCEANCONNECT_PUSH_ALLOWED_NETWORKS": LOOPBACK}


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
