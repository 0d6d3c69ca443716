"""The scheme chain: which scheme reads a CONNECT, what none can read, how refusals become CONNACK codes,
and that a new scheme needs nothing but its registration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.connect.conftest import Door, MakeDevice, connect, embedded, status_is
from tests.support.device_login import enos_connect
from thingport.connect import family
from thingport.connect.frontdoor import FrontDoor
from thingport.connect.mqtt import codec
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.schemes import SCHEMES
from thingport.connect.schemes.base import (
    ByKey,
    CredentialRefused,
    LoginRefused,
    NeedsEmbeddedBroker,
    ServerUnavailable,
    Throttled,
    UnreadableLogin,
    connack,
    user_and_password,
)
from thingport.connect.schemes.chain import LoginChain
from thingport.connect.schemes.oceanconnect import OceanConnectScheme
from thingport.connect.schemes.signed import SignedScheme
from thingport.connect.session import DeviceSession, Handoff, HandoffLink
from thingport.connect.throttle import LoginThrottle
from thingport.domain.errors import Unauthenticated, Unavailable
from thingport.domain.models import Device, DeviceStatus, Product
from thingport.services.container import Services
from thingport.services.context import Caller


def info(client_id: str, username: str | None = "dk&pk", password: bytes | None = b"pw") -> ConnectInfo:
    return ConnectInfo(client_id, username, password, True, 60, ("10.0.0.9", 4711), False)


async def test_the_first_scheme_of_the_client_ids_form_reads_it(services: Services) -> None:
    chain = LoginChain(SCHEMES, services, LoginThrottle())
    assert isinstance(chain.read(info("dk|securemode=2,signmethod=sha256|"))[0], SignedScheme)
    assert isinstance(chain.read(info("D1_0_1_2018072417", "D1"))[0], OceanConnectScheme)


@pytest.mark.parametrize(("client_id", "username", "password"), [
    ("dk|securemode=2,signmethod=sha256|", "dk&pk", None),  # no password
    ("dk|securemode=2,signmethod=sha256", "dk&pk", b"pw"),  # options not closed
    ("dk|securemode=2|", "dk&pk", b"pw"),  # no sign method
    ("dk|signmethod=sha256|", "dk-pk", b"pw"),  # user name without '&'
    ("|signmethod=sha256|", "dk&pk", b"pw"),  # empty client id
    ("plain-client", "dk&pk", b"pw"),  # no scheme
    ("D1_0_1_2018072417", "D2", b"pw"),  # OceanConnect user name differs from the id
    ("D1_1_1_2018072417", "D1", b"pw"),  # OceanConnect authType 1: never described by the vendor
    ("D1_0_2_2018072417", "D1", b"pw"),  # OceanConnect sigType 2: no such type
])
async def test_unreadable(services: Services, client_id: str, username: str, password: bytes | None) -> None:
    with pytest.raises(UnreadableLogin):
        LoginChain(SCHEMES, services, LoginThrottle()).read(info(client_id, username, password))


async def test_a_login_without_credentials_says_so_whatever_its_client_id(services: Services) -> None:
    chain = LoginChain(SCHEMES, services, LoginThrottle())
    for client_id in ("plain-client", "dk|securemode=2,signmethod=sha256|", "D1_0_1_2018072417"):
        with pytest.raises(UnreadableLogin, match="needs a user name and a password"):
            chain.read(info(client_id, "D1", None))
    with pytest.raises(UnreadableLogin, match="no device login scheme"):
        chain.read(info("plain-client"))


@pytest.mark.parametrize(("refused", "code"), [
    (UnreadableLogin("x"), codec.REFUSED_IDENTIFIER_REJECTED),
    (CredentialRefused("sign: does not match"), codec.REFUSED_BAD_USERNAME_PASSWORD),
    (Throttled(), codec.REFUSED_NOT_AUTHORIZED),
    (NeedsEmbeddedBroker("dynamic activation"), codec.REFUSED_NOT_AUTHORIZED),
    (ServerUnavailable("the database cannot be reached"), codec.REFUSED_SERVER_UNAVAILABLE),
])
def test_each_refusal_has_its_connack_code_and_log_line(refused: LoginRefused, code: int) -> None:
    assert connack(refused) == code
    line = refused.log_line(info("cid|x|", "dk&pk"))
    assert "'dk&pk'" in line or "'cid|x|'" in line


async def test_a_login_the_node_cannot_check_is_server_unavailable_and_no_failure(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database out of reach is not the device's failure: CONNACK 3, and no count against it."""
    throttle = LoginThrottle(max_failures=1)
    chain = LoginChain(SCHEMES, services, throttle)

    async def gone(*_args: object, **_kwargs: object) -> None:
        raise Unavailable("the database cannot be reached (ConnectionRefusedError)")

    monkeypatch.setattr(services.connectivity, "login", gone)
    conn = info("dk|securemode=2,signmethod=sha256|")
    for _ in range(3):
        with pytest.raises(ServerUnavailable):
            await chain.authenticate(conn, remote=False)
    assert not throttle.blocked(("10.0.0.9", "dk&pk"))


def test_log_lines_name_the_client_never_the_password() -> None:
    conn = info("cid|x|", "dk&pk", b"secret-password")
    assert Throttled().log_line(conn) == "MQTT login of 'dk&pk' from 10.0.0.9 throttled after repeated failures"
    assert NeedsEmbeddedBroker("dynamic registration").log_line(conn) == \
        "MQTT login of 'dk&pk' refused: dynamic registration needs the embedded broker"
    assert UnreadableLogin("no").log_line(conn) == "MQTT login refused for client 'cid|x|': no"
    assert CredentialRefused("sign: bad").log_line(conn) == "MQTT login refused for 'dk&pk': sign: bad"


# --- a scheme of the test's own: the registry is the only seam ----------------------------------

@dataclass(frozen=True)
class TokenLogin:
    asset_id: str
    token: str = field(repr=False)


class Welcome:
    """A handoff: a greeting on the device's own topic right after CONNACK."""

    name = "token welcome"
    sole_topic = None

    async def deliver(self, session: DeviceSession, link: HandoffLink) -> None:
        link.send(session, f"/sys/{session.product_key}/{session.device_key}/token/welcome", b"hello", 1)


class TokenScheme:
    """Client id ``token:{assetId}``, the device secret as password; user name ``token:{assetId}``."""

    def read(self, conn: ConnectInfo) -> TokenLogin | None:
        if not conn.client_id.startswith("token:"):
            return None
        _, token = user_and_password(conn)
        return TokenLogin(conn.client_id.removeprefix("token:"), token)

    async def login(self, claim: TokenLogin, services: Services, *, remote: bool) -> DeviceSession:
        found = await services.connectivity.login_by_id(claim.asset_id)
        if found is None or not found[0].enabled or found[0].secret != claim.token:
            raise Unauthenticated("token: does not match", field="token")
        return _session(*found, Welcome())

    def names(self, username: str) -> bool:
        return username.startswith("token:")

    async def session_for(self, username: str, services: Services, by_key: ByKey) -> DeviceSession | None:
        found = await services.connectivity.login_by_id(username.removeprefix("token:"))
        return _session(*found) if found is not None and found[0].enabled else None


def _session(device: Device, product: Product, handoff: Handoff | None = None) -> DeviceSession:
    return DeviceSession(device.asset_id, device.org_id, device.product_key, device.device_key, family.ENOS,
                         is_gateway=product.is_gateway, handoff=handoff)


@pytest.fixture
async def token_door(services: Services) -> AsyncIterator[Door]:
    async with embedded(FrontDoor(services, schemes=(TokenScheme(), *SCHEMES))) as d:
        yield d


async def test_a_registered_scheme_logs_devices_in_and_hands_off_like_the_built_in_ones(
        door: Door, token_door: Door, services: Services, caller: Caller, service_product: str,
        make_device: MakeDevice) -> None:
    dev = await make_device(service_product)
    token = (f"token:{dev.asset_id}", f"token:{dev.asset_id}", dev.secret)
    assert (await connect(door, token))[1] == codec.REFUSED_IDENTIFIER_REJECTED  # not registered there
    assert (await connect(token_door, (*token[:2], "wrong")))[1] == codec.REFUSED_BAD_USERNAME_PASSWORD
    client, rc = await connect(token_door, token)
    assert rc == 0
    msg = await client.receive()
    assert (msg.topic, msg.payload) == (f"/sys/{service_product}/{dev.device_key}/token/welcome", b"hello")
    await status_is(services, caller, dev.asset_id, DeviceStatus.ONLINE)
    await client.close()
    await status_is(services, caller, dev.asset_id, DeviceStatus.OFFLINE)
    enos, rc = await connect(token_door, enos_connect(service_product, dev.device_key, dev.secret))
    assert rc == 0  # the built-in schemes still answer
    await enos.close()

    remote = token_door.door.remote
    session = await remote.session_for(f"token:{dev.asset_id}")
    assert session is not None and session.asset_id == dev.asset_id
    # its handoff needs the embedded broker: an external broker's login is refused, as for the built-in ones
    refused = await remote.authenticate(ConnectInfo(*token[:2], dev.secret.encode(), True, 60, None, False))
    assert refused.return_code == codec.REFUSED_NOT_AUTHORIZED
