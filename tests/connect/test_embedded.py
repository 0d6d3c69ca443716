"""``serve``'s broker: the plain and the TLS listener, both in front of the same front door."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.connect.conftest import MakeDevice
from tests.support.device_login import enos_connect
from tests.support.mqtt_client import Device as Client
from tests.support.processes import free_port, serve_argv, wait_for_health
from tests.support.tls import self_signed
from thingport.app import open_services
from thingport.connect import embedded, sim
from thingport.connect.mqtt.client import ConnectRefused, MqttClient
from thingport.services.container import Services
from thingport.settings import Settings


async def test_plain_and_tls_listeners(services: Services, service_product: str, make_device: MakeDevice,
                                       tmp_path: Path) -> None:
    assert await embedded.start(services) is None  # the test settings turn MQTT off
    cert, key = self_signed(tmp_path)
    services.core.settings = replace(services.core.settings, mqtt_port=free_port(), mqtt_tls_port=free_port(),
                                     mqtt_tls_cert=str(cert), mqtt_tls_key=str(key))
    running = await embedded.start(services)
    assert running is not None
    try:
        dev = await make_device(service_product)
        plain_port, tls_port = running.broker.ports
        cid, user, password = enos_connect(service_product, dev.device_key, dev.secret)
        plain = Client(plain_port, cid, username=user, password=password)
        assert await plain.connect() == 0
        await plain.close()
        secure = Client(tls_port, cid, username=user, password=password)
        secure.client.tls_set(ca_certs=str(cert))
        secure.client.tls_insecure_set(True)  # the certificate names localhost, we dial 127.0.0.1
        assert await secure.connect() == 0
        await secure.close()
    finally:
        await running.stop()


@pytest.mark.slow
@pytest.mark.subprocess
async def test_an_activation_a_device_was_told_of_survives_kill_9(tmp_path: Path) -> None:
    """docs/mqtt.md, "Durability": a device that got CONNACK 0 on its first login is active in the
    database even if the server is killed the next instant; its online flag may be lost."""
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir)
    services = await open_services(settings)
    await services.accounts.create_org("Acme", "o1")
    await services.accounts.create_model("o1", "m1")
    fleet = await sim.create_fleet(services, "o1", devices=300)
    await services.core.db.close()
    http_port, mqtt_port = free_port(), free_port()
    proc = subprocess.Popen(serve_argv(data_dir, http_port, mqtt_port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    acked: list[str] = []
    clients: list[MqttClient] = []
    try:
        wait_for_health(f"http://127.0.0.1:{http_port}", lambda: proc.poll() is None)
        gate = asyncio.Semaphore(50)

        async def login(dev: sim.SimDevice) -> None:
            cid, user, password = sim.enos_login(dev)
            client = MqttClient(cid, username=user, password=password)
            async with gate:
                with contextlib.suppress(OSError, TimeoutError, ConnectRefused):
                    await client.connect("127.0.0.1", mqtt_port, timeout=5)
                    acked.append(dev.device_key)
                    clients.append(client)

        logins = asyncio.gather(*(login(d) for d in fleet))
        while len(acked) < 60:
            await asyncio.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)  # mid-storm: more logins are in flight
        proc.wait(10)
        await logins
    finally:
        if proc.poll() is None:
            proc.kill()
        for c in clients:
            await c.close()
    assert 60 <= len(acked) < len(fleet)
    services = await open_services(settings)
    try:
        async with services.core.read() as conn:
            stored = [await services.core.devices.by_login(conn, fleet[0].product_key, key) for key in acked]
    finally:
        await services.core.db.close()
    assert [d.device_key for d in stored if d is None or not d.active_time] == []
