"""Devices and events in OceanConnect shapes: ``deviceInfo``, QueryDeviceDTOCloud2NA, push bodies.

Every documented key is present, ``null`` when unset (docs/reference/oceanconnect.md §6, §8.2). Times are UTC
``yyyyMMdd'T'HHmmss'Z'``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from thingport.services import events
from thingport.services.events import Event
from thingport.services.oceanconnect.views import OcView

TIME_FORMAT = "%Y%m%dT%H%M%SZ"
INFO_KEYS = ("nodeId", "name", "description", "manufacturerId", "manufacturerName", "mac", "location",
             "deviceType", "model", "swVersion", "fwVersion", "hwVersion", "protocolType", "bridgeId", "status",
             "statusDetail", "mute", "supportedSecurity", "isSecurity", "signalStrength", "sigVersion",
             "serialNumber", "batteryLevel", "isHD")


def wire_time(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(TIME_FORMAT)


#: The shape ``strptime`` is held to first: its ``%Y`` reads other scripts' digits (``٠015…``).
_TIME = re.compile(r"[0-9]{8}T[0-9]{6}Z")


def parse_time(value: str, field: str) -> int:
    """``yyyyMMdd'T'HHmmss'Z'`` in ASCII digits to epoch ms; ValueError names the field."""
    try:
        if not _TIME.fullmatch(value):
            raise ValueError(value)
        return int(datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC).timestamp() * 1000)
    except ValueError:
        raise ValueError(f"{field}: must be yyyyMMdd'T'HHmmss'Z', e.g. 20151212T121212Z") from None


def status(view: OcView, *, push: bool = False) -> tuple[str, str]:
    """ONLINE/NONE, OFFLINE/NONE, or for a never-bound device INACTIVE/NOT_ACTIVE (queries) and
    OFFLINE/NOT_ACTIVE (pushes, as captured); a disabled (muted) device is OFFLINE."""
    if not view.activated:
        return ("OFFLINE" if push else "INACTIVE"), "NOT_ACTIVE"
    if view.device.online and view.device.enabled:
        return "ONLINE", "NONE"
    return "OFFLINE", "NONE"


def device_info(view: OcView, *, push: bool = False, imsi: bool = False,
                status_override: tuple[str, str] | None = None) -> dict[str, Any]:
    d, reg = view.device, view.reg
    info: dict[str, Any] = dict.fromkeys(INFO_KEYS)
    stored = reg.info if reg else {}
    for key in INFO_KEYS:
        if isinstance(stored.get(key), str):
            info[key] = stored[key]
    st, detail = status_override or status(view, push=push)
    info.update({
        "nodeId": view.node_id, "name": d.name.default, "description": d.description,
        "location": reg.location if reg else None, "deviceType": reg.device_type if reg else None,
        "status": st, "statusDetail": detail, "mute": "FALSE" if d.enabled else "TRUE",
    })
    if imsi:
        info["imsi"] = stored.get("imsi")
    return info


def gateway_id(view: OcView) -> str:
    return view.device.gateway_asset_id or view.device.asset_id


def node_type(view: OcView) -> str:
    return "GATEWAY" if view.product.is_gateway else "ENDPOINT"


def query_device(view: OcView, *, imsi: bool = False) -> dict[str, Any]:
    d = view.device
    return {
        "deviceId": d.asset_id, "gatewayId": gateway_id(view), "nodeType": node_type(view),
        "createTime": wire_time(d.create_time), "lastModifiedTime": wire_time(d.update_time),
        "deviceInfo": device_info(view, imsi=imsi), "services": [], "alarmInfo": None,
    }


def _fallback_info(p: events.DeviceEvent, status: str | None = None, detail: str | None = None) -> dict[str, Any]:
    """deviceInfo of a device deleted before its event was pushed, from what the event recorded."""
    info: dict[str, Any] = dict.fromkeys(INFO_KEYS)
    node_id = p.node_id if isinstance(p, (events.DeviceBound, events.DeviceBindExpired)) else None
    new_key = p.new_device_key if isinstance(p, events.DeviceReplaced) else None
    info.update({"nodeId": node_id or new_key or p.device_key,
                 "name": p.name if isinstance(p, events.DeviceBindExpired) else None,
                 "status": status, "statusDetail": detail})
    return info


def push(ev: Event, view: OcView | None) -> tuple[str, dict[str, Any]] | None:
    """The push an event gives, as ``(notifyType, body)``; None for events that push nothing.

    The device is read when the push is queued; one deleted by then is described from the event.
    """
    did, p = ev.asset_id, ev.payload
    gw = gateway_id(view) if view else did
    if isinstance(p, events.DeviceCreated):
        info = device_info(view, push=True) if view else _fallback_info(p, "OFFLINE", "NOT_ACTIVE")
        return "deviceAdded", {"notifyType": "deviceAdded", "deviceId": did, "gatewayId": gw,
                               "nodeType": node_type(view) if view else "UNKNOWN", "deviceInfo": info}
    if isinstance(p, events.DeviceBound):
        info = device_info(view, status_override=("ONLINE", "NONE")) if view else _fallback_info(p, "ONLINE", "NONE")
        return "bindDevice", {"notifyType": "bindDevice", "deviceId": did, "resultCode": "succeeded",
                              "deviceInfo": info}
    if isinstance(p, events.DeviceBindExpired):
        info = device_info(view, push=True) if view else _fallback_info(p, "OFFLINE", "NOT_ACTIVE")
        return "bindDevice", {"notifyType": "bindDevice", "deviceId": did, "resultCode": "expired",
                              "deviceInfo": info}
    if isinstance(p, (events.DeviceConnected, events.DeviceDisconnected)):
        info = dict.fromkeys(INFO_KEYS)
        info["status"], info["statusDetail"] = "ONLINE" if isinstance(p, events.DeviceConnected) else "OFFLINE", "NONE"
        return "deviceInfoChanged", {"notifyType": "deviceInfoChanged", "deviceId": did, "gatewayId": gw,
                                     "deviceInfo": info, "networkStatus": None}
    if isinstance(p, (events.DeviceUpdated, events.DeviceReplaced, events.DeviceEnabled, events.DeviceDisabled)):
        info = device_info(view, push=True) if view else _fallback_info(p)
        return "deviceInfoChanged", {"notifyType": "deviceInfoChanged", "deviceId": did, "gatewayId": gw,
                                     "deviceInfo": info, "networkStatus": None}
    if isinstance(p, events.DeviceDeleted):
        return "deviceDeleted", {"notifyType": "deviceDeleted", "deviceId": did, "gatewayId": p.gateway_id or did}
    return None
