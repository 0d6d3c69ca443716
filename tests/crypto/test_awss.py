"""Provisioning keys against vectors computed independently from the seed document's formula."""

import hashlib
import hmac

import pytest

from thingport.crypto import awss

RANDOM = bytes(range(16))


def test_per_product_key_matches_the_seed_formula() -> None:
    # sha256(productSecret.getBytes() + 0x2c + hexToByte(random)), precomputed outside Thingport
    assert awss.cipher_key("ps-secret-0001", RANDOM) == \
        "c5e015772d9f5acd98422633c9f95796fae27c7850e8a9c3c19158146a0523d9"


def test_ble_key_puts_the_mac_between_secret_and_random() -> None:
    mac = bytes.fromhex("a0b1c2d3e4f5")
    assert awss.cipher_key("ds-secret-0001", RANDOM, mac) == \
        "f5fa397f2c992309c1d8c6d42e0a4d53075f831de8250642d0f47a8770c97b0c"
    assert awss.cipher_key("ds-secret-0001", RANDOM, mac) != awss.cipher_key("ds-secret-0001", RANDOM)


def test_enrollee_ie_round_trip_and_signature() -> None:
    payload = awss.build_enrollee_ie("lamp-1", "pkLamp01", RANDOM, "psecret")
    ie = awss.parse_enrollee_ie(payload)
    assert (ie.device_name, ie.product_key, ie.random, ie.security) == ("lamp-1", "pkLamp01", RANDOM, 3)
    assert ie.sign == hmac.new(b"psecret", RANDOM + b"lamp-1pkLamp01", hashlib.sha1).digest()
    assert ie.verify("psecret") and not ie.verify("other")


@pytest.mark.parametrize("bad", ["", "06", "zz", "03616263"])
def test_malformed_ie_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        awss.parse_enrollee_ie(bad)
