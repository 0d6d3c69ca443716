"""Topic validation, wildcard matching, shared subscriptions and the two routing tries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingport.connect.mqtt.topics import (
    InvalidTopic,
    SubscriptionTrie,
    TopicTree,
    matches,
    parse_shared,
    validate_filter,
    validate_topic_name,
)


@pytest.mark.parametrize("f", ["a", "a/b", "+", "#", "a/+/c", "a/#", "+/+/#", "/", "$share/g/a/+", "$SYS/#"])
def test_valid_filters(f: str) -> None:
    validate_filter(f)


@pytest.mark.parametrize("f", ["", "a#", "a/#/b", "a+/b", "a/b+", "#/a", "a\x00", "$share/g", "$share//a",
                               "$share/g+/a", "$share/g/", "$share/g/a#"])
def test_invalid_filters(f: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_filter(f)


@pytest.mark.parametrize("t", ["", "a/+", "a/#", "x\x00"])
def test_invalid_topic_names(t: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_topic_name(t)


@pytest.mark.parametrize(("f", "t", "expected"), [
    ("a/b", "a/b", True), ("a/b", "a/c", False), ("a/+", "a/b", True), ("a/+", "a/b/c", False),
    ("a/#", "a", True), ("a/#", "a/b/c", True), ("#", "a/b", True), ("+/+", "/a", True), ("+", "/a", False),
    ("#", "$SYS/x", False), ("+/x", "$SYS/x", False), ("$SYS/#", "$SYS/x", True), ("a/+/#", "a/b", True),
    ("a//b", "a//b", True), ("a/+/b", "a//b", True),
])
def test_matching(f: str, t: str, expected: bool) -> None:
    assert matches(f, t) is expected
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    trie.add(f, "c", 1)
    assert (trie.match(t) == [("c", 1)]) is expected
    tree: TopicTree[int] = TopicTree()
    tree.set(t, 5)
    assert (list(tree.match(f)) == [(t, 5)]) is expected


def test_parse_shared() -> None:
    assert parse_shared("$share/g/a/+") == ("g", "a/+")
    assert parse_shared("a/+") == (None, "a/+")


def test_shared_group_round_robins_and_plain_subscribers_get_every_message() -> None:
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    for member in ("m1", "m2", "m3"):
        trie.add("$share/g/up/+", member, 1)
    trie.add("up/#", "watcher", 0)
    picks = []
    for _ in range(6):
        got = trie.match("up/x")
        assert ("watcher", 0) in got
        picks += [k for k, _ in got if k != "watcher"]
    assert picks == ["m1", "m2", "m3", "m1", "m2", "m3"]
    # members that cannot take a message now are skipped while others can
    assert {k for _ in range(4) for k, _ in trie.match("up/x", available=lambda k: k != "m2")} == {"m1", "m3",
                                                                                                   "watcher"}


def test_remove_prunes_and_counts() -> None:
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    trie.add("a/b/c", "x", 0)
    trie.add("a/b/c", "x", 1)  # a re-subscribe replaces
    trie.add("$share/g/a/b/c", "y", 0)
    assert len(trie) == 2
    assert sorted(trie.match("a/b/c")) == [("x", 1), ("y", 0)]
    assert trie.remove("a/b/c", "x")
    assert not trie.remove("a/b/c", "x")
    assert trie.remove("$share/g/a/b/c", "y")
    assert len(trie) == 0
    assert trie._root.empty()


def test_topic_tree_set_delete_and_dollar_topics() -> None:
    tree: TopicTree[str] = TopicTree()
    for t in ("a", "a/b", "a/b/c", "$SYS/up", "x/y"):
        tree.set(t, t)
    assert sorted(t for t, _ in tree.match("#")) == ["a", "a/b", "a/b/c", "x/y"]
    assert sorted(t for t, _ in tree.match("a/#")) == ["a", "a/b", "a/b/c"]
    assert [t for t, _ in tree.match("+/+")] == ["a/b", "x/y"]
    assert [t for t, _ in tree.match("$SYS/+")] == ["$SYS/up"]
    assert tree.delete("a/b") and not tree.delete("a/b") and not tree.delete("nope")
    assert tree.get("a/b") is None and tree.get("a/b/c") == "a/b/c"
    assert len(tree) == 4


levels = st.sampled_from(["a", "b", "", "$x"])
filter_levels = st.sampled_from(["a", "b", "", "+", "$x"])


@given(st.lists(levels, min_size=1, max_size=4), st.lists(filter_levels, min_size=1, max_size=4), st.booleans())
def test_tries_agree_with_the_reference_matcher(t_levels: list[str], f_levels: list[str], hash_end: bool) -> None:
    topic = "/".join(t_levels)
    f = "/".join([*f_levels, "#"] if hash_end else f_levels)
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    trie.add(f, "c", 0)
    tree: TopicTree[int] = TopicTree()
    tree.set(topic, 1)
    assert bool(trie.match(topic)) == matches(f, topic) == bool(list(tree.match(f)))
