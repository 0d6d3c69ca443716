"""The OceanConnect push outbox: events become queued pushes, which the dialect's worker sends.

Fan-out runs in the transaction that advances its cursor over the ``events`` table, so an event
is turned into pushes exactly once and a push is never lost when the process stops; the worker
(``dialects/oceanconnect/pushes.py``) claims due pushes, posts them and reports back here.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.domain.models import now_ms
from thingport.services import events
from thingport.services.context import Core
from thingport.services.events import Event
from thingport.services.oceanconnect.views import OcView, views
from thingport.store.oceanconnect import Push, Subscription

log = logging.getLogger(__name__)

#: A later event id may commit before an earlier one (PostgreSQL); a gap is waited for this long.
EVENT_GAP_GRACE_MS = 10_000

#: A claimed push is leased for the send timeout plus this margin (the write recording the answer);
#: each answer recorded renews the lease of the pushes still waiting behind it in the same batch, so
#: a slow callback never lets the lease of a push not yet sent run out, and a node that dies leaves
#: its claimed pushes to the others within this long.
LEASE_MARGIN_S = 5

#: The dialect's push for an event (notifyType and body), or None when the event is not pushed.
Renderer = Callable[[Event, OcView | None], tuple[str, dict[str, Any]] | None]


@dataclass(frozen=True, slots=True)
class Backlog:
    """Pushes waiting and the age of the oldest; events not yet fanned out and the oldest's age (ms)."""

    queued: int
    oldest_age_ms: int
    outbox_unread: int
    outbox_oldest_age_ms: int


class PushService:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.store = core.oceanconnect
        #: Pushes ``delivered``, ``retried`` (a failed attempt with another to come) and ``dropped``.
        self.counts: Counter[str] = Counter()

    async def fan_out(self, render: Renderer, limit: int = 200) -> int:
        """Turn new events into queued pushes, in the transaction that advances the cursor.

        Events are read in id order; at a gap (a transaction that took a lower id has not
        committed yet) reading stops until the gap fills or is older than the grace period.
        """
        async with self.core.write(audited=False) as tx:
            cursor = await self.store.cursor(tx.conn)
            if not await self.store.any_subscription(tx.conn):
                # nobody listens: start (or stay) at the end of the stream
                await self.store.set_cursor(tx.conn, await self.core.events.last_id(tx.conn), create=cursor is None)
                return 0
            if cursor is None:  # subscriptions filter out what happened before them
                await self.store.set_cursor(tx.conn, 0, create=True)
                cursor = 0
            last, taken = cursor, []
            for r in await self.core.events.since(tx.conn, cursor, limit):
                if r.id != last + 1 and tx.now - r.create_time < EVENT_GAP_GRACE_MS:
                    break
                last = r.id
                ev = events.decode(r)  # None: a kind this node cannot read, passed over
                if ev is not None:
                    taken.append(ev)
            subs: dict[tuple[str, str], list[Subscription]] = {}
            for s in await self.store.org_subscriptions(tx.conn, {ev.org_id for ev in taken}):
                subs.setdefault((s.org_id, s.notify_type), []).append(s)
            listening = {org for org, _ in subs}
            heard = [ev for ev in taken if ev.org_id in listening]
            shown = await views(self.core, tx.conn, list({ev.asset_id for ev in heard if ev.asset_id}))
            pushes: list[dict[str, Any]] = []
            for ev in heard:
                view = shown.get(ev.asset_id) if ev.asset_id else None
                out = render(ev, view if view is not None and view.device.org_id == ev.org_id else None)
                if out is None:
                    continue
                notify_type, body = out
                text = json.dumps(body)
                for s in subs.get((ev.org_id, notify_type), []):
                    if s.create_time <= ev.time:
                        pushes.append({"subscription_id": s.subscription_id, "callback_url": s.callback_url,
                                       "body": text, "attempts": 0, "next_attempt_time": tx.now,
                                       "last_error": None, "create_time": tx.now})
            await self.store.enqueue(tx.conn, pushes)
            await self.store.set_cursor(tx.conn, last, create=False)
        return len(pushes)

    def _lease_until(self, now: int) -> int:
        return now + (self.core.settings.oceanconnect_push_timeout_s + LEASE_MARGIN_S) * 1000

    async def claim(self, limit: int = 20) -> list[Push]:
        """Due pushes, leased for the send timeout (and a margin) so no other worker sends them meanwhile."""
        async with self.core.write(audited=False) as tx:
            return await self.store.claim(tx.conn, tx.now, self._lease_until(tx.now), limit)

    async def delivered(self, push: Push, waiting: Sequence[Push] = ()) -> None:
        """``push`` was answered 2xx; ``waiting``: the pushes of the batch still to send, whose lease
        is renewed."""
        async with self.core.write(audited=False) as tx:
            await self.store.delivered(tx.conn, push.id)
            await self._renew(tx.conn, waiting, tx.now)
        self.counts["delivered"] += 1

    async def _renew(self, conn: AsyncConnection, waiting: Sequence[Push], now: int) -> None:
        if waiting:
            await self.store.renew(conn, [(p.id, p.attempts) for p in waiting], self._lease_until(now))

    async def failed(self, push: Push, error: str, waiting: Sequence[Push] = ()) -> None:
        """Retry with exponential back-off (1 s, 2 s, 4 s … capped); drop after the last attempt."""
        s = self.core.settings
        async with self.core.write(audited=False) as tx:
            await self._renew(tx.conn, waiting, tx.now)
            if push.attempts >= s.oceanconnect_push_max_attempts:
                log.warning("dropping push %s to %s after %d attempts: %s", push.id, push.callback_url,
                            push.attempts, error)
                await self.store.delivered(tx.conn, push.id)
                self.counts["dropped"] += 1
                return
            self.counts["retried"] += 1
            delay = min(2 ** (push.attempts - 1), s.oceanconnect_push_backoff_max_s)
            await self.store.retry_at(tx.conn, push.id, tx.now + delay * 1000, error)

    async def backlog(self) -> Backlog:
        """The push queue and the events not yet fanned out into it, for ``/metrics``."""
        async with self.core.read() as conn:
            queued, oldest = await self.store.queue_stats(conn)
            cursor = await self.store.last_fanned_out(conn)
            unread, unread_oldest = await self.core.events.after(conn, cursor or 0)
        now = now_ms()
        return Backlog(queued, now - oldest if oldest else 0, unread, now - unread_oldest if unread_oldest else 0)

    async def queued(self) -> int:
        """Pushes waiting to be sent (or retried)."""
        async with self.core.read() as conn:
            return await self.store.queued(conn)
