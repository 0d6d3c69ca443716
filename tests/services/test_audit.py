"""The audit trail's rules, below HTTP: one record per attempt, in the change's own transaction,
failures settled at the end, retention (issue 14 §4)."""

from __future__ import annotations

import pytest

from thingport.domain.errors import Conflict
from thingport.services import audit
from thingport.services.audit import ATTEMPT, Attempt
from thingport.services.container import Services
from thingport.store.audit import AuditFilter


async def test_an_attempt_is_recorded_once_with_its_first_write(services: Services) -> None:
    attempt = Attempt("admin", "r-1", "10.0.0.1", "POST /admin/v1/orgs", mutating=True)
    token = ATTEMPT.set(attempt)
    try:
        audit.identify("operator")
        await services.accounts.create_org("A", "o-a")
        await services.accounts.create_org("B", "o-b")
    finally:
        ATTEMPT.reset(token)
    await services.audit.finish(attempt, 201)
    [record] = await services.audit.search(AuditFilter(), 10)
    assert (record.request_id, record.actor, record.target, record.org_id, record.outcome, record.status) == (
        "r-1", "operator", "o-a", "o-a", "ok", 0)


async def test_a_rolled_back_change_leaves_only_a_failed_attempt(services: Services) -> None:
    await services.accounts.create_org("A", "o-a")
    attempt = Attempt("admin", "r-2", action="POST /admin/v1/orgs", mutating=True)
    token = ATTEMPT.set(attempt)
    try:
        with pytest.raises(Conflict):
            await services.accounts.create_org("A again", "o-a")
    finally:
        ATTEMPT.reset(token)
    assert attempt.record_id == 0  # the transaction's record went with it
    audit_failed = "orgId: organization o-a exists"
    attempt.error = audit_failed
    await services.audit.finish(attempt, 409)
    [record] = await services.audit.search(AuditFilter(outcome="failed"), 10)
    assert (record.request_id, record.status, record.error) == ("r-2", 409, audit_failed)


async def test_a_recorded_change_that_fails_afterwards_is_marked_failed(services: Services) -> None:
    attempt = Attempt("enos", "r-3", action="devices.batchCreate", mutating=True)
    token = ATTEMPT.set(attempt)
    try:
        await services.accounts.create_org("A", "o-a")
    finally:
        ATTEMPT.reset(token)
    attempt.error = "deviceList[1].productKey: does not exist"
    await services.audit.finish(attempt, 200)
    [record] = await services.audit.search(AuditFilter(), 10)
    assert (record.outcome, record.error) == ("failed", "deviceList[1].productKey: does not exist")


async def test_work_outside_an_attempt_or_after_it_is_not_recorded(services: Services) -> None:
    await services.accounts.create_org("A", "o-a")
    attempt = Attempt("admin", "r-4", mutating=True)
    token = ATTEMPT.set(attempt)
    await services.audit.finish(attempt, 200)  # a reply went out; a task it started writes later
    await services.accounts.create_org("B", "o-b")
    ATTEMPT.reset(token)
    records = await services.audit.search(AuditFilter(), 10)
    assert [(r.request_id, r.target) for r in records] == [("r-4", "")]


async def test_filters_and_retention(services: Services) -> None:
    day = 86_400_000
    for i, (org, actor) in enumerate([("o-1", "app:a"), ("o-2", "app:b"), ("o-1", "app:b")]):
        async with services.core.write(audited=False) as tx:
            await services.core.audit.append(tx.conn, Attempt("enos", f"r{i}", actor=actor, org_id=org,
                                                              action="devices.create").record(i * day))
    assert [r.request_id for r in await services.audit.search(AuditFilter(org_id="o-1"), 10)] == ["r2", "r0"]
    assert [r.request_id for r in await services.audit.search(AuditFilter(actor="app:b", since=2 * day), 10)] \
        == ["r2"]
    assert [r.request_id for r in await services.audit.search(AuditFilter(until=day), 10)] == ["r0"]
    [newest] = await services.audit.search(AuditFilter(), 1)
    assert [r.request_id for r in await services.audit.search(AuditFilter(before=newest.id), 10)] == ["r1", "r0"]
    retention = services.core.settings.audit_retention_days * day
    assert await services.audit.purge(now=retention + day + 1) == 2
    assert [r.request_id for r in await services.audit.search(AuditFilter(), 10)] == ["r2"]
