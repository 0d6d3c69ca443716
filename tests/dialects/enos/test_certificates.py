"""The Certificate APIs through HTTP: apply, renew, revoke, list, and their refusals (docs/enos.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cryptography import x509

from tests.conftest import data
from tests.support.certs import csr, device_key
from tests.support.enos_client import EnosClient
from thingport.services.container import Services

CERTS = "/connect-service/v2.0/certificates"


async def bidirectional(enos: EnosClient) -> tuple[str, str]:
    pk = await enos.create_product(biDirectionalAuth=True)
    dev = await enos.create_device(pk)
    return pk, str(dev["deviceKey"])


async def apply(enos: EnosClient, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    return await enos.call("POST", CERTS, {"action": "apply", **query}, body)


async def test_apply_rsa_and_ecc_then_list(enos: EnosClient) -> None:
    pk, dk = await bidirectional(enos)
    ref = {"productKey": pk, "deviceKey": dk}
    rsa = data(await apply(enos, ref, {"csr": csr(device_key("RSA"), "meter-1")}))
    assert rsa["issueAuthority"] == "RSA" and rsa["validDay"] == 730
    cert = x509.load_pem_x509_certificate(rsa["cert"].encode())
    assert str(cert.serial_number) == rsa["certSN"]
    ca = x509.load_pem_x509_certificate(rsa["caCert"].encode())
    cert.verify_directly_issued_by(ca)
    ecc = data(await apply(enos, ref, {"csr": csr(device_key("ECC")), "issueAuthority": "ECC", "validDay": 10}))
    assert ecc["issueAuthority"] == "ECC" and ecc["validDay"] == 10
    listed = data(await enos.call("GET", CERTS, {"action": "list", **ref}))
    assert {c["certSN"] for c in listed} == {rsa["certSN"], ecc["certSN"]}
    assert all(c["certStatus"] == 0 for c in listed)
    short = next(c for c in listed if c["certSN"] == ecc["certSN"])
    assert 9 * 86_400_000 < short["expireDate"] - short["signDate"] <= 10 * 86_400_000


async def test_revoke_and_renew(enos: EnosClient) -> None:
    pk, dk = await bidirectional(enos)
    ref = {"productKey": pk, "deviceKey": dk}
    key = device_key("RSA")
    first = data(await apply(enos, ref, {"csr": csr(key)}))
    renewed = data(await enos.call("POST", CERTS, {"action": "renew", **ref}, {"certSn": int(first["certSN"])}))
    # without a CSR, the same key and subject are certified again
    old = x509.load_pem_x509_certificate(first["cert"].encode())
    new = x509.load_pem_x509_certificate(renewed["cert"].encode())
    assert new.public_key() == old.public_key() and new.subject == old.subject
    listed = {c["certSN"]: c for c in data(await enos.call("GET", CERTS, {"action": "list", **ref}))}
    assert listed[first["certSN"]]["certStatus"] == 1 and listed[first["certSN"]]["revokerReason"] == "SUPERSEDED"
    assert listed[renewed["certSN"]]["certStatus"] == 0
    r = await enos.call("POST", CERTS, {"action": "revoke", **ref}, {"certSn": renewed["certSN"], "reason": 1})
    assert data(r) is None
    again = await enos.call("POST", CERTS, {"action": "revoke", **ref}, {"certSn": renewed["certSN"]})
    assert again["code"] == 99400 and "already revoked" in again["msg"]
    renew_revoked = await enos.call("POST", CERTS, {"action": "renew", **ref}, {"certSn": renewed["certSN"]})
    assert renew_revoked["code"] == 99400 and "certSn" in renew_revoked["msg"]


async def test_refusals_name_the_field(enos: EnosClient, services: Services) -> None:
    plain_pk = await enos.create_product()
    plain_dk = (await enos.create_device(plain_pk))["deviceKey"]
    r = await apply(enos, {"productKey": plain_pk, "deviceKey": plain_dk}, {"csr": csr(device_key("RSA"))})
    assert r["code"] == 99400 and "biDirectionalAuth" in r["msg"]
    pk, dk = await bidirectional(enos)
    ref = {"productKey": pk, "deviceKey": dk}
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "csr"),
        ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n"}, "csr"),
        ({"csr": csr(device_key("ECC"))}, "csr: an ECC key, but issueAuthority is RSA"),
        ({"csr": csr(device_key("RSA")), "issueAuthority": "DSA"}, "issueAuthority"),
        ({"csr": csr(device_key("RSA")), "validDay": 0}, "validDay"),
        ({"csr": csr(device_key("RSA")), "validDay": services.core.settings.certificate_max_valid_days + 1},
         "validDay"),
        ({"csr": csr(device_key("RSA")), "validDay": "ten"}, "validDay"),
    ]
    for body, field in cases:
        r = await apply(enos, ref, body)
        assert r["code"] == 99400 and field in r["msg"], (body, r)
    missing = await enos.call("POST", CERTS, {"action": "revoke", **ref}, {})
    assert missing["code"] == 99400 and "certSn" in missing["msg"]
    unknown = await enos.call("POST", CERTS, {"action": "revoke", **ref}, {"certSn": 12345})
    assert unknown["code"] == 99404 and "certSn" in unknown["msg"]
    nodevice = await apply(enos, {"productKey": pk, "deviceKey": "nope"}, {"csr": csr(device_key("RSA"))})
    assert nodevice["code"] == 11404
    wrong_version = await enos.call("POST", "/connect-service/v2.1/certificates", {"action": "apply", **ref}, {})
    assert wrong_version["code"] == 99400 and "v2.0" in wrong_version["msg"]


async def test_validity_is_capped_by_the_ca(enos: EnosClient, services: Services) -> None:
    """A validDay beyond the CA's remaining life gives a certificate that ends with the CA."""
    pk, dk = await bidirectional(enos)
    ref = {"productKey": pk, "deviceKey": dk}
    first = data(await apply(enos, ref, {"csr": csr(device_key("RSA"))}))
    ca = x509.load_pem_x509_certificate(first["caCert"].encode())
    services.core.settings = replace(services.core.settings, certificate_max_valid_days=100_000)
    long = data(await apply(enos, ref, {"csr": csr(device_key("RSA")), "validDay": 99_999}))
    cert = x509.load_pem_x509_certificate(long["cert"].encode())
    assert cert.not_valid_after_utc == ca.not_valid_after_utc
