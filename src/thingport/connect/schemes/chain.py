"""The login schemes asked in order, behind one throttle: the first that reads a CONNECT decides it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.schemes.base import (
    ByKey,
    CredentialRefused,
    LoginRefused,
    LoginScheme,
    NeedsEmbeddedBroker,
    ServerUnavailable,
    Throttled,
    UnreadableLogin,
    user_and_password,
)
from thingport.connect.session import DeviceSession
from thingport.connect.throttle import LoginThrottle
from thingport.domain.errors import DomainError, Unavailable
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
        key = self._key(conn)
        if not self.throttle.settled(key):  # seen failing: other nodes may have counted more since
            await self.throttle.refresh(key)
        try:
            with self._attempt(key):
                scheme, claim = self.read(conn)
                session = await scheme.login(claim, self.services, remote=remote)
        except LoginRefused:
            await self.throttle.counted(key)  # shared: in the database before the client hears of it
            raise
        self.throttle.succeeded(key)
        if remote and session.handoff is not None:
            raise NeedsEmbeddedBroker(session.handoff.name)
        return session

    def authenticate_now(self, conn: ConnectInfo) -> DeviceSession | None:
        """:meth:`authenticate` (embedded broker) when a scheme can decide at once (``login_now``: a
        login needing no read or write); None when not (or when the throttle must ask the database),
        having counted nothing towards the throttle."""
        key = self._key(conn)
        if not self.throttle.settled(key):
            return None
        with self._attempt(key):
            scheme, claim = self.read(conn)
            login_now = getattr(scheme, "login_now", None)
            session: DeviceSession | None = login_now(claim, self.services) if login_now is not None else None
        if session is not None:
            self.throttle.succeeded(key)
        return session

    @staticmethod
    def _key(conn: ConnectInfo) -> tuple[str, str]:
        return conn.peer[0] if conn.peer else "", conn.username or ""

    @contextmanager
    def _attempt(self, key: tuple[str, str]) -> Iterator[None]:
        """Refused unchecked when throttled; unreadable fields and refused credentials count against
        the throttle, and a domain error becomes the refusal of a credential."""
        if self.throttle.blocked(key):
            raise Throttled()
        try:
            yield
        except UnreadableLogin:
            self.throttle.failed(key)
            raise
        except Unavailable as err:  # not the device's failure: no count against it
            raise ServerUnavailable(err.message) from err
        except DomainError as err:
            self.throttle.failed(key)
            raise CredentialRefused(err.message) from err

    async def session_for(self, username: str, by_key: ByKey) -> DeviceSession | None:
        """The device a broker client's user name names, as the first scheme of its form finds it."""
        for scheme in self.schemes:
            if scheme.names(username):
                return await scheme.session_for(username, self.services, by_key)
        return None
