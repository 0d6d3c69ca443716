"""``serve``'s broker: the plain and the TLS listener, both in front of the same front door."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.connect.conftest import MakeDevice
from tests.support.device_login import enos_connect
from tests.support.mqtt_client import Device as Client
from tests.support.processes import free_port
from tests.support.tls import self_signed
from thingport.connect import embedded
from thingport.services.container import Services


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
