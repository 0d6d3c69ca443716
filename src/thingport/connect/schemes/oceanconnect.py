"""OceanConnect logins: deviceId or nodeId with the device secret, or nodeId with a bind's verify code.

Client id ``{deviceId|nodeId}_{0|2}_{0|1}_{YYYYMMDDHH}``, user name the same id, password
``HMAC-SHA256(key=timestamp, msg=secret)`` (docs/oceanconnect.md), split by
:func:`thingport.crypto.oceanconnect.parse_client_id`. authType ``1`` is mentioned but never
described by the vendor, so no scheme reads it (CONNACK 2), as any other digit.

This module is connect/'s one caller of the OceanConnect registrations service.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thingport.connect import family, messages
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.schemes.base import ByKey, UnreadableLogin, user_and_password
from thingport.connect.session import DeviceSession, Handoff, HandoffLink, device_now, oceanconnect_bind_topic
from thingport.crypto import oceanconnect
from thingport.domain.errors import Unauthenticated
from thingport.services.container import Services
from thingport.services.oceanconnect.registrations import DeviceCredential


@dataclass(frozen=True, slots=True)
class OceanConnectLogin:
    identifier: str  # deviceId (auth type 0) or nodeId (auth type 2)
    auth_type: int  # oceanconnect.BY_DEVICE_ID or oceanconnect.BY_NODE_ID
    check_time: bool  # sigType 1: the timestamp must be the current hour
    timestamp: str  # YYYYMMDDHH, UTC
    password: str = field(repr=False)


class BindAnswer:
    """The deviceId and new secret of a device that bound with its verify code, named after
    AgentLite's bind result (docs/oceanconnect.md); the session goes on as the bound device's."""

    name = "bind"
    sole_topic = None

    async def deliver(self, session: DeviceSession, link: HandoffLink) -> None:
        device = await device_now(session, link)
        if device is not None:
            link.send(session, oceanconnect_bind_topic(device.device_key), messages.encode({
                "result": 0, "deviceId": device.asset_id, "nodeId": device.device_key,
                "deviceSecret": device.secret}), 1)


BIND = BindAnswer()


class OceanConnectScheme:
    def read(self, conn: ConnectInfo) -> OceanConnectLogin | None:
        oc = oceanconnect.parse_client_id(conn.client_id)
        if oc is None:
            return None
        username, password = user_and_password(conn)
        if username != oc.identifier:
            raise UnreadableLogin("user name must be the id the client id starts with")
        return OceanConnectLogin(oc.identifier, oc.auth_type, oc.sig_type == 1, oc.timestamp, password)

    async def login(self, claim: OceanConnectLogin, services: Services, *, remote: bool) -> DeviceSession:
        """The device secret, or the verify code of a pending bind.

        A bind is completed here, before CONNACK, so that two devices racing with one verify code
        cannot both be accepted; its :class:`BindAnswer` then hands the device its deviceId and secret.
        """
        if claim.check_time and not oceanconnect.timestamp_is_current(claim.timestamp):
            raise Unauthenticated("timestamp: not the current hour (UTC)", field="timestamp")
        oc = services.oceanconnect.registrations
        # Kept in memory like the signed logins' records, but never a pending bind's: its verify
        # code lapses with time, not with an event.
        cred = await services.connectivity.credentials.remember(
            ("oceanconnect", claim.auth_type, claim.identifier),
            lambda: oc.login_credential(claim.identifier, claim.auth_type),
            lambda c: c.asset_id, lambda c: not c.binding)
        if cred is None or not oceanconnect.verify_mqtt_password(cred.secret, claim.timestamp, claim.password):
            raise Unauthenticated("password: does not match", field="password")
        handoff: Handoff | None = None
        if cred.binding:
            if remote:  # the verify code must not be used up by a login that cannot get its answer
                raise Unauthenticated("verifyCode: binding needs the embedded broker", field="verifyCode")
            await oc.complete_bind(cred.asset_id)
            handoff = BIND
        elif cred.first_login:
            await oc.confirm_first_login(cred.asset_id)
        announced = await services.connectivity.activate(cred.product_key, cred.device_key, online=not remote)
        return _session(cred, handoff, announced)

    def names(self, username: str) -> bool:
        """Any user name: a deviceId or a nodeId. Last in the chain, it takes what the others do not."""
        return True

    async def session_for(self, username: str, services: Services, by_key: ByKey) -> DeviceSession | None:
        """The deviceId, or the nodeId of a bound device (authType 2); a device waiting for its bind has none."""
        oc = services.oceanconnect.registrations
        cred = (await oc.login_credential(username, oceanconnect.BY_DEVICE_ID)
                or await oc.login_credential(username, oceanconnect.BY_NODE_ID))
        if cred is None or cred.binding:
            return None
        return _session(cred, None)


def _session(cred: DeviceCredential, handoff: Handoff | None, announced: bool = False) -> DeviceSession:
    return DeviceSession(cred.asset_id, cred.org_id, cred.product_key, cred.device_key, family.OCEANCONNECT,
                         is_gateway=cred.is_gateway, handoff=handoff, announced=announced)
