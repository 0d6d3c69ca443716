"""What a device presents at CONNECT, parsed into one of the login schemes devices use.

* **Signed** (EnOS and Alink): client id ``{id}|k=v,k=v|``, user name ``{deviceKey}&{productKey}``,
  password a signature over ``clientId``, the device key, ``productKey`` and ``timestamp``
  (reference/enos.md §5.2, living.md §4.1). ``authType=register`` is Alink's dynamic registration.
* **OceanConnect**: client id ``{deviceId|nodeId}_{0|2}_{0|1}_{YYYYMMDDHH}``, user name the same id,
  password ``HMAC-SHA256(key=timestamp, msg=secret)`` (reference/oceanconnect.md §7.5), split by
  :func:`thingport.crypto.oceanconnect.parse_client_id`. authType ``1`` is mentioned but never
  described by the vendor, so it is unreadable here (CONNACK 2), as is any other digit.

Parsing decides nothing about who the device is; it only rejects what no scheme can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thingport.connect.mqtt.broker import ConnectInfo
from thingport.crypto import oceanconnect


class UnreadableLogin(ValueError):
    """No login scheme can read these CONNECT fields."""


@dataclass(frozen=True, slots=True)
class SignedLogin:
    """EnOS or Alink: the device signs its own client id, key, product and timestamp."""

    client_id: str  # the part before the first '|', exactly as signed
    product_key: str
    device_key: str
    options: dict[str, str]  # the k=v pairs between the bars: securemode, signmethod, timestamp ...
    password: str = field(repr=False)

    @property
    def sign_method(self) -> str:
        return self.options.get("signmethod", "")

    @property
    def secure_mode(self) -> str:
        return self.options.get("securemode", "")

    @property
    def timestamp(self) -> str | None:
        return self.options.get("timestamp")

    @property
    def auth_type(self) -> str:
        return self.options.get("authtype", "")

    def signed_fields(self) -> dict[str, str]:
        """What the password signs besides the device key (a missing timestamp is left out)."""
        out = {"clientId": self.client_id, "productKey": self.product_key}
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        return out


@dataclass(frozen=True, slots=True)
class OceanConnectLogin:
    identifier: str  # deviceId (auth type 0) or nodeId (auth type 2)
    auth_type: int  # oceanconnect.BY_DEVICE_ID or oceanconnect.BY_NODE_ID
    check_time: bool  # sigType 1: the timestamp must be the current hour
    timestamp: str  # YYYYMMDDHH, UTC
    password: str = field(repr=False)


def parse(conn: ConnectInfo) -> SignedLogin | OceanConnectLogin:
    password = (conn.password or b"").decode("utf-8", "replace")
    if not conn.username or not password:
        raise UnreadableLogin("a device login needs a user name and a password")
    if "|" in conn.client_id:
        return _signed(conn.client_id, conn.username, password)
    oc = oceanconnect.parse_client_id(conn.client_id)
    if oc is None:
        raise UnreadableLogin("client id follows no device login scheme")
    if conn.username != oc.identifier:
        raise UnreadableLogin("user name must be the id the client id starts with")
    return OceanConnectLogin(oc.identifier, oc.auth_type, oc.sig_type == 1, oc.timestamp, password)


def _signed(client_id: str, username: str, password: str) -> SignedLogin:
    base, _, rest = client_id.partition("|")
    options_text, bar, _ = rest.partition("|")
    if not bar:
        raise UnreadableLogin("client id options must be closed with '|'")
    options: dict[str, str] = {}
    for pair in filter(None, options_text.split(",")):
        key, eq, value = pair.partition("=")
        if not eq:
            raise UnreadableLogin(f"client id option {key!r} has no value")
        options[key.strip().lower()] = value.strip()
    device_key, amp, product_key = username.partition("&")
    if not amp or not device_key or not product_key:
        raise UnreadableLogin("user name must be '{deviceKey}&{productKey}'")
    if not base:
        raise UnreadableLogin("client id is empty before '|'")
    if "signmethod" not in options:
        raise UnreadableLogin("client id options lack signmethod")
    return SignedLogin(base, product_key, device_key, options, password)
