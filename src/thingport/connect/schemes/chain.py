"""The login schemes asked in order, behind one throttle: the first that reads a CONNECT decides it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.schemes.base import (
    ByKey,
    CredentialRefused,
    LoginScheme,
    NeedsEmbeddedBroker,
    Throttled,
    UnreadableLogin,
    user_and_password,
)
from thingport.connect.session import DeviceSession
from thingport.connect.throttle import LoginThrottle
from thingport.domain.errors import DomainError
from thingport.services.container import Services


class LoginChain:
    def __init__(self, schemes: Sequence[LoginScheme[Any]], services: Services, throttle: LoginThrottle) -> None:
        self.schemes = tuple(schemes)
        self.services = services
        self.throttle = throttle

    def read(self, conn: ConnectInfo) -> tuple[LoginScheme[Any], Any]:
        """The scheme whose form the CONNECT has, and its claim."""
        for scheme in self.schemes:
            claim = scheme.read(conn)
            if claim is not None:
                return scheme, claim
        user_and_password(conn)  # no credentials at all says more than "no scheme"
        raise UnreadableLogin("client id follows no device login scheme")

    async def authenticate(self, conn: ConnectInfo, *, remote: bool) -> DeviceSession:
        """The session of a good login; :class:`~thingport.connect.schemes.base.LoginRefused` otherwise.

        Unreadable fields and refused credentials count towards the throttle of the client's
        address and user name; a good login clears it. ``remote``: an external broker asks, which
        cannot deliver a handoff, so a login that has one is refused (after it counted as good).
        """
        key = (conn.peer[0] if conn.peer else "", conn.username or "")
        if self.throttle.blocked(key):
            raise Throttled()
        try:
            scheme, claim = self.read(conn)
            session = await scheme.login(claim, self.services, remote=remote)
        except UnreadableLogin:
            self.throttle.failed(key)
            raise
        except DomainError as err:
            self.throttle.failed(key)
            raise CredentialRefused(err.message) from err
        self.throttle.succeeded(key)
        if remote and session.handoff is not None:
            raise NeedsEmbeddedBroker(session.handoff.name)
        return session

    async def session_for(self, username: str, by_key: ByKey) -> DeviceSession | None:
        """The device a broker client's user name names, as the first scheme of its form finds it."""
        for scheme in self.schemes:
            if scheme.names(username):
                return await scheme.session_for(username, self.services, by_key)
        return None
