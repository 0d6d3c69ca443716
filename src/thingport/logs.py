"""Logging that a flood cannot fill: at most one line per interval for each kind of event.

Whatever a client can cause many times (a malformed request, a refused hook call, a connection cut
off, a fault of ours that every retry hits) is logged through a :class:`LogLimiter`, so an attacker
or a broken device fleet costs one line a minute per kind, with the count of the others.
"""

from __future__ import annotations

import logging
import time
from typing import Any


class LogLimiter:
    """At most one log line per ``interval_s`` for each kind of event; the lines held back are
    counted and the count rides on the next line let through."""

    def __init__(self, interval_s: float = 60.0) -> None:
        self.interval_s = interval_s
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """The number of lines held back since the last one, when a line for ``key`` may go out now;
        None when it is to be held back."""
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if len(self._next) > 1000:  # many kinds: forget the old ones rather than grow
            self._next = {k: t for k, t in self._next.items() if t > now}
            self._held = {k: n for k, n in self._held.items() if k in self._next}
        self._next[key] = now + self.interval_s
        return self._held.pop(key, 0)

    def log(self, logger: logging.Logger, level: int, key: str, msg: str, *args: Any,
            exc_info: BaseException | bool | None = None) -> None:
        """``logger.log(level, msg, *args)`` unless a line for ``key`` went out within the interval;
        the line says how many were held back since the last one."""
        held = self.allow(key)
        if held is None:
            return
        if held:
            msg += f" ({held} more like it since the last report)"
        logger.log(level, msg, *args, exc_info=exc_info)

    def reset(self) -> None:
        self._next.clear()
        self._held.clear()
