"""A write acknowledged to a client survives ``kill -9`` of the server."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, PG_URL, reset_postgres
from tests.support.enos_client import EnosClient
from tests.support.processes import free_port, start_thingport, stop
from thingport.app import ensure_initialised
from thingport.domain.models import Page
from thingport.services.container import Services
from thingport.services.context import Core
from thingport.settings import Settings
from thingport.store.db import Database

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


async def provision(data_dir: Path, database_url: str = "") -> tuple[str, str]:
    settings = Settings(data_dir=data_dir, database_url=database_url)
    keyring, _ = ensure_initialised(settings)
    db = Database(settings.db_url)
    await db.migrate()
    services = Services.build(Core(settings, keyring, db))
    await services.accounts.create_org("Acme", "o1")
    await services.accounts.create_model("o1", "m1")
    app = await services.accounts.create_app("o1", "ops")
    await db.close()
    return app.app_key, app.secret


async def create_devices(enos: EnosClient, pk: str, n: int, count: int, acked: list[str]) -> None:
    """Writer ``n``: up to ``count`` creates one after the other, each acknowledged asset id noted in
    ``acked``; it ends when the server goes away (the kill these tests cut in with)."""
    for i in range(count):
        try:
            r = await enos.call("POST", "/connect-service/v2.1/devices", {"action": "create"},
                                {"productKey": pk, "deviceName": "d", "timezone": "+08:00",
                                 "deviceKey": f"dev-{n}-{i}"})
        except httpx.HTTPError:
            return
        if r.get("code") == 0:
            acked.append(r["data"]["assetId"])

async def test_acknowledged_creates_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    app_key, secret = await provision(data_dir)
    port = free_port()
    proc = start_thingport(data_dir, port)
    acked: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            enos = EnosClient(http, app_key, secret, "o1")
            pk = await enos.create_product(model_id="m1")

            tasks = [asyncio.create_task(create_devices(enos, pk, n, 1000, acked)) for n in range(4)]
            while len(acked) < 60:
                await asyncio.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await asyncio.gather(*tasks)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 60
    proc = start_thingport(data_dir, port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            enos = EnosClient(http, app_key, secret, "o1")
            r = await enos.call("POST", "/connect-service/v2.1/devices", {"action": "search"},
                                {"pagination": {"pageNo": 1, "pageSize": 1000}, "projection": ["assetId"]})
            stored = {d["assetId"] for d in r["data"]}
    finally:
        stop(proc)
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged devices lost"


@pytest.mark.parametrize("nonce_store", ["memory", "database"])
async def test_a_signed_create_replayed_after_kill_9_is_refused(tmp_path: Path, nonce_store: str) -> None:
    """The used signature commits with the device it created: the restarted server knows it."""
    data_dir = tmp_path / "data"
    app_key, secret = await provision(data_dir)
    env = {"THINGPORT_NONCE_STORE": nonce_store}
    port = free_port()
    proc = start_thingport(data_dir, port, env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            enos = EnosClient(http, app_key, secret, "o1", scheme="accessKey")
            pk = await enos.create_product(model_id="m1")
            # no deviceKey: a replay that got through would create a second device, not fail on the key
            r = await enos.raw("POST", "/connect-service/v2.1/devices", {"action": "create"},
                               {"productKey": pk, "deviceName": {"defaultValue": "d"}, "timezone": "+08:00"})
            os.kill(proc.pid, signal.SIGKILL)  # right after the answer: no batch of used values was written
            proc.wait(10)
        assert r.json()["code"] == 0, r.text
        signed = r.request
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = start_thingport(data_dir, port, env)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            replay = await http.send(httpx.Request(signed.method, signed.url, headers=signed.headers,
                                                   content=signed.content))
            assert replay.status_code == 401 and replay.json()["code"] == 401, replay.text
            assert "the signature was used before; a replayed request is refused" in replay.json()["msg"]
            r = await EnosClient(http, app_key, secret, "o1").call(
                "POST", "/connect-service/v2.1/devices", {"action": "search"},
                {"pagination": {"pageNo": 1, "pageSize": 10}, "projection": ["assetId"]})
            assert r["code"] == 0 and len(r["data"]) == 1, r
    finally:
        stop(proc)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_group_committed_creates_survive_kill_9_under_concurrent_load(tmp_path: Path, backend: str) -> None:
    """32 clients at once share commits: every create a client was told succeeded is there after
    ``kill -9``, and the product's device counter matches the devices that are."""
    data_dir = tmp_path / "data"
    url = PG_URL if backend == "postgresql" else ""
    if url:
        await reset_postgres(url)
    app_key, secret = await provision(data_dir, url)
    env = {"THINGPORT_DATABASE_URL": url}
    port = free_port()
    proc = start_thingport(data_dir, port, env)
    acked: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     limits=httpx.Limits(max_connections=32)) as http:
            enos = EnosClient(http, app_key, secret, "o1")
            pk = await enos.create_product(model_id="m1")

            tasks = [asyncio.create_task(create_devices(enos, pk, n, 200, acked)) for n in range(32)]
            while len(acked) < 150 and not all(t.done() for t in tasks):
                await asyncio.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            await asyncio.gather(*tasks)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(acked) >= 150
    settings = Settings(data_dir=data_dir, database_url=url)
    keyring, _ = ensure_initialised(settings)
    db = Database(settings.db_url)
    try:
        core = Core(settings, keyring, db)
        async with db.read() as conn:
            stored = {d.asset_id for d in (await core.devices.search(conn, "o1", None, Page(1, 10_000)))[0]}
            counted = await core.products.count_devices(conn, pk)
    finally:
        await db.close()
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged devices lost"
    assert counted == len(stored)
