"""Signed logins, EnOS and Alink: the device signs its client id, key, product and timestamp.

Client id ``{id}|k=v,k=v|``, user name ``{deviceKey}&{productKey}``, password a signature over
``clientId``, the device key, ``productKey`` and ``timestamp`` (docs/mqtt.md, Logins). The device
speaks the family of the signature that matched. Two logins hand the device its secret after
CONNACK: EnOS dynamic activation (``securemode=3``, signed with the product secret), whose secret is
pushed and whose session goes on, and Alink dynamic registration (``authType=register``), whose
session exists only to read the secret on ``/ext/register`` and is then closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thingport.connect import family, messages
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.schemes.base import ByKey, UnreadableLogin, user_and_password
from thingport.connect.session import DeviceSession, HandoffLink, device_now
from thingport.domain.errors import Unauthenticated
from thingport.services.connectivity import Credential, DeviceLogin
from thingport.services.container import Services

#: Time a registering client has to read its secret before the platform closes the session.
REGISTER_GRACE_S = 1.0


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


class ActivationPush:
    """EnOS dynamic activation: the device secret on ``thing/activate/info``, unasked for."""

    name = "dynamic activation"
    sole_topic = None

    async def deliver(self, session: DeviceSession, link: HandoffLink) -> None:
        device = await device_now(session, link)
        if device is not None:
            link.send(session, f"/ext/session/{device.product_key}/{device.device_key}/thing/activate/info",
                      messages.command("thing.activate.info", {
                          "assetId": device.asset_id, "productKey": device.product_key,
                          "deviceKey": device.device_key, "deviceSecret": device.secret}), 1)


class RegistrationPush:
    """Alink dynamic registration: the device secret on ``/ext/register``, then the session ends."""

    name = "dynamic registration"
    sole_topic = "/ext/register"

    async def deliver(self, session: DeviceSession, link: HandoffLink) -> None:
        device = await device_now(session, link)
        if device is not None:
            link.send(session, self.sole_topic, messages.encode({"productKey": session.product_key,
                                                                 "deviceName": session.device_key,
                                                                 "deviceSecret": device.secret}), 1)
        link.close_after(session, REGISTER_GRACE_S, "dynamic registration done")


ACTIVATION = ActivationPush()
REGISTRATION = RegistrationPush()


class SignedScheme:
    def read(self, conn: ConnectInfo) -> SignedLogin | None:
        if "|" not in conn.client_id:
            return None
        username, password = user_and_password(conn)
        return parse(conn.client_id, username, password)

    async def login(self, claim: SignedLogin, services: Services, *, remote: bool) -> DeviceSession:
        conn = services.connectivity
        if claim.auth_type == "register":
            reg = await conn.register(claim.product_key, claim.device_key, claim.options.get("random", ""),
                                      claim.sign_method, claim.password)
            d = reg.device
            return DeviceSession(d.asset_id, d.org_id, d.product_key, d.device_key, family.ALINK,
                                 handoff=REGISTRATION)
        if claim.auth_type:
            raise Unauthenticated(f"authType: {claim.auth_type} is not supported", field="authType")
        # a first login goes online with its activation, except an external broker's: it may not connect
        return _session(await conn.login(_credential(claim), dynamic=True, online=not remote), claim)

    async def login_certified(self, claim: SignedLogin, services: Services, *, remote: bool) -> DeviceSession:
        """:meth:`login` for a connection whose client certificate was matched to the claimed device
        (the X.509 scheme): what a product with bi-directional authentication requires."""
        if claim.auth_type:
            raise Unauthenticated(f"authType: {claim.auth_type} is not supported with a certificate",
                                  field="authType")
        return _session(await services.connectivity.login(_credential(claim, certified=True), dynamic=False,
                                                          online=not remote), claim)

    def login_now(self, claim: SignedLogin, services: Services) -> DeviceSession | None:
        """The static login of an active device whose credentials are in memory, decided at once;
        None for any other (then :meth:`login`)."""
        if claim.auth_type:
            return None
        login = services.connectivity.login_now(_credential(claim), dynamic=True)
        return _session(login, claim) if login is not None else None

    def names(self, username: str) -> bool:
        return "&" in username

    async def session_for(self, username: str, services: Services, by_key: ByKey) -> DeviceSession | None:
        device_key, _, product_key = username.partition("&")
        return await by_key(product_key, device_key)


def _credential(claim: SignedLogin, *, certified: bool = False) -> Credential:
    return Credential(claim.product_key, claim.device_key, claim.signed_fields(), claim.sign_method, claim.password,
                      claim.secure_mode or "2", certified)


def _session(login: DeviceLogin, claim: SignedLogin) -> DeviceSession:
    """The session under the key the device logged in with: its old one, on a credential in a
    rotation's grace period, whose topics the device still uses."""
    rec = login.device
    return DeviceSession(rec.asset_id, rec.org_id, rec.product_key, claim.device_key, family.of_signature(login.family),
                         is_gateway=login.product.is_gateway, handoff=ACTIVATION if login.activating else None,
                         announced=login.online, grace_end=login.grace_end)


def parse(client_id: str, username: str, password: str) -> SignedLogin:
    """The signed login in these fields; :class:`UnreadableLogin` when they do not make one."""
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
