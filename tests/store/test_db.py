"""Group commit (``Database.write``): what sharing one transaction between writers must not change."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from tests.conftest import make_product
from tests.support.sql import statements
from thingport.domain.errors import DeviceKeyExists, LimitExceeded
from thingport.domain.models import I18nText, Page
from thingport.services.audit import ATTEMPT, Attempt
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.store import db as db_module
from thingport.store.driver import Driver

WRITERS = 24


@contextmanager
def commits(services: Services) -> Iterator[list[int]]:
    """Counts the transactions the block commits."""
    seen: list[int] = []
    engine = services.core.db.engine.sync_engine

    def record(_conn: Any) -> None:
        seen.append(1)

    event.listen(engine, "commit", record)
    try:
        yield seen
    finally:
        event.remove(engine, "commit", record)


def spec(product_key: str, key: str) -> DeviceSpec:
    return DeviceSpec(product_key, I18nText("meter"), "+08:00", device_key=key)


async def keys_of(services: Services, caller: Caller, product_key: str) -> set[str]:
    async with services.core.read() as conn:
        found, _ = await services.core.devices.search(conn, caller.org_id, None, Page(1, 1000))
    return {d.device_key for d in found if d.product_key == product_key}


async def test_concurrent_writers_share_commits(services: Services, caller: Caller, service_product: str) -> None:
    with commits(services) as seen:
        await asyncio.gather(*(services.devices.create(caller, spec(service_product, f"key-{i}"))
                               for i in range(WRITERS)))
    assert await keys_of(services, caller, service_product) == {f"key-{i}" for i in range(WRITERS)}
    assert len(seen) < WRITERS / 2, f"{len(seen)} commits for {WRITERS} concurrent creates"


async def test_one_failing_writer_leaves_the_others_of_its_commit(services: Services, caller: Caller,
                                                                   service_product: str) -> None:
    await services.devices.create(caller, spec(service_product, "key-taken"))
    keys = [f"key-{i}" for i in range(WRITERS)]
    keys[WRITERS // 2] = "key-taken"  # fails in the middle of a shared transaction

    async def create(key: str) -> object:
        try:
            return await services.devices.create(caller, spec(service_product, key))
        except DeviceKeyExists as exc:
            return exc

    with commits(services) as seen:
        results = await asyncio.gather(*(create(k) for k in keys))
    assert sum(isinstance(r, DeviceKeyExists) for r in results) == 1
    assert len(seen) < WRITERS - 1  # the failure really was inside a shared commit
    assert await keys_of(services, caller, service_product) == set(keys)
    async with services.core.read() as conn:
        assert await services.core.products.count_devices(conn, service_product) == WRITERS


async def test_a_writer_failing_alone_and_one_cancelled_in_the_queue_stall_nobody(services: Services) -> None:
    db = services.core.db

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.write():
            raise Boom
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with db.write():
            entered.set()
            await release.wait()

    async def waiter() -> None:
        async with db.write():
            pass

    first = asyncio.create_task(holder())
    await entered.wait()
    queued = [asyncio.create_task(waiter()) for _ in range(3)]
    await asyncio.sleep(0)
    queued[1].cancel()
    release.set()
    await first
    done = await asyncio.gather(*queued, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert done[0] is None and done[2] is None
    async with db.write():  # the turn came back
        pass


async def test_a_write_nested_in_its_own_task_fails_instead_of_hanging(services: Services) -> None:
    db = services.core.db
    with pytest.raises(RuntimeError, match="nested"):
        async with db.write(), db.write():
            pass
    async with db.write():  # the outer write gave the turn back
        pass


async def test_groups_are_bounded(services: Services, caller: Caller, service_product: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.core.db, "group_max", 4)
    with commits(services) as seen:
        await asyncio.gather(*(services.devices.create(caller, spec(service_product, f"key-{i}"))
                               for i in range(16)))
    assert len(seen) >= 4
    assert len(await keys_of(services, caller, service_product)) == 16


def test_a_postgresql_group_stays_within_a_backends_subtransaction_cache(services: Services) -> None:
    """Each writer after a group's first is a savepoint, so a subtransaction: past 64 of them
    PostgreSQL looks every snapshot up in pg_subtrans."""
    assert services.core.db.group_max == (db_module.GROUP_MAX if services.core.db.is_sqlite else 64)


async def test_the_product_limit_holds_under_concurrent_creates(services: Services, caller: Caller,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.core, "settings", replace(services.core.settings, product_device_limit=5))
    product_key = await make_product(services, caller)

    async def create(i: int) -> object:
        try:
            return await services.devices.create(caller, spec(product_key, f"key-{i}"))
        except LimitExceeded as exc:
            return exc

    results = await asyncio.gather(*(create(i) for i in range(12)))
    assert sum(isinstance(r, LimitExceeded) for r in results) == 7
    assert len(await keys_of(services, caller, product_key)) == 5
    async with services.core.read() as conn:
        assert await services.core.products.count_devices(conn, product_key) == 5
    some = sorted(await keys_of(services, caller, product_key))[0]
    await services.devices.delete(caller, DeviceRef(product_key=product_key, device_key=some))
    async with services.core.read() as conn:
        assert await services.core.products.count_devices(conn, product_key) == 4
    await services.devices.create(caller, spec(product_key, "again"))
    with pytest.raises(LimitExceeded):
        await services.devices.create(caller, spec(product_key, "one-too-many"))


async def test_a_create_failing_alone_leaves_no_count_behind(services: Services, caller: Caller,
                                                            service_product: str) -> None:
    """The driver's statements run inside the transaction: the first writer's failure takes back its
    counter update too (on PostgreSQL they once ran before the adapter's BEGIN, and stayed)."""
    await services.devices.create(caller, spec(service_product, "key-one"))
    with pytest.raises(DeviceKeyExists):
        await services.devices.create(caller, spec(service_product, "key-one"))
    async with services.core.read() as conn:
        assert await services.core.products.count_devices(conn, service_product) == 1


async def test_a_create_is_one_statement_after_its_savepoint_on_postgresql(
        services: Services, caller: Caller, service_product: str, backend: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim, the device, its labels, its event row and its audit record go in one round trip;
    the transaction's BEGIN is sent alone, without the pool's liveness check once its connection
    is kept (issue 12 §1)."""
    if backend != "postgresql":
        pytest.skip("SQLite's statements are calls on the loop thread, not round trips")
    sent: list[str] = []
    for name in ("one", "all", "execute", "insert", "many"):
        method = getattr(Driver, name)

        async def counted(self: Driver, sql: str, *args: Any, _method: Any = method) -> Any:
            sent.append(sql.split()[0])
            return await _method(self, sql, *args)

        monkeypatch.setattr(Driver, name, counted)
    await services.devices.create(caller, spec(service_product, "key-first"))  # the connection is kept now
    sent.clear()
    attempt = Attempt("enos", "r-1", action="devices.create", mutating=True)
    token = ATTEMPT.set(attempt)
    try:
        with statements(services) as through_sqlalchemy:
            await asyncio.gather(*(services.devices.create(caller, spec(service_product, f"key-{i}"))
                                   for i in range(WRITERS)))
    finally:
        ATTEMPT.reset(token)
    assert attempt.record_id  # its record rode along
    assert sent.count("WITH") == WRITERS and len(sent) <= 2 * WRITERS, sent  # the statement, a savepoint
    assert through_sqlalchemy == [], through_sqlalchemy


async def test_a_kept_write_connection_that_was_lost_is_replaced(services: Services, caller: Caller,
                                                                 service_product: str, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite takes a connection for each transaction")
    db = services.core.db
    await services.devices.create(caller, spec(service_product, "key-before"))
    assert db._kept is not None
    pid = (await db._kept.get_raw_connection()).driver_connection.get_server_pid()  # type: ignore[union-attr]
    async with db.driver() as raw:  # the server ends it, as a restart would
        assert await raw.one("SELECT pg_terminate_backend(?)", pid) == (True,)
    await services.devices.create(caller, spec(service_product, "key-after"))
    assert await keys_of(services, caller, service_product) == {"key-before", "key-after"}


async def test_a_savepoint_that_fails_stalls_nobody(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost connection met at a writer's savepoint fails the writers of that transaction, whose
    work went with it, and the writers queued behind go on in a new one (they once waited for ever:
    the turn was never passed on)."""
    db = services.core.db
    entered, release = asyncio.Event(), asyncio.Event()
    real = Driver.execute
    failed: list[str] = []

    async def failing(self: Driver, sql: str) -> None:
        if "SAVEPOINT" in sql and not failed:
            failed.append(sql)
            raise OperationalError(sql, None, ConnectionResetError("lost"))
        await real(self, sql)

    async def holder() -> None:
        async with db.write():
            entered.set()
            await release.wait()

    async def writer() -> None:
        async with db.write():
            pass

    first = asyncio.create_task(holder())
    await entered.wait()
    monkeypatch.setattr(Driver, "execute", failing)
    queued = [asyncio.create_task(writer()) for _ in range(2)]
    await asyncio.sleep(0)
    release.set()
    async with asyncio.timeout(10):
        done = await asyncio.gather(first, *queued, return_exceptions=True)
    assert failed
    assert [type(r).__name__ for r in done] == ["OperationalError", "OperationalError", "NoneType"]
