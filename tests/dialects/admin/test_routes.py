"""The admin HTTP API (``/admin/v1``): operator authentication, tenants, applications, models, keys."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import data
from tests.support.enos_client import EnosClient
from thingport.crypto.keyring import Keyring
from thingport.settings import Settings

AUTH = {"Authorization": "Bearer operator-secret-token"}


def public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


async def admin(http: httpx.AsyncClient, method: str, path: str, body: Any = None,
                expect: int = 200) -> Any:
    r = await http.request(method, f"/admin/v1{path}", json=body, headers=AUTH)
    assert r.status_code == expect, r.text
    return r.json()


async def new_org(http: httpx.AsyncClient, org_id: str = "o-admin") -> str:
    return str((await admin(http, "POST", "/orgs", {"name": "Admin Co", "orgId": org_id}, 201))["orgId"])


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic operator-secret-token"},
                                     {"Authorization": "operator-secret-token"}])
async def test_operator_token_is_required(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/orgs"), ("POST", "/orgs"), ("GET", "/apps"), ("POST", "/master-key/rotate")):
        r = await http.request(method, f"/admin/v1{path}", json={"name": "x"} if method == "POST" else None,
                               headers=headers)
        assert r.status_code == 401, (method, path, r.text)
    r = await http.get("/admin/v1/orgs", headers=AUTH)
    assert r.status_code == 200


async def test_create_and_list_orgs(http: httpx.AsyncClient) -> None:
    created = await admin(http, "POST", "/orgs", {"name": "Admin Co", "orgId": "o-admin"}, 201)
    assert created["orgId"] == "o-admin" and created["name"] == "Admin Co" and created["createTime"] > 0
    generated = await admin(http, "POST", "/orgs", {"name": "Second"}, 201)
    assert generated["orgId"] and generated["orgId"] != "o-admin"
    listed = await admin(http, "GET", "/orgs")
    assert {o["orgId"] for o in listed} == {"o-admin", generated["orgId"]}


async def test_duplicate_org_id_is_a_conflict_naming_the_field(http: httpx.AsyncClient) -> None:
    await new_org(http)
    err = await admin(http, "POST", "/orgs", {"name": "Again", "orgId": "o-admin"}, 409)
    assert err["field"] == "orgId" and "o-admin" in err["message"]


async def test_bad_org_input_is_400(http: httpx.AsyncClient) -> None:
    err = await admin(http, "POST", "/orgs", {"name": "x", "orgId": "bad id!"}, 400)
    assert err["field"] == "orgId"
    err = await admin(http, "POST", "/orgs", {"name": ""}, 400)
    assert err["field"] == "name"
    r = await http.post("/admin/v1/orgs", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400


async def test_app_secret_is_shown_only_at_creation(http: httpx.AsyncClient) -> None:
    org_id = await new_org(http)
    created = await admin(http, "POST", f"/orgs/{org_id}/apps", {"name": "integration"}, 201)
    assert created["appSecret"] and created["orgId"] == org_id
    assert created["permissions"] == sorted(["device:full", "device:read", "product:create", "product:update",
                                             "product:delete"])
    assert created["hasPublicKey"] is False and created["disabled"] is False
    listed = await admin(http, "GET", f"/apps?orgId={org_id}")
    assert [a["appKey"] for a in listed] == [created["appKey"]]
    assert listed[0]["appSecret"] is None
    assert created["appSecret"] not in json.dumps(await admin(http, "GET", "/apps"))


async def test_app_of_unknown_org_is_404(http: httpx.AsyncClient) -> None:
    err = await admin(http, "POST", "/orgs/o-none/apps", {"name": "x"}, 404)
    assert err["field"] == "orgId"


async def test_permissions(http: httpx.AsyncClient) -> None:
    org_id = await new_org(http)
    app = await admin(http, "POST", f"/orgs/{org_id}/apps", {"name": "reader", "permissions": ["device:read"]}, 201)
    assert app["permissions"] == ["device:read"]
    changed = await admin(http, "PUT", f"/apps/{app['appKey']}/permissions",
                          {"permissions": ["device:full", "product:create"]})
    assert changed["permissions"] == ["device:full", "product:create"]
    listed = await admin(http, "GET", f"/apps?orgId={org_id}")
    assert listed[0]["permissions"] == ["device:full", "product:create"]
    err = await admin(http, "PUT", f"/apps/{app['appKey']}/permissions", {"permissions": ["device:everything"]}, 400)
    assert err["field"] == "permissions" and "device:full" in err["message"]
    err = await admin(http, "POST", f"/orgs/{org_id}/apps", {"name": "x", "permissions": ["root"]}, 400)
    assert err["field"] == "permissions"
    await admin(http, "PUT", "/apps/no-such-app/permissions", {"permissions": []}, 404)


async def test_disabled_app_cannot_call_enos(http: httpx.AsyncClient) -> None:
    org_id = await new_org(http)
    await admin(http, "POST", f"/orgs/{org_id}/models", {"modelId": "model1"}, 201)
    app = await admin(http, "POST", f"/orgs/{org_id}/apps", {"name": "integration"}, 201)
    enos = EnosClient(http, app["appKey"], app["appSecret"], org_id)
    product_key = await enos.create_product()

    disabled = await admin(http, "POST", f"/apps/{app['appKey']}/disable")
    assert disabled["disabled"] is True
    r = await enos.raw("GET", "/connect-service/v2.1/products", {"action": "get", "productKey": product_key})
    assert r.status_code == 401 and r.json()["code"] == 401
    legacy = EnosClient(http, app["appKey"], app["appSecret"], org_id, scheme="accessKey")
    r = await legacy.raw("GET", "/connect-service/v2.1/products", {"action": "get", "productKey": product_key})
    assert r.status_code == 401

    enabled = await admin(http, "POST", f"/apps/{app['appKey']}/enable")
    assert enabled["disabled"] is False
    fresh = EnosClient(http, app["appKey"], app["appSecret"], org_id)  # disabling revoked the old token
    got = data(await fresh.call("GET", "/connect-service/v2.1/products", {"action": "get", "productKey": product_key}))
    assert got["productKey"] == product_key
    await admin(http, "POST", "/apps/no-such-app/disable", expect=404)


async def test_set_public_key(http: httpx.AsyncClient) -> None:
    org_id = await new_org(http)
    app = await admin(http, "POST", f"/orgs/{org_id}/apps", {"name": "integration"}, 201)
    key = app["appKey"]
    assert (await admin(http, "PUT", f"/apps/{key}/public-key", {"publicKey": public_pem()}))["hasPublicKey"] is True
    assert (await admin(http, "GET", f"/apps?orgId={org_id}"))[0]["hasPublicKey"] is True
    err = await admin(http, "PUT", f"/apps/{key}/public-key", {"publicKey": "-----BEGIN PUBLIC KEY-----\nnope\n"}, 400)
    assert err["field"] == "publicKey"
    assert (await admin(http, "PUT", f"/apps/{key}/public-key", {"publicKey": None}))["hasPublicKey"] is False
    err = await admin(http, "POST", f"/orgs/{org_id}/apps", {"name": "x", "publicKey": "garbage"}, 400)
    assert err["field"] == "publicKey"
    created = await admin(http, "POST", f"/orgs/{org_id}/apps", {"name": "y", "publicKey": public_pem()}, 201)
    assert created["hasPublicKey"] is True


async def test_models(http: httpx.AsyncClient) -> None:
    org_id = await new_org(http)
    m = await admin(http, "POST", f"/orgs/{org_id}/models", {"modelId": "meter", "name": "Meter"}, 201)
    assert m == {"orgId": org_id, "modelId": "meter", "name": "Meter", "createTime": m["createTime"]}
    await admin(http, "POST", f"/orgs/{org_id}/models", {"modelId": "inverter"}, 201)
    listed = await admin(http, "GET", f"/orgs/{org_id}/models")
    assert {x["modelId"]: x["name"] for x in listed} == {"meter": "Meter", "inverter": "inverter"}
    err = await admin(http, "POST", f"/orgs/{org_id}/models", {"modelId": "meter"}, 409)
    assert err["field"] == "modelId"
    await admin(http, "POST", "/orgs/o-none/models", {"modelId": "x"}, 404)


async def test_master_key_rotation_keeps_every_secret_readable(http: httpx.AsyncClient, enos: EnosClient,
                                                               product_key: str, settings: Settings) -> None:
    created = await enos.create_device(product_key, "dev-rot-1")
    product = data(await enos.call("GET", "/connect-service/v2.1/products",
                                   {"action": "get", "productKey": product_key}))
    old_primary = Keyring.load(settings.key_file).primary

    rotated = await admin(http, "POST", "/master-key/rotate")
    assert rotated["reencrypted"] >= 3  # the device, the product and the application secrets
    assert rotated["keyId"] != old_primary
    ring = Keyring.load(settings.key_file)
    assert list(ring.keys) == [rotated["keyId"]] and ring.primary == rotated["keyId"]

    # The app secret still signs (a fresh token proves the server decrypts it), and both secrets read back.
    fresh = EnosClient(http, enos.app_key, enos.app_secret, enos.org_id)
    got = data(await fresh.call("GET", "/connect-service/v2.1/devices", {"action": "get",
                                                                         "assetId": created["assetId"]}))
    assert got["deviceSecret"] == created["deviceSecret"]
    again = data(await fresh.call("GET", "/connect-service/v2.1/products",
                                  {"action": "get", "productKey": product_key}))
    assert again["productSecret"] == product["productSecret"]
    assert (await admin(http, "POST", "/master-key/rotate"))["reencrypted"] == rotated["reencrypted"]


async def test_device_cas_bundle_rotate_import_and_history(http: httpx.AsyncClient, enos: EnosClient) -> None:
    """docs/certificates.md §8–9: the CAs an organization's device certificates chain to, and a device's
    certificate history."""
    from cryptography import x509

    from tests.support.certs import csr, device_key
    from thingport.crypto import ca as cacrypto
    from thingport.domain.models import now_ms

    org = enos.org_id
    bundle = await admin(http, "GET", f"/orgs/{org}/device-cas/bundle")
    assert bundle["pem"].count("BEGIN CERTIFICATE") == 2  # RSA and ECC, made now
    cas = await admin(http, "GET", f"/orgs/{org}/device-cas")
    assert sorted(c["authority"] for c in cas) == ["ECC", "RSA"] and all(c["retireTime"] is None for c in cas)
    assert all("PRIVATE" not in json.dumps(c) for c in cas)
    pk = await enos.create_product(biDirectionalAuth=True)
    asset = (await enos.create_device(pk))["assetId"]
    issued = data(await enos.call("POST", "/connect-service/v2.0/certificates", {"action": "apply", "assetId": asset},
                                  {"csr": csr(device_key("RSA"))}))
    rotated = await admin(http, "POST", f"/orgs/{org}/device-cas/RSA/rotate")
    old_rsa = next(c["caId"] for c in cas if c["authority"] == "RSA")
    assert rotated["authority"] == "RSA" and rotated["caId"] != old_rsa
    after = await admin(http, "GET", f"/orgs/{org}/device-cas")
    assert sum(c["retireTime"] is None for c in after) == 2 and len(after) == 3
    # the old CA still vouches: the bundle has it, and the issued certificate still chains to it
    bundle = (await admin(http, "GET", f"/orgs/{org}/device-cas/bundle"))["pem"]
    cert = x509.load_pem_x509_certificate(issued["cert"].encode())
    assert any(x509.load_pem_x509_certificate(b.encode()).subject == cert.issuer
               for b in [p + "-----END CERTIFICATE-----\n" for p in bundle.split("-----END CERTIFICATE-----\n")[:-1]])
    history = await admin(http, "GET", f"/orgs/{org}/devices/{asset}/certificates")
    assert [(h["certSn"], h["status"], h["issuedBy"]) for h in history] == [(issued["certSN"], "valid", enos.app_key)]
    # an operator's own CA
    own_cert, own_key = cacrypto.new_ca("ECC", "mine", now_ms())
    imported = await admin(http, "POST", f"/orgs/{org}/device-cas", {"certificate": own_cert, "privateKey": own_key})
    assert imported["imported"] and imported["authority"] == "ECC"
    bad = await admin(http, "POST", f"/orgs/{org}/device-cas", {"certificate": own_cert, "privateKey": "nope"},
                      expect=400)
    assert bad["field"] == "key"
    wrong = await admin(http, "POST", f"/orgs/{org}/device-cas/DSA/rotate", expect=400)
    assert wrong["field"] == "authority"
    missing = await admin(http, "POST", "/orgs/o-nobody/device-cas/RSA/rotate", expect=404)
    assert missing["field"] == "orgId"


async def test_replace_key_with_grace_and_the_credential_history(http: httpx.AsyncClient, enos: EnosClient) -> None:
    """docs/credentials.md: the new secret only in the answer, ``graceUntil``; the history never shows a secret."""
    org = enos.org_id
    pk = await enos.create_product()
    dev = await enos.create_device(pk, "adm-old")
    asset = dev["assetId"]
    path = f"/orgs/{org}/devices/{asset}"
    assert [(h["kind"], h["deviceKey"], h["endTime"]) for h in await admin(http, "GET", f"{path}/credentials")] == [
        ("secret", "adm-old", None)]
    bad = await admin(http, "POST", f"{path}/replace-key", {"newDeviceKey": "adm-new", "grace": -5}, expect=400)
    assert bad["field"] == "grace"
    out = await admin(http, "POST", f"{path}/replace-key", {"newDeviceKey": "adm-new", "grace": 120})
    assert out["deviceKey"] == "adm-new" and out["deviceSecret"] != dev["deviceSecret"] and out["graceUntil"]
    history = await admin(http, "GET", f"{path}/credentials")
    assert [(h["deviceKey"], h["issuedBy"], h["endReason"]) for h in history] == [
        ("adm-old", None, "replaced"), ("adm-new", "operator", None)]
    assert history[0]["endTime"] == out["graceUntil"]
    text = json.dumps(history)
    assert dev["deviceSecret"] not in text and out["deviceSecret"] not in text
    missing = await admin(http, "GET", f"/orgs/{org}/devices/nobody00/credentials", expect=400)
    assert (missing["error"], missing["field"]) == ("device_not_found", "assetId")
    other = await new_org(http, "o-elsewhere")  # another tenant's device is not found either
    hidden = await admin(http, "GET", f"/orgs/{other}/devices/{asset}/credentials", expect=400)
    assert hidden["error"] == "device_not_found"
