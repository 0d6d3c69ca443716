"""The OceanConnect flow control: at most so many API calls per application in a sliding window.

Wire-level (an exceeded window is answered 403 1010009, "app throttle exceed"), so it is the
dialect's, not a service's. One per HTTP application (``create_app`` builds it from the app's
settings, into ``app.state``), consulted by ``auth.authenticate`` once the token is checked.

Two modes, by database:

* SQLite (one node): an exact sliding log in memory.
* PostgreSQL (any number of nodes): the calls are counted in the database, per slot of a tenth of
  the window (``store/counters.py``), so N nodes allow what one node allows, not N times as much.
  A call is admitted when the slot it falls in, plus the window's earlier slots (the oldest one
  whole, so the count never falls short of the calls of the last ``window_s``), hold fewer than
  ``calls``: one statement per admitted call, which counts it only if there is room. What the
  earlier slots hold is read once per slot by each node (nobody counts in them any more), and a
  refusal is kept until the slot ends (the count cannot fall before), so a refused call costs no
  statement. The approximation refuses early, never late: at most one slot's calls more than the
  exact log would refuse; a node whose clock is ahead of the others by more than a slot may admit
  the calls the others count in a slot it has already read.
"""

from __future__ import annotations

import time
from collections import deque

from thingport.domain.models import now_ms
from thingport.services.context import Core
from thingport.settings import Settings

#: The rows of the flow control in ``shared_counters``.
SCOPE = "oc-app"
#: Slots per window (shared mode): the count's granularity.
SLOTS = 10
#: How often a node deletes the rows of slots out of every window.
SWEEP_MS = 60_000


class Throttle:
    """Per-application sliding window: ``calls`` per ``window_s``."""

    def __init__(self, calls: int, window_s: int) -> None:
        self.calls = calls
        self.window = float(window_s)
        self._seen: dict[str, deque[float]] = {}
        self.slot_ms = max(1, int(window_s * 1000) // SLOTS)
        #: Shared mode, per application: (slot, calls counted in the window's earlier slots).
        self._earlier: dict[str, tuple[int, int]] = {}
        #: Shared mode, per application: refused until this time (ms), the end of a full slot.
        self._refused_until: dict[str, int] = {}
        self._next_sweep = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> Throttle:
        return cls(settings.oceanconnect_throttle_calls, settings.oceanconnect_throttle_window_s)

    async def allow(self, app_key: str, now: float | None = None, *, core: Core | None = None) -> bool:
        """Count a call of ``app_key``; False when its window is full. ``core``: the node's, whose
        database (PostgreSQL) the nodes share the counts in; ``now`` in seconds."""
        if core is None or core.db.is_sqlite:
            return self._allow_here(app_key, time.monotonic() if now is None else now)
        return await self._allow_shared(core, app_key, now_ms() if now is None else int(now * 1000))

    def _allow_here(self, app_key: str, now: float) -> bool:
        q = self._seen.setdefault(app_key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.calls:
            return False
        q.append(now)
        return True

    async def _allow_shared(self, core: Core, app_key: str, now: int) -> bool:
        if self._refused_until.get(app_key, 0) > now:
            return False
        slot = now // self.slot_ms
        async with core.write(audited=False) as tx:
            if now >= self._next_sweep:
                self._next_sweep = now + SWEEP_MS
                await core.counters.sweep(tx.conn, SCOPE, (slot - 2 * SLOTS) * self.slot_ms)
            earlier = self._earlier.get(app_key)
            if earlier is None or earlier[0] != slot:
                counted = await core.counters.counted(tx.conn, SCOPE, app_key, slot - SLOTS, slot)
                earlier = self._earlier[app_key] = (slot, counted)
            room = min(self.calls - earlier[1], 2**31 - 1)  # the count is a 32-bit column
            admitted = room > 0 and await core.counters.take(tx.conn, SCOPE, app_key, slot, slot * self.slot_ms, room)
        if not admitted:
            self._refused_until[app_key] = (slot + 1) * self.slot_ms
        return admitted
