"""Topic names, topic filters, and the two trees the broker routes with.

Routing walks a trie keyed by topic level, so the cost of a publish grows with the depth of the
topic and the number of matching subscribers, not with the number of subscriptions: ten thousand
devices each subscribed to their own topics stay as fast as ten. Retained messages live in a
second trie keyed by topic name so that a new subscription finds its retained messages the same
way.

Shared subscriptions use the MQTT 5 form ``$share/{group}/{filter}`` (Mosquitto and EMQX accept it
on 3.1.1 too): each message matching the filter goes to one member of the group, round-robin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

SHARE_PREFIX = "$share/"
_MAX_BYTES = 65_535


class InvalidTopic(ValueError):
    """A topic name or filter that 3.1.1 does not allow."""


def _check_common(s: str, what: str) -> None:
    if not s:
        raise InvalidTopic(f"{what} is empty")
    if "\x00" in s:
        raise InvalidTopic(f"{what} contains U+0000")
    if len(s.encode()) > _MAX_BYTES:
        raise InvalidTopic(f"{what} is longer than 65535 bytes")


def validate_topic_name(topic: str) -> None:
    """A name a message is published to: no wildcards."""
    _check_common(topic, "topic name")
    if "+" in topic or "#" in topic:
        raise InvalidTopic("topic name contains a wildcard")


def parse_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split ``$share/{group}/{filter}`` into ``(group, filter)``; ``(None, filter)`` otherwise."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    group, sep, rest = topic_filter[len(SHARE_PREFIX):].partition("/")
    if not sep or not group or "+" in group or "#" in group:
        raise InvalidTopic("shared subscription must be $share/{group}/{filter} with a plain group name")
    return group, rest


def validate_filter(topic_filter: str) -> None:
    """A subscription filter: ``+`` fills a whole level, ``#`` a whole last level."""
    _check_common(topic_filter, "topic filter")
    _, plain = parse_shared(topic_filter)
    _check_common(plain, "topic filter")
    levels = plain.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise InvalidTopic("'#' must be the whole last level of a filter")
        if "+" in level and level != "+":
            raise InvalidTopic("'+' must fill a whole level of a filter")


def matches(topic_filter: str, topic: str) -> bool:
    """Whether a (non-shared) filter matches a topic name; the reference the tries agree with."""
    f_levels, t_levels = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and f_levels[0] in ("+", "#"):
        return False
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels) or (f != "+" and f != t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


@dataclass(slots=True)
class _Group(Generic[K, V]):
    members: dict[K, V] = field(default_factory=dict)
    turn: int = 0

    def pick(self, available: Callable[[K], bool] | None) -> tuple[K, V] | None:
        """The next member in turn, preferring those ``available`` says can take it now."""
        keys = list(self.members)
        if not keys:
            return None
        n = len(keys)
        for step in range(n):
            k = keys[(self.turn + step) % n]
            if available is None or available(k):
                self.turn = (self.turn + step + 1) % n
                return k, self.members[k]
        k = keys[self.turn % n]
        self.turn = (self.turn + 1) % n
        return k, self.members[k]


@dataclass(slots=True)
class _Node(Generic[K, V]):
    children: dict[str, _Node[K, V]] = field(default_factory=dict)
    subscribers: dict[K, V] = field(default_factory=dict)
    groups: dict[str, _Group[K, V]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.children or self.subscribers or self.groups)


class SubscriptionTrie(Generic[K, V]):
    """Subscriptions by filter: ``K`` names the subscriber (a client id), ``V`` is its value (QoS)."""

    def __init__(self) -> None:
        self._root: _Node[K, V] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, topic_filter: str, key: K, value: V) -> None:
        group, plain = parse_shared(topic_filter)
        node = self._root
        for level in plain.split("/"):
            node = node.children.setdefault(level, _Node())
        members = node.subscribers if group is None else node.groups.setdefault(group, _Group()).members
        if key not in members:
            self._count += 1
        members[key] = value

    def remove(self, topic_filter: str, key: K) -> bool:
        group, plain = parse_shared(topic_filter)
        path: list[tuple[_Node[K, V], str]] = []
        node = self._root
        for level in plain.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if group is None:
            removed = node.subscribers.pop(key, None) is not None
        else:
            g = node.groups.get(group)
            removed = g is not None and g.members.pop(key, None) is not None
            if g is not None and not g.members:
                del node.groups[group]
        if removed:
            self._count -= 1
        for parent, level in reversed(path):  # prune branches nobody subscribes under any more
            if not parent.children[level].empty():
                break
            del parent.children[level]
        return removed

    def match(self, topic: str, available: Callable[[K], bool] | None = None) -> list[tuple[K, V]]:
        """Every plain subscriber whose filter matches, plus one member of each matching group.

        A subscriber with several matching filters appears once per filter; the caller decides
        how to merge them. (Once per publish, so a loop over a stack rather than nested calls.)
        """
        out: list[tuple[K, V]] = []
        levels = topic.split("/")
        last = len(levels)
        wild_first = not levels[0].startswith("$")  # $SYS… is not matched by a leading + or #
        stack: list[tuple[_Node[K, V], int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            children = node.children
            if i == last:
                self._collect(node, out, available)
                hash_node = children.get("#")
                if hash_node is not None:  # "a/#" also matches "a"
                    self._collect(hash_node, out, available)
                continue
            exact = children.get(levels[i])
            if exact is not None:
                stack.append((exact, i + 1))
            if i or wild_first:
                plus = children.get("+")
                if plus is not None:
                    stack.append((plus, i + 1))
                hash_node = children.get("#")
                if hash_node is not None:
                    self._collect(hash_node, out, available)
        return out

    @staticmethod
    def _collect(node: _Node[K, V], out: list[tuple[K, V]], available: Callable[[K], bool] | None) -> None:
        if node.subscribers:
            out.extend(node.subscribers.items())
        for g in node.groups.values():
            picked = g.pick(available)
            if picked is not None:
                out.append(picked)


@dataclass(slots=True)
class _TopicNode(Generic[V]):
    children: dict[str, _TopicNode[V]] = field(default_factory=dict)
    value: V | None = None


class TopicTree(Generic[V]):
    """Values stored by topic name (retained messages), found by filter."""

    def __init__(self) -> None:
        self._root: _TopicNode[V] = _TopicNode()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def set(self, topic: str, value: V) -> None:
        node = self._root
        for level in topic.split("/"):
            node = node.children.setdefault(level, _TopicNode())
        if node.value is None:
            self._count += 1
        node.value = value

    def get(self, topic: str) -> V | None:
        node: _TopicNode[V] | None = self._root
        for level in topic.split("/"):
            node = node.children.get(level) if node is not None else None
        return node.value if node is not None else None

    def delete(self, topic: str) -> bool:
        path: list[tuple[_TopicNode[V], str]] = []
        node = self._root
        for level in topic.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.value is None:
            return False
        node.value = None
        self._count -= 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.children or child.value is not None:
                break
            del parent.children[level]
        return True

    def match(self, topic_filter: str) -> Iterator[tuple[str, V]]:
        """``(topic, value)`` for every stored topic the (non-shared) filter matches."""
        levels = topic_filter.split("/")
        last = len(levels)

        def everything(node: _TopicNode[V], path: list[str]) -> Iterator[tuple[str, V]]:
            if node.value is not None:
                yield "/".join(path), node.value
            for name, child in node.children.items():
                yield from everything(child, [*path, name])

        def walk(node: _TopicNode[V], i: int, path: list[str]) -> Iterator[tuple[str, V]]:
            if i == last:
                if node.value is not None:
                    yield "/".join(path), node.value
                return
            level = levels[i]
            if level == "#":
                if i == 0:
                    for name, child in node.children.items():
                        if not name.startswith("$"):
                            yield from everything(child, [name])
                else:
                    yield from everything(node, path)
                return
            if level == "+":
                for name, child in node.children.items():
                    if i == 0 and name.startswith("$"):
                        continue
                    yield from walk(child, i + 1, [*path, name])
                return
            exact = node.children.get(level)
            if exact is not None:
                yield from walk(exact, i + 1, [*path, level])

        yield from walk(self._root, 0, [])
