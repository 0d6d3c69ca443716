"""Topic rights of a session, against generated topics that put other devices' and other tenants'
identifiers at every position.

The expected answer is written independently of the grammar: the device may use a topic when it
starts with one of its own prefixes (its pair, or a sub-device's, after a root) and goes on after
it. The tenants are those of the attack the grammar closes: another organization's device is keyed
with this device's product key, and this device's key is a word of the topic tree.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fuzz import budget
from thingport.connect import family
from thingport.connect.family import TopicFamily
from thingport.connect.mqtt.broker import Action
from thingport.connect.session import DeviceSession

#: This device (organization A), keyed "thing"; its gateway's sub-device; a device of the same product.
PK, DK, SUB, PEER = "PkAaaaa1", "thing", ("PkSub001", "sub-0001"), ("PkAaaaa1", "peer-001")
#: Organization B's device is keyed with A's product key; B's other device is keyed "user".
THEIRS, THEIRS_USER = ("PkBbbbb2", PK), ("PkBbbbb2", "user")
ASSET, NODE, OTHER_ASSET = "asset-a1", "node-a1", "asset-b2"

IDENTIFIERS = [PK, DK, *SUB, *PEER, *THEIRS, *THEIRS_USER, ASSET, NODE, OTHER_ASSET]
WORDS = ["", "sys", "ext", "session", "ntp", "user", "thing", "event", "post", "huawei", "v1", "devices", "bind",
         "$oc", "register", "+", "#"]


def session(fam: TopicFamily, *, gateway: bool = False) -> DeviceSession:
    s = DeviceSession(ASSET, "o-a", PK, NODE if fam is family.OCEANCONNECT else DK, fam, is_gateway=gateway)
    if gateway:
        s.subs = {"asset-sub": SUB}
    return s


def expected(s: DeviceSession, topic: str, action: Action) -> bool:
    """The rights as prefixes of the device's own identifiers."""
    segs = topic.split("/")

    def under(prefix: list[str]) -> bool:
        return segs[: len(prefix)] == prefix and len(segs) > len(prefix)

    if s.family is family.OCEANCONNECT:
        if segs == ["", "huawei", "v1", "bind", s.device_key]:
            return action == "subscribe"
        return under(["", "huawei", "v1", "devices", s.asset_id]) or under(["$oc", "devices", s.asset_id])
    pairs = [(s.product_key, s.device_key), *s.subs.values()]
    return any(under(["", "sys", pk, dk]) or under(["", "ext", "session", pk, dk])
               or under(["", "ext", "ntp", pk, dk]) or under(["", pk, dk, "user"]) for pk, dk in pairs)


segments = st.lists(st.sampled_from(IDENTIFIERS + WORDS), min_size=1, max_size=8)


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """A topic of a root with identifiers, anyone's, at any positions: the shapes the attack takes."""
    template = draw(st.sampled_from([["", "sys", "*", "*"], ["", "ext", "session", "*", "*"],
                                     ["", "ext", "ntp", "*", "*"], ["", "*", "*", "user"],
                                     ["", "huawei", "v1", "devices", "*"], ["$oc", "devices", "*"],
                                     ["", "huawei", "v1", "bind", "*"]]))
    segs = [draw(st.sampled_from(IDENTIFIERS)) if s == "*" else s for s in template]
    before = draw(st.lists(st.sampled_from(IDENTIFIERS + WORDS), max_size=2))
    after = draw(st.lists(st.sampled_from(IDENTIFIERS + WORDS), max_size=3))
    return "/".join([*before, *segs, *after] if before and before[0] != "" else [*segs, *after])


CASES = st.tuples(st.sampled_from([family.ENOS, family.ALINK, family.OCEANCONNECT]), st.booleans(),
                  segments.map("/".join) | near_misses(), st.sampled_from(["publish", "subscribe"]))


@pytest.mark.fuzz
@budget(1000)
@given(CASES)
def test_rights_are_the_devices_own_prefixes_at_the_roots_place(case: tuple[TopicFamily, bool, str, Action]) -> None:
    fam, gateway, topic, action = case
    s = session(fam, gateway=gateway)
    assert s.may(topic, action) is expected(s, topic, action), topic


def test_the_cross_tenant_topics_of_the_attack_are_refused() -> None:
    """Before the grammar, A's pair (PK, "thing") at segments 3-4 of B's own topic was A's right."""
    a = session(family.ENOS)
    theirs = f"/sys/{THEIRS[0]}/{THEIRS[1]}"
    for topic in (f"{theirs}/thing/#", f"{theirs}/thing/event/property/post", f"/{THEIRS[0]}/{PK}/thing/x",
                  f"/ext/session/{THEIRS[0]}/{PK}/thing/x"):
        for action in ("publish", "subscribe"):
            assert not a.may(topic, action), topic
    user = DeviceSession("asset-u", "o-a", PK, "user", family.ALINK)  # A's device keyed "user"
    assert not user.may(f"/{THEIRS[0]}/{PK}/user/get", "subscribe")
    assert user.may(f"/{PK}/user/user/get", "subscribe")


def test_a_gateway_uses_its_sub_devices_topics_at_the_same_place() -> None:
    gw = session(family.ALINK, gateway=True)
    assert gw.may(f"/sys/{SUB[0]}/{SUB[1]}/thing/event/property/post", "publish")
    assert gw.may(f"/ext/session/{SUB[0]}/{SUB[1]}/#", "subscribe")
    assert not gw.may(f"/sys/{PK}/{SUB[0]}/{SUB[1]}/x", "publish")


def test_oceanconnect_bind_answer_is_subscribe_only_and_a_handoff_has_its_topic_alone() -> None:
    oc = session(family.OCEANCONNECT)
    assert oc.may(f"/huawei/v1/bind/{NODE}", "subscribe") and not oc.may(f"/huawei/v1/bind/{NODE}", "publish")
    assert not oc.may(f"/huawei/v1/bind/{ASSET}", "subscribe")
    assert oc.may(f"$oc/devices/{ASSET}/sys/messages/up", "publish")
    assert not oc.may(f"/sys/{PK}/{NODE}/thing/x", "publish")
