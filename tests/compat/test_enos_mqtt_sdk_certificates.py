"""``enos-mqtt-sdk-python`` with its SSL context (``Profile.set_ssl_context``: CA file, certificate, key)
against the TLS listener, with a certificate applied for through ``enos-api-sdk-python``: a product
with ``biDirectionalAuth`` logs in with it, and not after it is revoked (docs/certificates.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from enos.core.MqttClient import MqttClient
from enosapi.client.EnOSDefaultClient import EnOSDefaultClient

from tests.compat.conftest import Account
from tests.compat.enos_requests import CertificateRequest
from tests.compat.test_enos_mqtt_sdk import api, connected, device, product  # noqa: F401  (api: a fixture)
from tests.compat.test_enos_sdk import ok
from tests.support.certs import csr, device_key, write_identity
from tests.support.live_server import LiveServer
from tests.support.processes import free_port
from tests.support.tls import self_signed
from thingport.settings import Settings

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The compat server with the embedded broker's plain and TLS listeners on."""
    cert, key = self_signed(tmp_path)
    return replace(settings, mqtt_port=free_port(), mqtt_tls_port=free_port(), mqtt_tls_cert=str(cert),
                   mqtt_tls_key=str(key))


@pytest.mark.parametrize("kind", ["RSA", "ECC"])
def test_sdk_logs_in_with_its_certificate(live: LiveServer, api: EnOSDefaultClient,  # noqa: F811
                                          account: Account, settings: Settings, tmp_path: Path, kind: str) -> None:
    pk = product(api, account, biDirectionalAuth=True)
    dev = device(api, account, pk, f"sdk-{kind.lower()}")
    key = device_key(kind)
    issued = ok(api.execute(CertificateRequest(account.org_id, "apply", dev["assetId"],
                                               {"csr": csr(key), "issueAuthority": kind})))
    cert, key_path = write_identity(tmp_path, kind, key, issued["cert"])
    url = f"ssl://127.0.0.1:{settings.mqtt_tls_port}"

    def client(with_cert: bool) -> MqttClient:
        c = MqttClient(url, pk, dev["deviceKey"], dev["deviceSecret"])
        if with_cert:
            c.get_profile().set_ssl_context(settings.mqtt_tls_cert, str(cert), str(key_path))
        else:  # TLS with the server's certificate only
            c.get_profile().set_ssl_context(settings.mqtt_tls_cert, None, None)
        return c

    signed_in = connected(client(True))
    assert signed_in.is_connected()
    signed_in.close()
    assert not connected(client(False)).is_connected()  # the product needs the certificate
    ok(api.execute(CertificateRequest(account.org_id, "revoke", dev["assetId"], {"certSn": int(issued["certSN"])})))
    assert not connected(client(True)).is_connected()
