"""Other processes' events on this node's bus: other nodes' and ``thingport`` commands'.

A node publishes its own events on its bus when their transaction commits (``Core.write``); every
other writer's reach it only through the ``events`` table, which this feed reads after the last
row it has seen and publishes (``Event.foreign``) on the same bus, so the subscribers (kicks and
downlinks, caches, pushes) serve every node's events with one code path. Rows this node wrote are
skipped: its bus had them at commit.

When to read: on PostgreSQL every insert into ``events`` sends a notice at commit (a trigger, the
``cluster`` migration) and a dedicated connection LISTENs for it, so a change through node A is
read by node B within milliseconds; the table is also read every ``event_poll_ms`` while that
connection is down (and every :data:`SAFETY_POLL_S` otherwise, should a notice be lost). SQLite
has no notices: the table is read every ``event_poll_ms``.

Nothing is skipped. On PostgreSQL, ids are taken from a sequence when a row is inserted but become
visible when its transaction commits, so a row with a smaller id may appear after a larger one: an
id missing below the newest seen is a *gap*, looked for again at every read until it appears or
:data:`GAP_S` has passed (a rolled-back insert leaves a gap forever). The position (the newest id
seen, less the open gaps) is stored with the node's heartbeat (:mod:`thingport.cluster.nodes`), and
a node that starts again under the same ``node_id`` catches up from there.

While the table cannot be read (the database is out of reach) the node cannot know what other nodes
change: it publishes :class:`~thingport.services.events.FeedLost` once, so what keeps state another
node may change stops trusting it, and :class:`~thingport.services.events.FeedResumed` once it has
caught up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time

from sqlalchemy import make_url

from thingport.services import events
from thingport.services.context import Core
from thingport.store.events import EventRow

log = logging.getLogger(__name__)

#: The notice channel the ``cluster`` migration's trigger sends on.
CHANNEL = "thingport_events"
#: How long an id missing below the newest seen is waited for (a transaction still open), seconds.
GAP_S = 30.0
#: With LISTEN up, how often the table is read anyway, seconds.
SAFETY_POLL_S = 2.0
#: Rows read per query.
PAGE = 500
#: Most ids waited for at once: a jump of the sequence beyond it (``setval``) is not a gap of open
#: transactions, and waiting for every id in it would only cost memory and a long ``IN`` list.
MAX_GAPS = 5000
#: Longest wait before trying a lost database or listening connection again, seconds.
RETRY_MAX_S = 2.0


class EventFeed:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.node_id = core.node_id
        self.poll_s = max(0.01, core.settings.event_poll_ms / 1000)
        #: The newest id seen, and the ids below it not seen yet → when they were first missed.
        self.high = 0
        self.gaps: dict[int, float] = {}
        #: Whether the last read worked (False: FeedLost was published and FeedResumed is owed).
        self.healthy = True
        self._wake = asyncio.Event()
        self._listening = False
        self._tasks: list[asyncio.Task[None]] = []
        #: Rows published, for the tests and the logs.
        self.delivered = 0

    @property
    def cursor(self) -> int:
        """Every id up to this one was seen (or given up on): where a restart resumes."""
        return min(self.gaps) - 1 if self.gaps else self.high

    async def start(self, cursor: int | None = None) -> None:
        """Read from ``cursor`` on (None: from the newest row now, the past being this node's start)."""
        if cursor is None:
            async with self.core.read() as conn:
                cursor = await self.core.events.last_id(conn)
        self.high = cursor
        ctx = contextvars.Context()  # no request's context variables (REQUEST_NONCE) leak into the feed
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="event-feed", context=ctx)]
        if not self.core.db.is_sqlite:
            self._tasks.append(loop.create_task(self._listen(), name="event-feed-listen", context=ctx))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        retry = self.poll_s
        while True:
            wait = (SAFETY_POLL_S if self._listening else self.poll_s) if self.healthy else retry
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that arrives as
            # the event is set, and stop() then waited for ever on a loop that went on
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.read_new()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is out of reach (or busy): say so once, try again
                retry = min(RETRY_MAX_S, retry * 2) if not self.healthy else self.poll_s
                if self.healthy:
                    self.healthy = False
                    log.warning("cannot read the events of other nodes (%s): trying again", brief(exc))
                    await self.core.bus.publish([events.Event(events.FeedLost(), "", None)])
                continue
            if not self.healthy:
                self.healthy = True
                retry = self.poll_s
                log.info("reading the events of other nodes again, from id %d", self.cursor)
                await self.core.bus.publish([events.Event(events.FeedResumed(), "", None)])

    async def read_new(self) -> int:
        """Publish every row not seen yet, except this node's own; returns how many were published."""
        published = 0
        while True:
            async with self.core.read() as conn:
                rows = await self.core.events.since(conn, self.high, PAGE)
                late = await self.core.events.with_ids(conn, sorted(self.gaps)) if self.gaps else []
            now = time.monotonic()
            for row in late:
                self.gaps.pop(row.id, None)
            for row in rows:
                if row.id > self.high + 1 and row.id - self.high - 1 + len(self.gaps) <= MAX_GAPS:
                    self.gaps.update(dict.fromkeys(range(self.high + 1, row.id), now))
                self.high = row.id
            published += await self._publish(sorted([*late, *rows], key=lambda r: r.id))
            if len(rows) < PAGE:
                break
        if self.gaps:
            self.gaps = {i: at for i, at in self.gaps.items() if now - at < GAP_S}
        return published

    async def _publish(self, rows: list[EventRow]) -> int:
        found = []
        for row in rows:
            if row.node_id is not None and row.node_id == self.node_id:
                continue
            ev = events.decode(row)
            if ev is not None:
                found.append(events.Event(ev.payload, ev.org_id, ev.asset_id, ev.id, ev.time, ev.node_id, True))
        if found:
            await self.core.bus.publish(found)
            self.delivered += len(found)
        return len(found)

    async def _listen(self) -> None:
        """Keep a connection LISTENing on :data:`CHANNEL`; every notice wakes the reader. Each new
        connection wakes it too, for what was committed while there was none."""
        url = make_url(self.core.db.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        retry = self.poll_s
        while True:
            try:
                await self._listen_once(dsn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._listening:
                    log.warning("lost the connection listening for other nodes' events (%s): reading every %g s",
                                brief(exc), self.poll_s)
                else:
                    retry = min(RETRY_MAX_S, retry * 2)
            else:
                retry = self.poll_s
            finally:
                self._listening = False
            await asyncio.sleep(retry)

    async def _listen_once(self, dsn: str) -> None:
        """One listening connection, until it is lost (a connection cut without a FIN is found by
        using it, every :data:`SAFETY_POLL_S`)."""
        import asyncpg  # type: ignore[import-untyped]  # PostgreSQL only

        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def terminated(_conn: object) -> None:
            if not lost.done():
                lost.set_result(None)

        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            conn.add_termination_listener(terminated)
            await conn.add_listener(CHANNEL, lambda *_args: self._wake.set())
            self._listening = True
            self._wake.set()
            while not lost.done():
                with contextlib.suppress(TimeoutError):  # (not wait_for: see _run)
                    async with asyncio.timeout(SAFETY_POLL_S):
                        await asyncio.shield(lost)
                if not lost.done():
                    await conn.fetchval("SELECT 1", timeout=SAFETY_POLL_S)
        finally:
            conn.terminate()


def brief(exc: BaseException) -> str:
    """One line naming the failure: a lost database is expected, its traceback is noise."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
