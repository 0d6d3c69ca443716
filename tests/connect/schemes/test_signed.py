"""Signed logins (EnOS and Alink): what the scheme reads of a CONNECT, and the logins and handoffs a
real MQTT client sees on the embedded broker."""

from __future__ import annotations

import json

import pytest

from tests.connect.conftest import Door, MakeDevice, connect, status_is
from tests.support.device_login import alink_connect, alink_sign, enos_connect
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.schemes.signed import SignedLogin, SignedScheme
from thingport.domain.models import DeviceStatus
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef


def info(client_id: str, username: str | None = "dk&pk", password: bytes | None = b"pw") -> ConnectInfo:
    return ConnectInfo(client_id, username, password, True, 60, None, False)


def test_signed_login_keeps_the_client_id_as_signed() -> None:
    got = SignedScheme().read(info("dk{ip=10.0.0.2,version=2.3.0}|securemode=2,signmethod=sha256,timestamp=1.5|"))
    assert isinstance(got, SignedLogin)
    assert (got.client_id, got.product_key, got.device_key) == ("dk{ip=10.0.0.2,version=2.3.0}", "pk", "dk")
    assert got.signed_fields() == {"clientId": "dk{ip=10.0.0.2,version=2.3.0}", "productKey": "pk",
                                   "timestamp": "1.5"}
    assert (got.sign_method, got.secure_mode) == ("sha256", "2")


def test_register_login() -> None:
    reg = SignedScheme().read(info("dk.pk|random=42,authType=register,securemode=2,signmethod=hmacsha256|"))
    assert isinstance(reg, SignedLogin) and reg.auth_type == "register" and reg.options["random"] == "42"


def test_other_forms_are_not_signed_logins() -> None:
    assert SignedScheme().read(info("D39564861q3gDa_0_1_2018072417", "D39564861q3gDa")) is None


async def test_alink_login_with_hmac_password(door: Door, services: Services, caller: Caller,
                                              service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    client, rc = await connect(door, alink_connect(service_product, dev.device_key, dev.secret))
    assert rc == 0
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await client.close()


async def test_enos_dynamic_activation_pushes_the_secret_once(
        door: Door, services: Services, caller: Caller, dynamic_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(dynamic_product)
    product = await services.products.get(caller, dynamic_product)
    client, rc = await connect(door, enos_connect(dynamic_product, dev.device_key, product.secret, mode=3))
    assert rc == 0
    msg = await client.receive()
    assert msg.topic == f"/ext/session/{dynamic_product}/{dev.device_key}/thing/activate/info"
    body = json.loads(msg.payload)
    assert body["method"] == "thing.activate.info"
    assert body["params"] == {"assetId": dev.asset_id, "productKey": dynamic_product,
                              "deviceKey": dev.device_key, "deviceSecret": dev.secret}
    await client.publish(f"/ext/session/{dynamic_product}/{dev.device_key}/thing/activate/info_reply",
                         json.dumps({"id": body["id"], "code": 200, "data": None}).encode())
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await client.close()
    # activated: the product secret no longer works, the device secret does
    assert (await connect(door, enos_connect(dynamic_product, dev.device_key, product.secret, mode=3)))[1] == 4
    static, rc = await connect(door, enos_connect(dynamic_product, dev.device_key, dev.secret))
    assert rc == 0
    await static.close()


async def test_product_secret_is_refused_where_dynamic_activation_is_off(
        door: Door, services: Services, caller: Caller, service_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    product = await services.products.get(caller, service_product)
    assert (await connect(door, enos_connect(service_product, dev.device_key, product.secret, mode=3)))[1] == 4


@pytest.mark.slow
async def test_alink_dynamic_registration_over_mqtt(
        door: Door, services: Services, caller: Caller, dynamic_product: str, make_device: MakeDevice) -> None:
    dev = await make_device(dynamic_product)
    product = await services.products.get(caller, dynamic_product)
    sign = alink_sign(product.secret, f"deviceName{dev.device_key}productKey{dynamic_product}random42", "sha256")
    client = await door.client(
        f"{dev.device_key}.{dynamic_product}|random=42,authType=register,securemode=2,signmethod=hmacsha256|",
        f"{dev.device_key}&{dynamic_product}", sign)
    assert await client.connect() == 0
    msg = await client.receive()
    assert msg.topic == "/ext/register"
    assert json.loads(msg.payload) == {"productKey": dynamic_product, "deviceName": dev.device_key,
                                       "deviceSecret": dev.secret}
    assert await client.wait_disconnected()
    # registering is not logging in: the device is still inactive
    assert (await services.devices.get(caller, DeviceRef(asset_id=dev.asset_id))).device.status \
        is DeviceStatus.INACTIVE
    bad = await door.client(
        f"{dev.device_key}.{dynamic_product}|random=43,authType=register,securemode=2,signmethod=hmacsha256|",
        f"{dev.device_key}&{dynamic_product}", sign)
    assert await bad.connect() == 4
