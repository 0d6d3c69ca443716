"""The topic grammar of each family: where in a topic the device it belongs to is named.

Topic rights, the requests the platform answers and the bridged requests of an external broker all
read a topic through :func:`parse`, so a device's identifiers count only at the position its root
defines. Matching identifiers wherever they occur let a device whose key is another tenant's product
key use that tenant's topics (``/sys/{theirPk}/{ourPk}/thing/…`` holds our pair at segments 3-4);
here the root is read first, then the names at the place that root gives them, and only after
them may a subscription hold a wildcard. docs/mqtt.md, "Topic rights", has the same table.

EnOS and Alink devices share one tree, whichever signature matched at login (behind an external
broker a node may not know which); OceanConnect devices have their own, named by deviceId.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from thingport.connect.mqtt.broker import Action

#: What a root names the device by: its (productKey, deviceKey), its OceanConnect deviceId (the
#: asset id) or its OceanConnect nodeId (the device key, known before the bind).
Names = Literal["pair", "device_id", "node_id"]

WILDCARDS = frozenset({"+", "#"})
BOTH: frozenset[Action] = frozenset({"publish", "subscribe"})
SUBSCRIBE: frozenset[Action] = frozenset({"subscribe"})


@dataclass(frozen=True, slots=True)
class Root:
    """One kind of topic: fixed segments, the device's names, fixed segments, then the rest."""

    #: How handlers and the docs call it (``sys``, ``ext/session``).
    name: str
    #: The segments before the names; the leading ``""`` is the topic's leading ``/``.
    head: tuple[str, ...]
    names: Names
    #: Fixed segments right after the names (``user``).
    tail: tuple[str, ...] = ()
    #: One or more segments follow (wildcards allowed there); False: the topic ends with the names.
    rest: bool = True
    actions: frozenset[Action] = BOTH

    @property
    def width(self) -> int:
        """Segments up to the end of the fixed part (head, names, tail)."""
        return len(self.head) + (2 if self.names == "pair" else 1) + len(self.tail)


@dataclass(frozen=True, slots=True)
class Named:
    """A topic read by the grammar: its root, the names at the root's place, and what follows."""

    root: Root
    names: tuple[str, ...]
    rest: tuple[str, ...]

    @property
    def path(self) -> str:
        return "/".join(self.rest)


class Grammar:
    """The roots of one tree. A topic whose first segments are a root's head belongs to that root
    alone; the root with no literal head (``/{pk}/{dk}/user/…``) takes only what no other claims."""

    def __init__(self, *roots: Root) -> None:
        self.roots = roots
        self._literal = tuple(r for r in roots if len(r.head) > 1)
        self._headless = next((r for r in roots if len(r.head) <= 1), None)
        #: First segments no product key can take: ``/ext/{other}/…`` is not a productKey ``ext``.
        self._reserved = frozenset(r.head[:2] for r in self._literal)

    def __repr__(self) -> str:
        return f"Grammar({', '.join(r.name for r in self.roots)})"

    def parse(self, topic: str) -> Named | None:
        """The topic's root and names, or None when it is no topic of this tree.

        A filter parses too: wildcards may stand in the rest, never in the fixed part or the names.
        """
        segs = topic.split("/")
        root = self._claimant(segs)
        if root is None or len(segs) < root.width or (len(segs) > root.width) != root.rest:
            return None
        fixed = segs[: root.width]
        names_end = root.width - len(root.tail)
        if (WILDCARDS.intersection(fixed) or tuple(fixed[: len(root.head)]) != root.head
                or tuple(fixed[names_end:]) != root.tail):
            return None
        return Named(root, tuple(fixed[len(root.head):names_end]), tuple(segs[root.width:]))

    def _claimant(self, segs: list[str]) -> Root | None:
        """The one root a topic can belong to: the first whose literal head it starts with, else
        the headless root, unless the topic starts with a segment reserved to another root."""
        for root in self._literal:
            if tuple(segs[: len(root.head)]) == root.head:
                return root
        return None if tuple(segs[:2]) in self._reserved else self._headless


#: EnOS (enos-mqtt-sdk-python, the Java SDK) and Alink (aliyun-iot-linkkit, the C SDK) devices.
SIGNED = Grammar(
    Root("sys", ("", "sys"), "pair"),
    Root("ext/session", ("", "ext", "session"), "pair"),
    Root("ext/ntp", ("", "ext", "ntp"), "pair"),
    Root("user", ("",), "pair", tail=("user",)),
)

#: OceanConnect devices: their deviceId topics, and their bind answer named by nodeId.
OCEANCONNECT = Grammar(
    Root("huawei/v1/devices", ("", "huawei", "v1", "devices"), "device_id"),
    Root("$oc/devices", ("$oc", "devices"), "device_id"),
    Root("huawei/v1/bind", ("", "huawei", "v1", "bind"), "node_id", rest=False, actions=SUBSCRIBE),
)
