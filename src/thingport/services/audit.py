"""The audit trail: who changed what, from where, and how it ended, kept in the database.

One choke point instead of a line in every route: whoever starts a piece of work on behalf of
someone (the HTTP front of ``app.py`` for every request, the CLI for a command, the MQTT front door
for a device request) opens an :class:`Attempt` in the context (:data:`ATTEMPT`); the
authentication of each dialect names the actor in it (:func:`identify`); and the first write
transaction of the attempt (``Core.write``) appends its record *in that transaction*, with the
target its events name. When the work ends, :meth:`AuditService.finish` settles the outcome: a
failed attempt that wrote nothing is recorded then, in a transaction of its own, and a recorded one
that failed afterwards is marked failed. No secret goes in: actors and targets are identifiers,
the error is a domain error's message (which names fields, never values of secrets).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thingport.domain.models import now_ms
from thingport.store.audit import AuditFilter, AuditRecord

if TYPE_CHECKING:
    from thingport.services.context import Core

from thingport.domain.errors import Unavailable

log = logging.getLogger(__name__)

OK, FAILED = "ok", "failed"
_TEXT = 160  # the width of the identifier columns; longer values are cut (a path parameter may be long)


@dataclass(slots=True)
class Attempt:
    """One request, command or device request being answered, as the audit trail and the access
    log see it."""

    #: Where it came from: a dialect (``enos``, ``oceanconnect``, ``living``, ``admin`` …), ``cli``, ``mqtt``.
    channel: str
    request_id: str
    address: str = ""
    #: What it does: ``POST /admin/v1/orgs``, ``devices.create`` (EnOS), ``thingport device create``.
    action: str = ""
    #: Whether a failure is recorded too (a change was asked for); writes are recorded either way.
    mutating: bool = False
    #: False: nothing of it is recorded (the broker hooks: MQTT logins, counted and logged instead).
    audited: bool = True
    org_id: str = ""
    #: ``app:<appKey>``, ``operator``, ``user:<identityId>``, ``device:<assetId>``; empty: not authenticated.
    actor: str = ""
    #: What it acts on when its events do not say (a path's or query's identifier).
    target: str = ""
    #: The domain error's message when it failed (an HTTP status alone says nothing for EnOS).
    error: str = ""
    status: int = 0
    record_id: int = 0
    closed: bool = False
    #: Fills channel, action and target in once they are known (the HTTP front's, after routing).
    describe: Callable[[], object] | None = None

    def _described(self) -> None:
        if self.describe is not None:
            describe, self.describe = self.describe, None
            describe()

    def record(self, now: int, org_id: str = "", target: str = "", outcome: str = OK) -> AuditRecord:
        self._described()
        return AuditRecord(now, (org_id or self.org_id)[:64], self.channel, self.actor[:_TEXT], self.address[:64],
                           self.request_id[:64], self.action[:_TEXT], (target or self.target)[:_TEXT], outcome,
                           self.status, self.error[:512])

    @property
    def records_now(self) -> bool:
        """Whether a write transaction should append this attempt's record."""
        self._described()
        return self.audited and not self.closed and self.record_id == 0


#: The attempt of the work in progress (a context variable: the request's task and what it awaits
#: share it; a task started in it copies it, and finds it closed once the request ended).
ATTEMPT: ContextVar[Attempt | None] = ContextVar("audit_attempt", default=None)


def identify(actor: str, org_id: str = "") -> None:
    """Name who the current attempt acts for, once its proof was checked."""
    attempt = ATTEMPT.get()
    if attempt is not None:
        attempt.actor = actor
        if org_id:
            attempt.org_id = org_id


def failed(message: str) -> None:
    """The current attempt ends with this domain error (the dialect's answer may still be HTTP 200)."""
    attempt = ATTEMPT.get()
    if attempt is not None:
        attempt.error = message or "failed"


def current_request_id() -> str | None:
    attempt = ATTEMPT.get()
    return attempt.request_id if attempt is not None else None


class AuditService:
    """Reading the trail (admin API, console) and settling attempts; the writes ride on ``Core.write``."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def finish(self, attempt: Attempt, status: int) -> None:
        """Settle ``attempt``'s outcome once its answer is known; never raises (logged instead:
        the caller's answer is already on its way)."""
        attempt.status = status
        attempt.closed = True
        if not attempt.audited:
            return
        outcome = FAILED if status >= 400 or attempt.error else OK
        if outcome == FAILED and not attempt.error:
            attempt.error = f"HTTP {status}" if status >= 400 else "failed"
        try:
            if attempt.record_id:
                if outcome == FAILED:
                    async with self.core.write(audited=False) as tx:
                        await self.core.audit.update_outcome(tx.conn, attempt.record_id, outcome, status,
                                                             attempt.error[:512])
            elif attempt.mutating:
                async with self.core.write(audited=False) as tx:
                    attempt.record_id = await self.core.audit.append(tx.conn, attempt.record(tx.now,
                                                                                             outcome=outcome))
        except Unavailable as exc:  # the database is lost: /ready says so, no traceback to add
            log.warning("could not record the audit trail of request %s: %s", attempt.request_id, exc.message)
        except Exception:  # the trail must not turn an answered request into a crash
            log.exception("could not record the audit trail of request %s", attempt.request_id)

    async def search(self, where: AuditFilter, limit: int) -> list[AuditRecord]:
        """Newest first; page back with ``AuditFilter.before`` = the last id seen."""
        async with self.core.read() as conn:
            found: list[AuditRecord] = await self.core.audit.page(conn, where, limit)
        return found

    async def purge(self, now: int | None = None) -> int:
        """Delete the records older than ``audit_retention_days`` (0 keeps them for ever)."""
        days = self.core.settings.audit_retention_days
        if days <= 0:
            return 0
        cutoff = (now if now is not None else now_ms()) - days * 86_400_000
        async with self.core.write(audited=False) as tx:
            return await self.core.audit.purge(tx.conn, cutoff)
