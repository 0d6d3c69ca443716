"""The replay guard: once per value, in either store mode, and across a restart."""

import asyncio
import contextvars
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from tests.support.enos_client import EnosClient
from tests.support.living_client import LivingClient
from thingport.domain.errors import DomainError
from thingport.domain.models import Application, I18nText
from thingport.services import nonces
from thingport.services.container import Services
from thingport.services.context import Caller, Core
from thingport.services.devices import DeviceSpec
from thingport.services.nonces import NonceGuard


@pytest.mark.parametrize("mode", ["memory", "database"])
async def test_a_value_is_accepted_once(services: Services, mode: str) -> None:
    core = Core(replace(services.core.settings, nonce_store=mode), services.core.keyring, services.core.db)
    guard = NonceGuard(core)
    assert guard.in_memory is (mode == "memory")
    assert await guard.use("sig-1", 60_000)
    assert not await guard.use("sig-1", 60_000)
    assert await guard.use("sig-2", 60_000)


async def test_database_mode_batches_concurrent_values_and_refuses_a_repeat_in_the_same_batch(
        services: Services) -> None:
    """Concurrent requests share one statement; a value sent twice at once is taken once only."""
    core = Core(replace(services.core.settings, nonce_store="database"), services.core.keyring, services.core.db)
    guard = NonceGuard(core)
    values = [f"burst-{i}" for i in range(40)] + ["burst-7", "burst-7", "burst-30"]
    answers = await asyncio.gather(*(guard.use(v, 60_000) for v in values))
    taken = [v for v, ok in zip(values, answers, strict=True) if ok]
    assert sorted(taken) == sorted(set(values))  # every value once, whatever batch it fell into
    async with services.core.read() as conn:
        stored = {k for k, _ in await services.core.accounts.live_nonces(conn, 0)}
    assert {nonces._key(v) for v in values} <= stored  # committed before the requests went on


async def test_database_mode_two_nodes_racing_for_one_value_let_one_through(services: Services) -> None:
    """Two nodes (guards on one database) sent the same signature at once: exactly one accepts it."""
    settings = replace(services.core.settings, nonce_store="database")
    a, b = (NonceGuard(Core(settings, services.core.keyring, services.core.db)) for _ in range(2))
    for i in range(5):
        answers = await asyncio.gather(a.use(f"race-{i}", 60_000), b.use(f"race-{i}", 60_000))
        assert sorted(answers) == [False, True]


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


async def test_a_large_batch_is_written_in_chunks_and_what_failed_is_kept_for_the_next(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush writes :data:`~nonces.FLUSH_CHUNK` values per transaction (the loop runs between
    them); a chunk that fails stays pending with the ones after it, the chunks before it stay written."""
    monkeypatch.setattr(nonces, "FLUSH_S", 3600)  # only the explicit flushes below write
    monkeypatch.setattr(nonces, "FLUSH_CHUNK", 10)
    guard = NonceGuard(Core(replace(services.core.settings, nonce_store="memory"), services.core.keyring,
                            services.core.db))
    values = [f"chunk-{i}" for i in range(25)]
    for v in values:
        assert await guard.use(v, 60_000)
    store, chunks = guard.core.accounts.store_nonces, []

    async def second_chunk_fails(conn: object, batch: list[tuple[str, int]]) -> None:
        chunks.append(len(batch))
        if len(chunks) == 2:
            raise RuntimeError("the database is busy")
        await store(conn, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(guard.core.accounts, "store_nonces", second_chunk_fails)

    async def flush() -> None:  # as the flusher does: in no request's context (REQUEST_NONCE)
        await asyncio.create_task(guard.flush(), context=contextvars.Context())

    await flush()
    assert chunks == [10, 10]
    assert await stored(services) == {nonces._key(v) for v in values[:10]}
    assert len(guard._pending) == 15
    await flush()
    assert chunks == [10, 10, 10, 5]
    assert await stored(services) == {nonces._key(v) for v in values}
    assert not guard._pending
    if guard._flusher is not None:
        guard._flusher.cancel()


# --- a signed request's value commits with what the request writes (memory mode) -----------------

@pytest.fixture
def no_batches(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[NonceGuard]:
    """The memory guard with its batches held back: only a write transaction can have stored a value."""
    monkeypatch.setattr(nonces, "FLUSH_S", 3600)
    guard = services.accounts.nonces
    monkeypatch.setattr(guard, "in_memory", True)
    yield guard
    if guard._flusher is not None:
        guard._flusher.cancel()


async def stored(services: Services) -> set[str]:
    async with services.core.read() as conn:
        return {key for key, _ in await services.core.accounts.live_nonces(conn, 0)}


async def test_the_first_write_of_a_request_records_its_value(
        services: Services, caller: Caller, service_product: str, no_batches: NonceGuard) -> None:
    assert await no_batches.use("sig-create", 60_000)
    with pytest.raises(DomainError):  # a write that fails records nothing: nothing was applied
        await services.devices.create(caller, DeviceSpec("no-such-product", I18nText("d"), "+08:00"))
    assert nonces._key("sig-create") not in await stored(services)
    await services.devices.create(caller, DeviceSpec(service_product, I18nText("d"), "+08:00"))
    assert nonces._key("sig-create") in await stored(services)
    # a restarted node refuses the replay though no batch was written
    restarted = NonceGuard(Core(replace(services.core.settings, nonce_store="memory"), services.core.keyring,
                                services.core.db))
    assert not await restarted.use("sig-create", 60_000)


async def test_signed_http_writes_of_both_dialects_commit_their_value(
        services: Services, http: httpx.AsyncClient, app: Application, caller: Caller, service_product: str,
        no_batches: NonceGuard) -> None:
    enos = EnosClient(http, app.app_key, app.secret, app.org_id, scheme="accessKey")
    r = await enos.raw("POST", "/connect-service/v2.1/devices", {"action": "create"},
                       {"productKey": service_product, "deviceName": {"defaultValue": "d"}, "timezone": "+08:00"})
    assert r.json()["code"] == 0
    sign = dict(r.request.url.params)["sign"]
    assert nonces._key(f"enos:accessKey:{sign.lower()}") in await stored(services)

    user = await services.living.create_user(caller.org_id, "ann")
    living = LivingClient(http, app.app_key, app.secret)
    await living.sign_in((await services.living.mint_auth_code(user.identity_id))[0])
    body = living.body({"name": "home"}, "1.1.0")
    r = await living.raw("/living/home/create", body, living.signed("/living/home/create", body, nonce="n-home"))
    assert r.json()["code"] == 200
    assert nonces._key(f"living:{app.app_key}:n-home") in await stored(services)
