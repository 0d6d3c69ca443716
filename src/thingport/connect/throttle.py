"""Slow down guessing: a client that keeps failing to log in is refused without a check for a while.

Keyed by peer address and user name, so a device failing from one address does not lock out the
same device elsewhere. In memory: failures are cheap to forget on restart, and bounded in number.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class LoginThrottle:
    def __init__(self, max_failures: int = 5, window_s: float = 60.0, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()

    def blocked(self, key: tuple[str, str]) -> bool:
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

    def failed(self, key: tuple[str, str]) -> None:
        now = self._clock()
        count, first = self._failures.pop(key, (0, now))
        if now - first > self.window_s:
            count, first = 0, now
        self._failures[key] = (count + 1, first)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: tuple[str, str]) -> None:
        self._failures.pop(key, None)
