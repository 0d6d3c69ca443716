"""The OceanConnect MQTT login scheme (docs/reference/oceanconnect.md §7.5), as pure functions.

``clientId = {deviceId|nodeId}_{authType}_{sigType}_{YYYYMMDDHH}``; ``password =
hex(HMAC-SHA256(key=timestamp, msg=secret))``. authType 0 names the device by deviceId, 2 by
nodeId; sigType 1 asks the server to check the timestamp against its clock, 0 not to.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

BY_DEVICE_ID = 0
BY_NODE_ID = 2
_CLIENT_ID = re.compile(r"^(?P<id>.+)_(?P<auth>[0-9])_(?P<sig>[01])_(?P<ts>[0-9]{10})\Z")


@dataclass(frozen=True, slots=True)
class ClientId:
    identifier: str
    auth_type: int
    sig_type: int
    timestamp: str


def parse_client_id(client_id: str) -> ClientId | None:
    """Split a clientId into its four parts; None when it is not of the documented shape.

    The identifier may itself contain ``_``: the last three parts are fixed, so they are taken
    from the right.
    """
    m = _CLIENT_ID.match(client_id)
    if m is None or int(m.group("auth")) not in (BY_DEVICE_ID, BY_NODE_ID):
        return None
    return ClientId(m.group("id"), int(m.group("auth")), int(m.group("sig")), m.group("ts"))


def mqtt_password(secret: str, timestamp: str) -> str:
    """The password a device sends: lowercase hex of HMAC-SHA256 keyed by the timestamp."""
    return hmac.new(timestamp.encode(), secret.encode(), hashlib.sha256).hexdigest()


def verify_mqtt_password(secret: str, timestamp: str, password: str) -> bool:
    """Constant-time check of a device's password (hex, case-insensitive)."""
    expected = mqtt_password(secret, timestamp)
    return hmac.compare_digest(expected.encode(), password.lower().encode())


def timestamp_is_current(timestamp: str, now: datetime | None = None, *, slack_hours: int = 1) -> bool:
    """For sigType 1: the ``YYYYMMDDHH`` timestamp is the current UTC hour (± ``slack_hours``)."""
    try:
        ts = datetime.strptime(timestamp, "%Y%m%d%H").replace(tzinfo=UTC)
    except ValueError:
        return False
    now = now or datetime.now(UTC)
    return abs((now - ts).total_seconds()) <= (slack_hours + 1) * 3600 - 1
