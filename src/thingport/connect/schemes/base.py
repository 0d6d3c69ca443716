"""What a login scheme is, and how a login fails.

A scheme (in the manner of Eclipse Hono's auth handlers) reads the CONNECTs of its form into a
claim, resolves the claim through the services into a :class:`DeviceSession` (which carries what
follows CONNACK, :class:`thingport.connect.session.Handoff`), and names the device behind a broker
client's user name when an external broker asks for its topic rights. Schemes never touch the store.

Every failure is a :class:`LoginRefused`, and :func:`connack` is the one place a refusal becomes a
CONNACK code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar, Protocol, TypeVar

from thingport.connect.mqtt import codec
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.session import DeviceSession
from thingport.services.container import Services

ClaimT = TypeVar("ClaimT")

#: Remote sessions' lookup of a device by product and key (its gateway topology loaded, its family
#: as this node has it on record): what a user name naming a device that way resolves to.
ByKey = Callable[[str, str], Awaitable[DeviceSession | None]]


class LoginScheme(Protocol[ClaimT]):
    def read(self, conn: ConnectInfo) -> ClaimT | None:
        """The CONNECT's claim when it is of this scheme's form, else None; no I/O.

        Raises :class:`UnreadableLogin` when the form is this scheme's but the fields are not.
        """
        ...

    async def login(self, claim: ClaimT, services: Services, *, remote: bool) -> DeviceSession:
        """Check the claim through the services: the session to accept, or a domain error.

        ``remote``: an external broker asks, so nothing can follow the CONNACK; a scheme whose login
        changes state on the way to a handoff (a bind using up its code) must refuse it itself.
        """
        ...

    def names(self, username: str) -> bool:
        """Whether a broker client's user name is of this scheme's form."""
        ...

    async def session_for(self, username: str, services: Services, by_key: ByKey) -> DeviceSession | None:
        """The enabled device the user name names, for its topic rights; the login is not checked."""
        ...


class LoginRefused(Exception):
    """A refused CONNECT; the message is for the server log, never a secret."""

    #: The refusal's kind for the counts of refused logins (services/activity.py): a fixed word.
    reason: ClassVar[str] = "refused"

    def log_line(self, conn: ConnectInfo) -> str:
        return f"MQTT login refused for {conn.username!r}: {self}"


class UnreadableLogin(LoginRefused):
    """No login scheme can read these CONNECT fields."""

    reason = "unreadable"

    def log_line(self, conn: ConnectInfo) -> str:
        return f"MQTT login refused for client {conn.client_id!r}: {self}"


class CredentialRefused(LoginRefused):
    """The services refused the claim: wrong secret, unknown, disabled or deleted device …"""

    reason = "credential"


class Throttled(LoginRefused):
    """Too many failures from this address and user name: refused without a check."""

    reason = "throttled"

    def log_line(self, conn: ConnectInfo) -> str:
        peer = conn.peer[0] if conn.peer else ""
        return f"MQTT login of {conn.username!r} from {peer} throttled after repeated failures"


class NeedsEmbeddedBroker(LoginRefused):
    """A good login whose handoff (the message is its name) an external broker cannot deliver."""

    reason = "needs-embedded-broker"

    def log_line(self, conn: ConnectInfo) -> str:
        return f"MQTT login of {conn.username!r} refused: {self} needs the embedded broker"


def connack(refused: LoginRefused) -> int:
    """The CONNACK code of a refusal (docs/mqtt.md, Logins).

    2 for what no scheme can read; 5 for a login this broker will not take now; 4 for anything
    about the credential, whatever the reason, so that a guesser learns nothing.
    """
    if isinstance(refused, UnreadableLogin):
        return codec.REFUSED_IDENTIFIER_REJECTED
    if isinstance(refused, Throttled | NeedsEmbeddedBroker):
        return codec.REFUSED_NOT_AUTHORIZED
    return codec.REFUSED_BAD_USERNAME_PASSWORD


def user_and_password(conn: ConnectInfo) -> tuple[str, str]:
    """The user name and password of a scheme that needs both (every password scheme)."""
    password = (conn.password or b"").decode("utf-8", "replace")
    if not conn.username or not password:
        raise UnreadableLogin("a device login needs a user name and a password")
    return conn.username, password
