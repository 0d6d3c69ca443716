"""The log limiter: one line per kind and interval, the rest counted into the next line."""

from __future__ import annotations

import logging

import pytest

from thingport import logs
from thingport.logs import LogLimiter


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [100.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    return now


def test_the_log_limiter_lets_one_line_a_interval_through(clock: list[float]) -> None:
    limiter = LogLimiter(interval_s=60)
    assert limiter.allow("a") == 0 and limiter.allow("b") == 0
    assert [limiter.allow("a") for _ in range(3)] == [None, None, None]
    clock[0] += 60
    assert limiter.allow("a") == 3 and limiter.allow("a") is None


def test_log_writes_the_held_back_count_into_the_next_line(clock: list[float],
                                                           caplog: pytest.LogCaptureFixture) -> None:
    limiter, log = LogLimiter(interval_s=60), logging.getLogger("limiter-test")
    with caplog.at_level(logging.WARNING, logger="limiter-test"):
        for i in range(5):
            limiter.log(log, logging.WARNING, "bad", "bad request %d", i)
        limiter.log(log, logging.WARNING, "other", "other")
        clock[0] += 61
        limiter.log(log, logging.WARNING, "bad", "bad request %d", 5)
    assert [r.getMessage() for r in caplog.records] == [
        "bad request 0", "other", "bad request 5 (4 more like it since the last report)"]


def test_many_kinds_do_not_grow_the_limiter_forever(clock: list[float]) -> None:
    limiter = LogLimiter(interval_s=1)
    for i in range(5000):
        clock[0] += 0.01
        limiter.allow(f"kind {i}")
    assert len(limiter._next) <= 1001
