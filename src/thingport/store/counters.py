"""Counters the nodes sharing one database keep together (``shared_counters``): the MQTT
login-failure limit and the OceanConnect flow control, which would allow N times their limit if
each of N nodes counted alone.

Each change is one atomic statement (``INSERT … ON CONFLICT DO UPDATE … RETURNING``), so two nodes
counting the same key at once both see the other's count; the row stays locked until the writer's
transaction commits. A row is ``(scope, key, slot)``: the login limit keeps one row per key (slot 0,
its window starting with the first failure), the flow control one row per slot of its window. Keys
are kept as digests: user names and application keys need not be readable here, and fit the column.
Statements go to the driver (``store/driver.py``): the flow control runs one per API call.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.store.driver import Driver
from thingport.store.hashes import digest

_ADD = (
    "INSERT INTO shared_counters (scope, key, slot, count, start_time) VALUES (?, ?, 0, 1, ?) "
    "ON CONFLICT (scope, key, slot) DO UPDATE SET "
    "count = CASE WHEN shared_counters.start_time <= ? THEN 1 ELSE shared_counters.count + 1 END, "
    "start_time = CASE WHEN shared_counters.start_time <= ? THEN excluded.start_time "
    "ELSE shared_counters.start_time END "
    "RETURNING count, start_time")
_READ = "SELECT count, start_time FROM shared_counters WHERE scope = ? AND key = ? AND slot = 0"
_CLEAR = "DELETE FROM shared_counters WHERE scope = ? AND key = ?"
_TAKE = (
    "INSERT INTO shared_counters (scope, key, slot, count, start_time) VALUES (?, ?, ?, 1, ?) "
    "ON CONFLICT (scope, key, slot) DO UPDATE SET count = shared_counters.count + 1 "
    "WHERE shared_counters.count < ? RETURNING count")
_COUNTED = ("SELECT COALESCE(SUM(count), 0) FROM shared_counters "
            "WHERE scope = ? AND key = ? AND slot >= ? AND slot < ?")
_SWEEP = "DELETE FROM shared_counters WHERE scope = ? AND start_time < ?"


class CounterStore:
    # --- one windowed count per key (the login-failure limit) ------------------------------------
    async def add(self, conn: AsyncConnection, scope: str, key: str, now: int, window_ms: int) -> tuple[int, int]:
        """One more in ``key``'s window, which starts again at ``now`` when it is over:
        (the count, the window's start)."""
        expired = now - window_ms
        row = await (await Driver.of(conn)).one(_ADD, scope, digest(key), now, expired, expired)
        assert row is not None  # an upsert returns its row
        return int(row[0]), int(row[1])

    async def read(self, conn: AsyncConnection, scope: str, key: str) -> tuple[int, int] | None:
        """``key``'s (count, window start), None when nothing was counted (or it was cleared)."""
        row = await (await Driver.of(conn)).one(_READ, scope, digest(key))
        return None if row is None else (int(row[0]), int(row[1]))

    async def clear(self, conn: AsyncConnection, scope: str, key: str) -> None:
        await (await Driver.of(conn)).one(_CLEAR, scope, digest(key))

    # --- a count per slot of a sliding window (the flow control) ---------------------------------
    async def counted(self, conn: AsyncConnection, scope: str, key: str, first_slot: int, slot: int) -> int:
        """What ``key`` counted in the slots from ``first_slot`` up to ``slot`` (not included)."""
        row = await (await Driver.of(conn)).one(_COUNTED, scope, digest(key), first_slot, slot)
        return int(row[0]) if row is not None else 0

    async def take(self, conn: AsyncConnection, scope: str, key: str, slot: int, start: int, room: int) -> bool:
        """Count one more in ``slot`` (which starts at ``start``) if it holds fewer than ``room``;
        False, counting nothing, when it is full. ``room`` must be at least 1."""
        row = await (await Driver.of(conn)).one(_TAKE, scope, digest(key), slot, start, room)
        return row is not None

    async def sweep(self, conn: AsyncConnection, scope: str, before: int) -> None:
        """Forget ``scope``'s rows started before ``before`` (windows over)."""
        await (await Driver.of(conn)).one(_SWEEP, scope, before)
