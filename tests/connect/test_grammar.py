"""The topic grammar: each root names its device at one place, as the vendor SDKs write their topics."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.support.fuzz import budget
from thingport.connect import grammar
from thingport.connect.grammar import Grammar, Named, Root

PK, DK, DEVICE_ID, NODE_ID = "2zp6A70r", "meter-01", "HDSwHm8e", "node-1"

#: Topics as enos-mqtt-sdk-python (enos/core/constant/DeliveryTopicFormat.py) and aliyun-iot-linkkit
#: (linkkit/linkkit.py) format them, and the root and names the grammar reads; None: no root of ours.
SDK_TOPICS: list[tuple[Grammar, str, str | None, tuple[str, ...]]] = [
    (grammar.SIGNED, f"/sys/{PK}/{DK}/thing/measurepoint/post", "sys", (PK, DK)),
    (grammar.SIGNED, f"/sys/{PK}/{DK}/thing/topo/add", "sys", (PK, DK)),
    (grammar.SIGNED, f"/sys/{PK}/{DK}/thing/service/property/set", "sys", (PK, DK)),
    (grammar.SIGNED, f"/ext/session/{PK}/{DK}/combine/login/batch", "ext/session", (PK, DK)),
    (grammar.SIGNED, f"/ext/session/{PK}/{DK}/combine/batch_login", "ext/session", (PK, DK)),
    (grammar.SIGNED, f"/ext/ntp/{PK}/{DK}/request", "ext/ntp", (PK, DK)),
    (grammar.SIGNED, f"/{PK}/{DK}/user/update", "user", (PK, DK)),
    # the EnOS integration channel names a product only: a device keyed "integration" is the one it names
    (grammar.SIGNED, f"/sys/{PK}/integration/measurepoint/post", "sys", (PK, "integration")),
    # linkkit's OTA, shadow and RRPC topics, and the dynamic-registration answer (a handoff's own topic)
    (grammar.SIGNED, f"/ota/device/inform/{PK}/{DK}", None, ()),
    (grammar.SIGNED, f"/shadow/update/{PK}/{DK}", None, ()),
    (grammar.SIGNED, f"/ext/rrpc/+/{PK}/{DK}/user/get", None, ()),
    (grammar.SIGNED, "/ext/register", None, ()),
    (grammar.SIGNED, f"/{PK}/{DK}/update", None, ()),
    (grammar.OCEANCONNECT, f"/huawei/v1/devices/{DEVICE_ID}/data/json", "huawei/v1/devices", (DEVICE_ID,)),
    (grammar.OCEANCONNECT, f"/huawei/v1/devices/{DEVICE_ID}/command/json", "huawei/v1/devices", (DEVICE_ID,)),
    (grammar.OCEANCONNECT, f"$oc/devices/{DEVICE_ID}/sys/messages/up", "$oc/devices", (DEVICE_ID,)),
    (grammar.OCEANCONNECT, f"/huawei/v1/bind/{NODE_ID}", "huawei/v1/bind", (NODE_ID,)),
    (grammar.OCEANCONNECT, f"/huawei/v1/bind/{NODE_ID}/more", None, ()),
    (grammar.OCEANCONNECT, f"/sys/{PK}/{DK}/thing/topo/add", None, ()),
]


@pytest.mark.parametrize(("tree", "topic", "root", "names"), SDK_TOPICS)
def test_vendor_topics_are_read_at_their_roots_place(tree: Grammar, topic: str, root: str | None,
                                                     names: tuple[str, ...]) -> None:
    named = tree.parse(topic)
    assert (named.root.name, named.names) == (root, names) if named is not None else root is None


def test_wildcards_stand_only_after_the_names() -> None:
    parse = grammar.SIGNED.parse
    assert parse(f"/sys/{PK}/{DK}/#") is not None and parse(f"/sys/{PK}/{DK}/+/post") is not None
    assert parse(f"/{PK}/{DK}/user/#") is not None
    for refused in ("/sys/+/+/#", f"/sys/{PK}/+/thing/#", f"/sys/+/{DK}/#", "/#", "#", "/+/+/user/#",
                    f"/{PK}/{DK}/#", f"/+/ext/session/{PK}/{DK}/#", f"/ext/+/{PK}/{DK}/#"):
        assert parse(refused) is None, refused


def test_a_reserved_first_segment_is_never_a_product_key() -> None:
    # /ext/{anything}/user/… would name a product "ext"; /sys/{dk}/user/… is a sys topic of device "user"
    assert grammar.SIGNED.parse("/ext/whatever/user/x") is None
    named = grammar.SIGNED.parse(f"/sys/{DK}/user/x")
    assert named is not None and (named.root.name, named.names) == ("sys", (DK, "user"))


# --- generated topics ---------------------------------------------------------------------------

SEGMENT = st.text(st.characters(blacklist_characters="/+#\x00", blacklist_categories=("Cs",)), min_size=1,
                  max_size=12)
ROOTS = [r for tree in (grammar.SIGNED, grammar.OCEANCONNECT) for r in tree.roots]


def tree_of(root: Root) -> Grammar:
    return grammar.SIGNED if root in grammar.SIGNED.roots else grammar.OCEANCONNECT


def build(root: Root, names: tuple[str, ...], rest: tuple[str, ...]) -> str:
    return "/".join((*root.head, *names, *root.tail, *rest))


@st.composite
def named_topics(draw: st.DrawFn) -> tuple[Root, tuple[str, ...], tuple[str, ...]]:
    root = draw(st.sampled_from(ROOTS))
    names = tuple(draw(st.lists(SEGMENT, min_size=2, max_size=2) if root.names == "pair"
                       else st.lists(SEGMENT, min_size=1, max_size=1)))
    rest = tuple(draw(st.lists(SEGMENT | st.sampled_from(["+", "#", ""]), min_size=1, max_size=4))) \
        if root.rest else ()
    return root, names, rest


@pytest.mark.fuzz
@budget(300)
@given(named_topics())
def test_a_topic_built_on_a_root_reads_back_its_names(case: tuple[Root, tuple[str, ...], tuple[str, ...]]) -> None:
    root, names, rest = case
    # the headless root cannot name a product that is another root's first segment (sys, ext)
    assume(root.head != ("",) or names[0] not in ("sys", "ext"))
    assert tree_of(root).parse(build(root, names, rest)) == Named(root, names, rest)


WORDS = ["", "sys", "ext", "session", "ntp", "user", "thing", "huawei", "v1", "devices", "bind", "$oc", "+", "#",
         PK, DK, DEVICE_ID, NODE_ID]


@pytest.mark.fuzz
@budget(500)
@given(st.lists(st.sampled_from(WORDS) | SEGMENT, min_size=1, max_size=8), st.sampled_from(
    [grammar.SIGNED, grammar.OCEANCONNECT]))
def test_whatever_parses_is_its_roots_fixed_part_and_names_then_the_rest(segs: list[str], tree: Grammar) -> None:
    named = tree.parse("/".join(segs))
    if named is None:
        return
    root = named.root
    assert build(root, named.names, named.rest) == "/".join(segs)
    assert not grammar.WILDCARDS.intersection(segs[: root.width])
    assert bool(named.rest) == root.rest
