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

from typing import Any

import msgspec

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

def downlink(p: events.LivingDownlink) -> tuple[str, bytes]:
    """The topic under ``/sys/{pk}/{dn}/`` and the command a ``living.*`` event becomes."""
    params: Any
    match p:
        case events.LivingBindNotify():
            path, method = "_thing/event/notify", "_thing.event.notify"
            params = {"identifier": "awss.BindNotify",
                      "value": {"iotId": p.iot_id, "identityId": p.identity_id, "owned": p.owned,
                                "productKey": p.product_key, "deviceName": p.device_key, "operation": p.operation}}
        case events.LivingGatewayPermit():
            path, method, params = "thing/gateway/permit", "thing.gateway.permit", msgspec.to_builtins(p.permit)
        case events.LivingTopoChange():
            path, method = "thing/topo/change", "thing.topo.change"
            params = {"status": p.status, "subList": msgspec.to_builtins(p.sub_list)}
        case events.LivingEnrolleeCheckin():
            path, method = "thing/awss/enrollee/checkin", "thing.awss.enrollee.checkin"
            params = msgspec.to_builtins(p.enrollee)
        case _:
            raise TypeError(f"no Living downlink for {p.KIND}")
    return f"/sys/{p.product_key}/{p.device_key}/{path}", messages.command(method, params)
