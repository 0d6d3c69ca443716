"""Topic families: how the devices of one login family are spoken to on the platform's topics.

EnOS and Alink devices share one topic tree (``/sys/{pk}/{dk}/…``, ``/ext/session/{pk}/{dk}/…``)
and differ in a field name, their reply codes and which of the platform's commands they get;
OceanConnect devices have topics of their own, named by deviceId. A session carries its family,
and everything in connect/ that depends on it reads one of these attributes rather than comparing
family names, so a family's ways are all written here.
"""

from __future__ import annotations

from dataclasses import dataclass

from thingport.connect import grammar
from thingport.crypto.device_sign import Family


@dataclass(frozen=True, slots=True)
class TopicFamily:
    name: str
    #: How its requests and replies name a device besides ``productKey``.
    key_field: str
    #: Whose reply codes its error replies take (:func:`thingport.connect.messages.error_code`).
    reply_codes: Family
    #: Its topics are the shared tree named by product and key, where the platform's commands reach
    #: it (``thing/{action}``, ``combine/{action}``, the Living downlinks). OceanConnect's are not:
    #: its devices get none of those, and their topic rights are their deviceId topics.
    sys_tree: bool
    #: Where its topics name a device, which its topic rights and requests read (:mod:`~thingport.connect.grammar`).
    topics: grammar.Grammar
    #: A gateway hears of its sub-devices' enable/disable/delete on its own ``combine/{action}``
    #: (EnOS), else on the sub-device's ``thing/{action}`` (Alink).
    sub_notices_via_combine: bool
    #: An online gateway is told on ``thing/topo/change`` of topology changes it did not make.
    hears_topology_changes: bool
    #: A sub-device login's answer carries ``assetId`` (and ``deviceSecret`` when it activated).
    sub_login_details: bool
    #: A batch login answers ``{loginedSubDevices, failedSubDevices}``; else the logged-in list,
    #: and an error when none could log in.
    batch_login_lists_failures: bool


ENOS = TopicFamily("enos", "deviceKey", "enos", sys_tree=True, topics=grammar.SIGNED, sub_notices_via_combine=True,
                   hears_topology_changes=False, sub_login_details=True, batch_login_lists_failures=True)
ALINK = TopicFamily("alink", "deviceName", "alink", sys_tree=True, topics=grammar.SIGNED, sub_notices_via_combine=False,
                    hears_topology_changes=True, sub_login_details=False, batch_login_lists_failures=False)
#: Its topic rights keep it off the shared tree, so the request attributes are never read; they are EnOS's.
OCEANCONNECT = TopicFamily("oceanconnect", "deviceKey", "enos", sys_tree=False, topics=grammar.OCEANCONNECT,
                           sub_notices_via_combine=False, hears_topology_changes=False, sub_login_details=True,
                           batch_login_lists_failures=True)

#: What a signed login may turn out to be, in the order a gateway's notices go to both when this node
#: cannot know which one it speaks (:mod:`thingport.connect.downlinks`).
SIGNED: tuple[TopicFamily, ...] = (ALINK, ENOS)

_BY_SIGNATURE: dict[Family, TopicFamily] = {"enos": ENOS, "alink": ALINK}


def of_signature(signature: Family) -> TopicFamily:
    """A signed device speaks the family of the signature that matched its login."""
    return _BY_SIGNATURE[signature]


def of_remote_device(on_record: TopicFamily | None, payload: bytes | None = None) -> TopicFamily:
    """The family of a signed device whose CONNECT this node did not check (external broker).

    It cannot be known for sure: the family is that of the signature that matched at login, which
    only the node that checked the login saw, and an MQTT publish carries nothing of the client
    that sent it. So, in this order:

    1. the family this node has on record for the device's user name (``dk&pk``): learnt from the
       signature when the broker asked this node to authenticate the device (kept when its rights
       are derived again, dropped when its session ends);
    2. for a request, Alink when it names a device by ``"deviceName"`` (EnOS entries say
       ``deviceKey``);
    3. EnOS.

    The session derived for a device's requests is kept for ``auth_cache_ttl_s``, so the first
    request of that time decides for those after it (a ``thing/topo/get`` with ``{}`` params
    included). docs/operations.md, "Family of a bridged request".
    """
    if on_record is not None:
        return on_record
    if payload is not None and b'"deviceName"' in payload:
        return ALINK
    return ENOS
