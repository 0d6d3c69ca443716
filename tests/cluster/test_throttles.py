"""The login-failure limit and the OceanConnect flow control are shared by the nodes of one
PostgreSQL database: spread over two nodes, they allow what one node allows, not twice as much."""

from __future__ import annotations

import pytest

from tests.cluster.test_nodes import two  # noqa: F401 (a fixture)
from tests.support.device_login import enos_connect
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.connect.schemes import SCHEMES
from thingport.connect.schemes.base import CredentialRefused, Throttled
from thingport.connect.schemes.chain import LoginChain
from thingport.connect.throttle import LoginThrottle
from thingport.dialects.oceanconnect.throttle import SLOTS, Throttle
from thingport.domain.models import Device, I18nText
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceSpec
from thingport.store.counters import CounterStore


@pytest.fixture(autouse=True)
def _shared(services: Services) -> None:
    if services.core.db.is_sqlite:
        pytest.skip("one node on SQLite: the throttles stay in memory")


class CountingCounters(CounterStore):
    """The real store, counting the statements a node sends it."""

    def __init__(self) -> None:
        self.calls = 0

    async def add(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return await super().add(*args, **kwargs)

    async def read(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return await super().read(*args, **kwargs)

    async def clear(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return await super().clear(*args, **kwargs)


def connect(device: Device, secret: str, address: str = "10.0.0.9") -> ConnectInfo:
    cid, user, password = enos_connect(device.product_key, device.device_key, secret)
    return ConnectInfo(cid, user, password.encode(), True, 60, (address, 4711), False)


async def _device(svc: Services, caller: Caller, product: str) -> Device:
    return (await svc.devices.create(caller, DeviceSpec(product, I18nText("d"), "+08:00"))).device


def _chains(*nodes: Services) -> list[LoginChain]:
    return [LoginChain(SCHEMES, svc, LoginThrottle.of(svc.core)) for svc in nodes]


async def test_login_failures_spread_over_two_nodes_hit_the_limit_at_one_nodes_total(
        two: tuple[Services, Services], caller: Caller, service_product: str) -> None:  # noqa: F811
    a, b = two
    device = await _device(a, caller, service_product)
    chains = _chains(a, b)
    limit = a.core.settings.mqtt_login_failures
    for i in range(limit):  # a, b, a, b, a: each node saw fewer than the limit
        with pytest.raises(CredentialRefused):
            await chains[i % 2].authenticate(connect(device, "wrong"), remote=False)
    for chain in chains:  # the right secret, through either node: refused unchecked
        with pytest.raises(Throttled):
            await chain.authenticate(connect(device, device.secret), remote=False)
        with pytest.raises(Throttled):  # the embedded broker's quick path knows it too
            chain.authenticate_now(connect(device, device.secret))
    # another address is another key: its good login goes through
    assert (await chains[1].authenticate(connect(device, device.secret, "10.0.0.10"), remote=False)).asset_id


async def test_a_node_that_never_saw_the_key_fail_checks_one_attempt_more_at_most(
        two: tuple[Services, Services], caller: Caller, service_product: str) -> None:  # noqa: F811
    """The documented bound: ``max_failures + N - 1`` checked attempts across N nodes."""
    a, b = two
    device = await _device(a, caller, service_product)
    on_a, on_b = _chains(a, b)
    for _ in range(a.core.settings.mqtt_login_failures):
        with pytest.raises(CredentialRefused):
            await on_a.authenticate(connect(device, "wrong"), remote=False)
    key = ("10.0.0.9", f"{device.device_key}&{device.product_key}")
    assert on_a.throttle.settled(key) and on_b.throttle.settled(key)  # a knows; b has nothing to ask about
    with pytest.raises(CredentialRefused):  # b knew nothing of the key: checked, and counted
        await on_b.authenticate(connect(device, "wrong"), remote=False)
    for chain in (on_a, on_b):
        with pytest.raises(Throttled):
            await chain.authenticate(connect(device, device.secret), remote=False)


async def test_a_good_login_costs_no_statement_and_clears_what_its_node_counted(
        two: tuple[Services, Services], caller: Caller, service_product: str) -> None:  # noqa: F811
    a, _ = two
    device = await _device(a, caller, service_product)
    counters = a.core.counters = CountingCounters()
    [on_a] = _chains(a)
    for _ in range(3):
        assert (await on_a.authenticate(connect(device, device.secret), remote=False)).asset_id
    assert counters.calls == 0  # good logins of a key that never failed: no database round trip
    with pytest.raises(CredentialRefused):
        await on_a.authenticate(connect(device, "wrong"), remote=False)
    assert on_a.authenticate_now(connect(device, device.secret)) is None  # seen failing: asks the database
    assert (await on_a.authenticate(connect(device, device.secret), remote=False)).asset_id
    await on_a.throttle.counted(("10.0.0.9", f"{device.device_key}&{device.product_key}"))
    assert counters.calls == 3  # the failure counted, read back before the next check, cleared
    for _ in range(a.core.settings.mqtt_login_failures - 1):  # so the count starts again at zero
        with pytest.raises(CredentialRefused):
            await on_a.authenticate(connect(device, "wrong"), remote=False)
    assert (await on_a.authenticate(connect(device, device.secret), remote=False)).asset_id


async def test_the_oceanconnect_flow_control_allows_two_nodes_one_nodes_calls(
        two: tuple[Services, Services]) -> None:  # noqa: F811
    a, b = two
    nodes = [(Throttle(10, 60), a), (Throttle(10, 60), b)]  # each node's HTTP application has its own
    start = 1_000_000.0  # seconds, at the start of a slot
    admitted = [await throttle.allow("app-1", start + i / 100, core=svc.core)
                for i, (throttle, svc) in enumerate(nodes * 8)]
    assert admitted == [True] * 10 + [False] * 6  # 5 each, then refused through either node
    assert await nodes[0][0].allow("app-2", start, core=a.core)  # another application
    half = start + 30  # within the window: still refused (the refusal is also kept until its slot ends)
    assert not await nodes[1][0].allow("app-1", half, core=b.core)
    slot = 60 / SLOTS
    later = start + 60 + slot  # the slot that held the calls is out of the window: room again
    assert [await throttle.allow("app-1", later, core=svc.core) for throttle, svc in nodes * 6] == \
        [True] * 10 + [False] * 2
