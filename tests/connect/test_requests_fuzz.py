"""Device requests with generated payloads, through the front door's request handling.

Every request a device can send is tried with payloads a device should not send: nested deeper than
any request, numbers beyond 64 bits or a double, NaN and infinities, other scripts' digits, trailing
newlines, NUL, lone surrogates, wrong types, lists past their handler's bound. Whatever arrives, the
device gets one reply in its family's codes and nothing is logged as a fault; what breaks a limit is
460 naming the field. The budget is small in CI (``tests/support/fuzz.py``); ``FUZZ_EXAMPLES`` runs more.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.connect.conftest import MakeDevice
from tests.support.fuzz import budget
from thingport.connect import family, requests
from thingport.connect.family import TopicFamily
from thingport.connect.frontdoor import FrontDoor
from thingport.connect.session import DeviceSession
from thingport.domain.models import Device

CODES = {"enos": {200, 400, 401, 402, 460}, "alink": {200, 400, 460, 6100, 6204, 6250}}
FUZZ = budget(150)


@dataclass
class Replies:
    """The downlink of a node: what the front door sends the devices."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def send_to(self, client_id: str, topic: str, payload: bytes, qos: int = 0) -> bool:
        self.sent.append((topic, payload))
        return True

    async def disconnect_client(self, client_id: str, reason: str = "", *, discard_session: bool = False) -> bool:
        return True

    async def disconnect_user(self, username: str, reason: str = "") -> bool:
        return True


@dataclass
class Node:
    door: FrontDoor
    replies: Replies
    gateway: Device
    gateway_product: str
    service_product: str

    def session(self, fam: TopicFamily) -> DeviceSession:
        return DeviceSession(self.gateway.asset_id, self.gateway.org_id, self.gateway_product,
                             self.gateway.device_key, fam, is_gateway=True, client_id="gw")

    def topics(self) -> list[str]:
        base = f"{self.gateway_product}/{self.gateway.device_key}"
        return [f.replace("+/+", base) for f in self.door.requests.filters()]

    async def ask(self, fam: TopicFamily, topic: str, payload: bytes) -> dict[str, Any]:
        """One request, and the one reply it got."""
        self.replies.sent.clear()
        assert await self.door.requests.handle(self.door, self.session(fam), topic, payload, 1)
        assert [t for t, _ in self.replies.sent] == [topic + "_reply"]
        reply = json.loads(self.replies.sent[0][1])
        assert reply["code"] in CODES[fam.reply_codes] and isinstance(reply["message"], str), reply
        return dict(reply)


@pytest.fixture
async def node(services: Any, gateway_product: str, service_product: str, make_device: MakeDevice
               ) -> AsyncIterator[Node]:
    door, replies = FrontDoor(services), Replies()
    door.attach(replies)
    requests.REPORTS.reset()
    yield Node(door, replies, await make_device(gateway_product), gateway_product, service_product)
    door.close()


@pytest.fixture(autouse=True)
def no_faults(caplog: pytest.LogCaptureFixture) -> Any:
    yield
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]


# --- strategies ---------------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from([
    "", " ", "key\n", "\n", "١٢٣", "１２３", "²", "0x1F", "1e400", "NaN", "-0", "\u202e", "\ufeff", "x" * 300,
    "a\u0000b", "é", "%s%n", "../../etc", "/sys/+/+/#",
])
NUMBERS = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | NUMBERS | st.text(max_size=20) | NASTY_TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12) | NASTY_TEXT, inner, max_size=4), max_leaves=20)
#: The fields the handlers read.
FIELDS = ["productKey", "deviceKey", "deviceName", "clientId", "timestamp", "sign", "signMethod", "signmethod",
          "secureMode", "deviceList", "subDevices", "proxieds", "random", "token", "payload", "rssi", "type",
          "ssid", "bssid", "awssVer", "cipherType", "mac", "timezone", "deviceAttributes", "deviceDesc"]


def entries(product_key: str) -> st.SearchStrategy[dict[str, Any]]:
    """Objects of the handlers' fields with anything in them, a real productKey now and then."""
    value = JSON | st.just(product_key) | st.lists(JSON, max_size=3)
    return st.dictionaries(st.sampled_from(FIELDS), value, max_size=8)


def params(product_key: str) -> st.SearchStrategy[Any]:
    entry = entries(product_key)
    return entry | st.lists(entry, max_size=4) | JSON | st.builds(
        lambda key, items: {key: items}, st.sampled_from(["deviceList", "subDevices", "proxieds", "payload"]),
        st.lists(entry | JSON, max_size=4))


def envelope(rid: Any, method: Any, body: Any) -> bytes:
    return json.dumps({"id": rid, "version": "1.0", "method": method, "params": body}).encode()


#: Raw JSON texts no encoder writes: a value beyond a limit, spliced in where params or a field goes.
BEYOND = st.one_of(
    st.integers(33, 3_000).map(lambda n: "[" * n + "]" * n),
    st.integers(33, 200).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(20, 5_000).map(lambda n: "9" * n),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "9223372036854775808",
                     '"\\u0000"', '"\\udc00"', '"ok\\ud800"']),
)


# --- properties ---------------------------------------------------------------------------------

@pytest.mark.fuzz
@FUZZ
@given(data=st.data())
async def test_any_request_gets_one_reply_in_the_familys_codes(node: Node, data: st.DataObject) -> None:
    fam = data.draw(st.sampled_from([family.ENOS, family.ALINK]))
    topic = data.draw(st.sampled_from(node.topics()))
    # an id the reply can carry: a NUL or a lone surrogate is refused with an empty id (test_messages.py)
    rid = data.draw(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8)
                    | st.integers(0, 2**32) | st.none())
    payload = envelope(rid, data.draw(st.text(max_size=20)), data.draw(params(node.service_product)))
    reply = await node.ask(fam, topic, payload)
    assert reply["id"] == ("" if rid is None else str(rid))


@pytest.mark.fuzz
@FUZZ
@given(data=st.data())
async def test_a_value_beyond_a_limit_is_460_naming_its_field(node: Node, data: st.DataObject) -> None:
    fam = data.draw(st.sampled_from([family.ENOS, family.ALINK]))
    topic = data.draw(st.sampled_from(node.topics()))
    beyond = data.draw(BEYOND)
    name = data.draw(st.sampled_from(FIELDS))
    where = data.draw(st.sampled_from(["params", "entry", "list"]))
    body, field_name = {
        "params": (beyond, "params"),
        "entry": (f'{{"productKey":"{node.service_product}","{name}":{beyond}}}', f"params.{name}"),
        "list": (f'[{{"productKey":"{node.service_product}"}},{{"{name}":{beyond}}}]', f"params[1].{name}"),
    }[where]
    payload = f'{{"id":"f1","version":"1.0","method":"m","params":{body}}}'.encode()
    reply = await node.ask(fam, topic, payload)
    assert reply["code"] == 460, reply
    assert reply["message"].startswith((f"{field_name}", "payload: arrays and objects nested")), reply


@pytest.mark.fuzz
@FUZZ
@given(data=st.data())
async def test_lists_past_their_bound_and_wrong_types_are_460(node: Node, data: st.DataObject) -> None:
    fam = data.draw(st.sampled_from([family.ENOS, family.ALINK]))
    topic = data.draw(st.sampled_from([t for t in node.topics() if not t.endswith(("topo/get", "logout"))]))
    shape = data.draw(st.sampled_from(["long", "scalar", "strings"]))
    entry = {"productKey": node.service_product, "deviceKey": "k-1", "deviceName": "k-1"}
    body: Any
    if shape == "long":
        n = data.draw(st.integers(1_001, 1_200))
        body = {key: [entry] * n for key in ("deviceList", "subDevices", "proxieds")} | {"payload": ["00"] * n}
        body = data.draw(st.sampled_from([body, [entry] * n]))
    elif shape == "scalar":
        body = data.draw(st.none() | st.booleans() | NUMBERS | NASTY_TEXT)
    else:
        body = data.draw(st.lists(st.none() | NUMBERS | NASTY_TEXT, min_size=1, max_size=3))
    reply = await node.ask(fam, topic, envelope("w1", "m", body))
    assert reply["code"] == 460 and reply["message"].split(":")[0], reply
