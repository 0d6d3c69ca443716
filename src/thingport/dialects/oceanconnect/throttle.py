"""The OceanConnect flow control: at most so many API calls per application in a sliding window.

Wire-level (an exceeded window is answered 403 1010009, "app throttle exceed"), so it is the
dialect's, not a service's. One per HTTP application (``create_app`` builds it from the app's
settings, into ``app.state``), consulted by ``auth.authenticate`` once the token is checked.
"""

from __future__ import annotations

import time
from collections import deque

from thingport.settings import Settings


class Throttle:
    """Per-application sliding window: ``calls`` per ``window_s`` (in-process, one node)."""

    def __init__(self, calls: int, window_s: int) -> None:
        self.calls = calls
        self.window = float(window_s)
        self._seen: dict[str, deque[float]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Throttle:
        return cls(settings.oceanconnect_throttle_calls, settings.oceanconnect_throttle_window_s)

    def allow(self, app_key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        q = self._seen.setdefault(app_key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.calls:
            return False
        q.append(now)
        return True
