"""Device logins of the last hour, minute by minute: what the operator's console charts.

Kept in memory, per process: the figures describe this node's front door since it started (an hour
at most), and counting a login must cost nothing on the path that the connect-storm bench measures,
so it is a counter bump, never a write. Prometheus metrics (``/metrics``) are the durable, scraped
view; this is the one a console can draw without a scraper.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

#: How many minutes are kept (the console shows the last hour).
MINUTES = 60
ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class Minute:
    """One minute's logins: ``start`` in epoch milliseconds, accepted, and refused by reason."""

    start: int
    accepted: int
    refused: dict[str, int] = field(default_factory=dict)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


class LoginActivity:
    """Counts of accepted and refused device logins per minute for the last :data:`MINUTES`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        #: minute number (epoch seconds // 60) → outcome → count
        self._minutes: dict[int, Counter[str]] = {}

    def accepted(self) -> None:
        self._count(ACCEPTED)

    def refused(self, reason: str) -> None:
        """A refused login; ``reason`` is one of a few fixed words (the refusal's class), never input."""
        self._count(reason)

    def _count(self, outcome: str) -> None:
        minute = int(self._clock()) // 60
        bucket = self._minutes.get(minute)
        if bucket is None:
            bucket = self._minutes[minute] = Counter()
            for old in [m for m in self._minutes if m <= minute - MINUTES]:
                del self._minutes[old]
        bucket[outcome] += 1

    def last_hour(self) -> list[Minute]:
        """:data:`MINUTES` minutes, oldest first, the current one last (zeros where nothing happened)."""
        now = int(self._clock()) // 60
        out = []
        for minute in range(now - MINUTES + 1, now + 1):
            bucket = self._minutes.get(minute, Counter())
            out.append(Minute(minute * 60_000, bucket[ACCEPTED],
                              {k: v for k, v in sorted(bucket.items()) if k != ACCEPTED}))
        return out
