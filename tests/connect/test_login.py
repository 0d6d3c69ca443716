"""CONNECT fields → login scheme, and what no scheme can read."""

from __future__ import annotations

import pytest

from thingport.connect import login
from thingport.connect.mqtt.broker import ConnectInfo


def info(client_id: str, username: str | None = "dk&pk", password: bytes | None = b"pw") -> ConnectInfo:
    return ConnectInfo(client_id, username, password, True, 60, None, False)


def test_signed_login_keeps_the_client_id_as_signed() -> None:
    got = login.parse(info("dk{ip=10.0.0.2,version=2.3.0}|securemode=2,signmethod=sha256,timestamp=1.5|"))
    assert isinstance(got, login.SignedLogin)
    assert (got.client_id, got.product_key, got.device_key) == ("dk{ip=10.0.0.2,version=2.3.0}", "pk", "dk")
    assert got.signed_fields() == {"clientId": "dk{ip=10.0.0.2,version=2.3.0}", "productKey": "pk",
                                   "timestamp": "1.5"}
    assert (got.sign_method, got.secure_mode) == ("sha256", "2")


def test_register_and_oceanconnect_logins() -> None:
    reg = login.parse(info("dk.pk|random=42,authType=register,securemode=2,signmethod=hmacsha256|"))
    assert isinstance(reg, login.SignedLogin) and reg.auth_type == "register" and reg.options["random"] == "42"
    oc = login.parse(info("D39564861q3gDa_0_1_2018072417", "D39564861q3gDa"))
    assert isinstance(oc, login.OceanConnectLogin)
    assert (oc.identifier, oc.auth_type, oc.check_time, oc.timestamp) == ("D39564861q3gDa", 0, True,
                                                                          "2018072417")
    node = login.parse(info("urn:imei:8612_3_2_0_2018072417", "urn:imei:8612_3"))
    assert isinstance(node, login.OceanConnectLogin) and (node.identifier, node.auth_type) == ("urn:imei:8612_3", 2)


@pytest.mark.parametrize(("client_id", "username", "password"), [
    ("dk|securemode=2,signmethod=sha256|", "dk&pk", None),  # no password
    ("dk|securemode=2,signmethod=sha256", "dk&pk", b"pw"),  # options not closed
    ("dk|securemode=2|", "dk&pk", b"pw"),  # no sign method
    ("dk|signmethod=sha256|", "dk-pk", b"pw"),  # user name without '&'
    ("|signmethod=sha256|", "dk&pk", b"pw"),  # empty client id
    ("plain-client", "dk&pk", b"pw"),  # no scheme
    ("D1_0_1_2018072417", "D2", b"pw"),  # OceanConnect user name differs from the id
    ("D1_1_1_2018072417", "D1", b"pw"),  # OceanConnect authType 1: never described by the vendor
    ("D1_0_2_2018072417", "D1", b"pw"),  # OceanConnect sigType 2: no such type
])
def test_unreadable(client_id: str, username: str, password: bytes | None) -> None:
    with pytest.raises(login.UnreadableLogin):
        login.parse(info(client_id, username, password))
