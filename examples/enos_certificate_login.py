"""Log a device in with its X.509 certificate through enos-mqtt-sdk-python, as docs/certificates.md shows.

    python examples/enos_certificate_login.py ssl://127.0.0.1:8883 PRODUCT_KEY DEVICE_KEY DEVICE_SECRET \
        SERVER_CA.pem DEVICE.crt DEVICE.key

Prints ``connected: True`` (exit 0) or ``connected: False`` (exit 1). The SDK sends its signed login
(the device secret) along with the certificate, as it does against EnOS's port 18883.
"""

import sys

from enos.core.MqttClient import MqttClient


def main(url, product_key, device_key, device_secret, server_ca, cert, key):
    client = MqttClient(url, product_key, device_key, device_secret)
    client.get_profile().set_auto_reconnect(False)
    client.get_profile().set_ssl_context(server_ca, cert, key)  # (CA file, certificate, key[, key password])
    client.connect()  # waits for CONNACK (up to 10 s when the login is refused)
    ok = client.is_connected()
    print(f"connected: {ok}")
    if ok:
        client.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
