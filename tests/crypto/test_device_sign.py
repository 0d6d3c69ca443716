"""Device signatures against the vendors' published test vectors."""

from __future__ import annotations

import hashlib

from thingport.crypto import device_sign


def test_alink_documented_vector() -> None:
    # docs/reference/living.md §4.1: HMAC-SHA1("secret", "clientId12345deviceNamedeviceproductKeypktimestamp789")
    fields = {"clientId": "12345", "productKey": "pk", "timestamp": "789"}
    sign = "FAFD82A3D602B37FB0FA8B7892F24A477F851A14"
    assert device_sign.alink_sign("secret", {**fields, "deviceName": "device"}, "hmacsha1").upper() == sign
    assert device_sign.verify("secret", fields, "device", "hmacSha1", sign) == "alink"
    assert device_sign.verify("other", fields, "device", "hmacsha1", sign) is None


def test_enos_documented_example() -> None:
    # docs/reference/enos.md §5.2:
    # upper(sha1("clientId123deviceKeytestproductKey123timestamp1524448722000deviceSecretxxx"))
    expected = hashlib.sha1(b"clientId123deviceKeytestproductKey123timestamp1524448722000deviceSecretxxx")
    fields = {"clientId": "123", "productKey": "123", "timestamp": "1524448722000"}
    sign = expected.hexdigest().upper()
    assert device_sign.enos_sign("deviceSecretxxx", {**fields, "deviceKey": "test"}, "sha1") == sign
    assert device_sign.verify("deviceSecretxxx", fields, "test", "hmacsha1", sign.lower()) == "enos"


def test_unknown_method_verifies_nothing() -> None:
    assert device_sign.algorithm("sha512") is None
    assert device_sign.verify("s", {}, "d", "sha512", "00") is None
