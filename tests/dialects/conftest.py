"""Fixtures of the dialect tests."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest

from thingport.dialects import common


class Unexpected:
    """Makes a service method fail as nothing expects, then finds the one error it logged."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        self.monkeypatch, self.caplog = monkeypatch, caplog

    def fail(self, target: object, name: str) -> None:
        """``target.name`` (a coroutine function or a plain one) raises from now on."""
        def broken(*_: Any, **__: Any) -> Any:
            raise RuntimeError("the database is gone")

        async def broken_async(*args: Any, **kwargs: Any) -> Any:
            return broken(*args, **kwargs)

        is_async = inspect.iscoroutinefunction(getattr(target, name))
        self.monkeypatch.setattr(target, name, broken_async if is_async else broken)
        self.caplog.set_level(logging.ERROR)

    def logged(self) -> str:
        """The message of the one error record, which carries the traceback."""
        [record] = [r for r in self.caplog.records if r.levelno >= logging.ERROR]
        assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)
        return record.getMessage()


@pytest.fixture(autouse=True)
def fresh_log_limits() -> None:
    """Each test sees the first unexpected error of its kind logged, whatever ran before it."""
    common.UNEXPECTED.reset()


@pytest.fixture
def unexpected(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Unexpected:
    return Unexpected(monkeypatch, caplog)
