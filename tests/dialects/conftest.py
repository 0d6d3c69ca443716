"""Fixtures of the dialect tests."""

from __future__ import annotations

import logging
from typing import Any

import pytest


class Unexpected:
    """Makes a service method fail as nothing expects, then finds the one error it logged."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
        self.monkeypatch, self.caplog = monkeypatch, caplog

    def fail(self, target: object, method: str) -> None:
        async def broken(*_: Any, **__: Any) -> Any:
            raise RuntimeError("the database is gone")

        self.monkeypatch.setattr(target, method, broken)
        self.caplog.set_level(logging.ERROR)

    def logged(self) -> str:
        """The message of the one error record, which carries the traceback."""
        [record] = [r for r in self.caplog.records if r.levelno >= logging.ERROR]
        assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)
        return record.getMessage()


@pytest.fixture
def unexpected(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Unexpected:
    return Unexpected(monkeypatch, caplog)
