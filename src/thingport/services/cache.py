"""A small in-process cache with a time to live, for lookups every signed request repeats.

Changes invalidate it (:meth:`TtlCache.clear`) when their events reach the node's bus: its own at
once, another node's or a ``thingport`` command's through the event feed (``thingport.cluster.feed``);
the TTL (``settings.auth_cache_ttl_s``) bounds what a change no event announces. A lookup that
overlapped a clear does not keep its answer (:attr:`TtlCache.generation`), as it may predate the change.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_s
        self.max_entries = max_entries
        self._items: dict[K, tuple[float, V]] = {}
        #: Bumped by every clear: a lookup reads it first and hands it to :meth:`put`.
        self.generation = 0

    def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            del self._items[key]
            return None
        return hit[1]

    def put(self, key: K, value: V, generation: int | None = None) -> None:
        """Keep ``value``, unless the cache was cleared since ``generation`` was read."""
        if self.ttl <= 0 or (generation is not None and generation != self.generation):
            return
        if len(self._items) >= self.max_entries:
            self._items.clear()  # rare; a full sweep is cheaper than tracking recency
        self._items[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._items.clear()
        self.generation += 1
