"""Slow down guessing: a client that keeps failing to log in is refused without a check for a while.

Keyed by peer address and user name, so a device failing from one address does not lock out the
same device elsewhere. The window starts with the first failure; a good login clears the count.

Two modes:

* in memory (SQLite: one node): failures are cheap to forget on restart, and bounded in number;
* shared (PostgreSQL: any number of nodes): every failure is also counted in the database
  (``store/counters.py``), so failures spread over N nodes reach the limit at the total one node
  allows. A successful login pays no database round trip: a node asks the database only about a
  key it has seen fail itself (its count may have grown through other nodes), and counts failures
  in the background, in order. A node that has never seen a key fail checks one attempt before it
  learns the count, so a guesser gets at most ``max_failures + N - 1`` checked attempts per window
  across N nodes (docs/operations.md, "Several nodes").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import suppress

from thingport.domain.errors import Unavailable
from thingport.services.context import Core

log = logging.getLogger(__name__)

#: The rows of this limit in ``shared_counters``.
SCOPE = "mqtt-login"
#: How often a node deletes the rows of windows that are over (with a failure it counts).
SWEEP_S = 60.0

Key = tuple[str, str]


class LoginThrottle:
    def __init__(self, max_failures: int = 5, window_s: float = 60.0, *, max_keys: int = 100_000,
                 clock: Callable[[], float] | None = None, core: Core | None = None) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        #: Shared mode: the counts live in this core's database; times are wall-clock (nodes agree).
        self.core = core
        self._clock = clock or (time.time if core is not None else time.monotonic)
        self._failures: OrderedDict[Key, tuple[int, float]] = OrderedDict()
        #: Shared mode: per key, this node's failures the database has not answered yet, and the
        #: last of the writes that count them (each waits for the one before).
        self._pending: dict[Key, int] = {}
        self._writes: dict[Key, asyncio.Task[None]] = {}
        self._next_sweep = 0.0

    @classmethod
    def of(cls, core: Core) -> LoginThrottle:
        """The throttle a node runs: shared with the other nodes on PostgreSQL, in memory on SQLite."""
        s = core.settings
        return cls(s.mqtt_login_failures, s.mqtt_login_failure_window_s,
                   core=None if core.db.is_sqlite else core)

    def blocked(self, key: Key) -> bool:
        if self.max_failures <= 0:
            return False
        entry = self._failures.get(key)
        if entry is None:
            return False
        count, first = entry
        if self._clock() - first > self.window_s:
            del self._failures[key]
            return False
        return count >= self.max_failures

    def settled(self, key: Key) -> bool:
        """Whether this node can decide about ``key`` without the database: in memory always; shared,
        when it has seen no failure of the key (the common, good login) or knows it is blocked."""
        return self.core is None or self.max_failures <= 0 or key not in self._failures or self.blocked(key)

    async def refresh(self, key: Key) -> None:
        """Shared mode: learn ``key``'s count from the database (after this node's own failures are
        counted there), for a key this node has seen fail. The database out of reach: what this
        node knows stands."""
        if self.core is None:
            return
        await self.counted(key)
        core = self.core
        try:
            async with core.read() as conn:
                row = await core.counters.read(conn, SCOPE, _text(key))
        except Unavailable:
            return
        self._learned(key, row)

    async def counted(self, key: Key) -> None:
        """Shared mode: once this node's failures of ``key`` are counted in the database (or could
        not be); at once when none is on its way."""
        last = self._writes.get(key)
        if last is not None:
            await asyncio.shield(last)

    def failed(self, key: Key) -> None:
        now = self._clock()
        count, first = self._failures.pop(key, (0, now))
        if now - first > self.window_s:
            count, first = 0, now
        self._failures[key] = (count + 1, first)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)
        if self.core is not None and self.max_failures > 0:  # 0: no limit, nothing to share
            self._pending[key] = self._pending.get(key, 0) + 1
            self._write(key, self._count)

    def succeeded(self, key: Key) -> None:
        if self._failures.pop(key, None) is not None and self.core is not None:
            self._write(key, self._clear)

    # --- shared mode -----------------------------------------------------------------------------
    def _write(self, key: Key, step: Callable[[Key], Awaitable[None]]) -> None:
        """Run ``step`` for ``key`` once the key's earlier writes are done (in the background: the
        refusal or the CONNACK does not wait for it)."""
        before = self._writes.get(key)

        async def run() -> None:
            if before is not None:
                with suppress(BaseException):
                    await before
            try:
                await step(key)
            except Exception as err:  # the database out of reach: this node's count still holds here
                why = err.message if isinstance(err, Unavailable) else type(err).__name__
                log.warning("login failures of %s not shared with the other nodes: %s", key[1] or key[0], why)
            finally:
                if self._writes.get(key) is task:
                    del self._writes[key]

        task = asyncio.get_running_loop().create_task(run())
        self._writes[key] = task

    async def _count(self, key: Key) -> None:
        assert self.core is not None
        core, now = self.core, self._clock()
        try:
            async with core.write(audited=False) as tx:
                if now >= self._next_sweep:
                    self._next_sweep = now + SWEEP_S
                    await core.counters.sweep(tx.conn, SCOPE, int((now - self.window_s) * 1000))
                row = await core.counters.add(tx.conn, SCOPE, _text(key), int(now * 1000), int(self.window_s * 1000))
        finally:
            self._pending[key] -= 1
            if not self._pending[key]:
                del self._pending[key]
        self._learned(key, row)

    async def _clear(self, key: Key) -> None:
        assert self.core is not None
        async with self.core.write(audited=False) as tx:
            await self.core.counters.clear(tx.conn, SCOPE, _text(key))

    def _learned(self, key: Key, row: tuple[int, int] | None) -> None:
        """What the database counts for ``key``, plus this node's failures still on their way there."""
        pending = self._pending.get(key, 0)
        if row is None or self._clock() - row[1] / 1000 > self.window_s:
            if pending:
                self._failures[key] = (pending, self._failures.get(key, (0, self._clock()))[1])
            else:
                self._failures.pop(key, None)
            return
        self._failures[key] = (row[0] + pending, row[1] / 1000)


def _text(key: Key) -> str:
    return f"{key[0]}\n{key[1]}"
