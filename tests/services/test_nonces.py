"""The replay guard: once per value, in either store mode, and across a restart."""

import asyncio
from dataclasses import replace

import pytest

from thingport.services.container import Services
from thingport.services.context import Core
from thingport.services.nonces import NonceGuard


@pytest.mark.parametrize("mode", ["memory", "database"])
async def test_a_value_is_accepted_once(services: Services, mode: str) -> None:
    core = Core(replace(services.core.settings, nonce_store=mode), services.core.keyring, services.core.db)
    guard = NonceGuard(core)
    assert guard.in_memory is (mode == "memory")
    assert await guard.use("sig-1", 60_000)
    assert not await guard.use("sig-1", 60_000)
    assert await guard.use("sig-2", 60_000)


async def test_expired_values_may_come_again(services: Services) -> None:
    guard = services.accounts.nonces
    assert await guard.use("sig", 1)
    await asyncio.sleep(0.01)
    assert await guard.use("sig", 60_000)


@pytest.mark.parametrize("mode", ["memory", "database"])
async def test_a_restarted_node_still_refuses_recent_signatures(services: Services, mode: str) -> None:
    settings = replace(services.core.settings, nonce_store=mode)
    first = NonceGuard(Core(settings, services.core.keyring, services.core.db))
    assert await first.use("sig-before-restart", 60_000)
    await first.flush()  # what a graceful stop does; a crash loses at most one batch (0.2 s)
    second = NonceGuard(Core(settings, services.core.keyring, services.core.db))
    assert not await second.use("sig-before-restart", 60_000)


async def test_batches_reach_the_database_without_an_explicit_flush(services: Services) -> None:
    settings = replace(services.core.settings, nonce_store="memory")
    guard = NonceGuard(Core(settings, services.core.keyring, services.core.db))
    for i in range(50):
        assert await guard.use(f"sig-{i}", 60_000)
    await asyncio.sleep(0.5)
    async with services.core.read() as conn:
        stored = await services.core.accounts.live_nonces(conn, 0)
    assert len(stored) >= 50
