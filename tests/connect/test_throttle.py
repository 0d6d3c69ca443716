"""The login throttle in memory (one node); shared across nodes: tests/cluster/test_throttles.py."""

from __future__ import annotations

from thingport.connect.throttle import LoginThrottle
from thingport.services.container import Services

KEY = ("10.0.0.9", "dk&pk")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_block_for_the_window_from_the_first_and_a_good_login_clears() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=clock)
    for _ in range(3):
        assert not throttle.blocked(KEY)
        throttle.failed(KEY)
    assert throttle.blocked(KEY) and not throttle.blocked(("10.0.0.8", "dk&pk"))
    clock.now += 61
    assert not throttle.blocked(KEY)
    throttle.failed(KEY)
    throttle.succeeded(KEY)
    throttle.failed(KEY)
    throttle.failed(KEY)
    assert not throttle.blocked(KEY)


def test_keys_are_bounded_in_number() -> None:
    throttle = LoginThrottle(max_failures=1, max_keys=2)
    for address in ("a", "b", "c"):
        throttle.failed((address, "u"))
    assert not throttle.blocked(("a", "u")) and throttle.blocked(("c", "u"))


def test_on_sqlite_the_throttle_stays_in_memory(services: Services) -> None:
    throttle = LoginThrottle.of(services.core)
    assert (throttle.core is None) == services.core.db.is_sqlite
    assert throttle.max_failures == services.core.settings.mqtt_login_failures
    assert throttle.settled(KEY)  # nothing seen: decided without the database, either way
