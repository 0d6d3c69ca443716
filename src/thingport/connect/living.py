"""The Living Platform's device side over MQTT: provisioning requests, and the commands apps cause.

Requests (Alink, ``/sys/{pk}/{dn}/…``, answered on ``<topic>_reply``) go to the provisioning service:
a device reports its bind token, a registrar the enrollees it sniffed and asks for the key of one
it was told to check in (the permit-join rule of ``thing/topo/add`` is the connectivity service's,
as the rule is a product's whatever family its gateway speaks). What an app does to a
device (bind, permit, remove a sub-device, start provisioning) is a committed ``living.*`` event;
:func:`downlink` is the command it becomes, which :mod:`thingport.connect.downlinks` sends once, so
a device that is offline then misses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thingport.connect import messages
from thingport.connect.messages import Request
from thingport.connect.requests import (
    DeviceContext,
    DeviceRequests,
    Handler,
    Target,
    as_object,
    integer,
    own_target,
    strings,
    text,
)
from thingport.connect.session import DeviceSession
from thingport.domain.errors import InvalidArgument
from thingport.services import events
from thingport.services.provisioning import CipherRequest

#: Enrollee IEs per ``enrollee/found`` report (docs/living.md, "Device side"); the device SDK tracks at most 5.
MAX_ENROLLEES = 30


# --- requests -----------------------------------------------------------------------------------

async def enrollee_match(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    """``thing/awss/enrollee/match`` ``{token}``: the device's bind token, replacing its earlier one."""
    own_target(session, target)
    params = as_object(req.params)
    await ctx.provisioning.report_bind_token(session.asset_id, text(params, "token", strict=True))
    return {}


async def enrollee_found(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    """``thing/awss/enrollee/found``: a registrar's sniffed enrollee IEs; the reply lists those accepted.

    An IE that does not parse or verify is dropped, not refused: it is what the air carried.
    """
    own_target(session, target)
    params = as_object(req.params)
    if params.get("awssVer") is not None and not isinstance(params["awssVer"], dict):
        raise InvalidArgument("awssVer: must be an object", field="awssVer")
    payloads = strings(params, "payload", MAX_ENROLLEES)
    rssi: int | str = integer(params, "rssi") if params.get("rssi") is not None else ""
    return await ctx.provisioning.report_enrollees(
        session.asset_id, payloads, ssid=text(params, "ssid", required=False, strict=True),
        bssid=text(params, "bssid", required=False, strict=True), rssi=rssi,
        reporter_type=integer(params, "type", 0))


async def cipher_get(ctx: DeviceContext, session: DeviceSession, req: Request, target: Target) -> Any:
    """``thing/cipher/get``: the provisioning key of an enrollee the registrar was told to check in."""
    own_target(session, target)
    params = as_object(req.params)
    cipher = CipherRequest(text(params, "productKey", strict=True), text(params, "deviceName", strict=True),
                           integer(params, "cipherType", 3), text(params, "random", strict=True),
                           text(params, "mac", required=False, strict=True) or None)
    return await ctx.provisioning.registrar_cipher(session.asset_id, cipher)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("sys", "thing/awss/enrollee/match"): enrollee_match,
    ("sys", "thing/awss/enrollee/found"): enrollee_found,
    ("sys", "thing/cipher/get"): cipher_get,
}


def register(requests: DeviceRequests) -> None:
    for (root, path), handler in HANDLERS.items():
        requests.add(root, path, handler)


# --- downlinks ----------------------------------------------------------------------------------

Params = Callable[[dict[str, Any]], Any]

#: event kind → (topic under ``/sys/{pk}/{dn}/``, method, params from the event payload).
DOWNLINKS: dict[str, tuple[str, str, Params]] = {
    events.LIVING_BIND_NOTIFY: ("_thing/event/notify", "_thing.event.notify", lambda p: {
        "identifier": "awss.BindNotify",
        "value": {"iotId": p["iotId"], "identityId": p["identityId"], "owned": p["owned"],
                  "productKey": p["productKey"], "deviceName": p["deviceKey"], "operation": p["operation"]}}),
    events.LIVING_GATEWAY_PERMIT: ("thing/gateway/permit", "thing.gateway.permit", lambda p: p["permit"]),
    events.LIVING_TOPO_CHANGE: ("thing/topo/change", "thing.topo.change",
                                lambda p: {"status": p["status"], "subList": p["subList"]}),
    events.LIVING_ENROLLEE_CHECKIN: ("thing/awss/enrollee/checkin", "thing.awss.enrollee.checkin",
                                     lambda p: p["enrollee"]),
}


def downlink(ev: events.Event) -> tuple[str, bytes]:
    """The topic and command a ``living.*`` event becomes."""
    path, method, params = DOWNLINKS[ev.kind]
    p = ev.payload
    return f"/sys/{p['productKey']}/{p['deviceKey']}/{path}", messages.command(method, params(p))

