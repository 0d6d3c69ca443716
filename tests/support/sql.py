"""What a block of test code sends to the database through SQLAlchemy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from thingport.services.container import Services


@contextmanager
def statements(services: Services) -> Iterator[list[str]]:
    """The SQL statements the block sends through SQLAlchemy (not the driver's), COMMIT aside:
    to show that a read does not grow with its page, or that a hot path stays on the driver."""
    seen: list[str] = []
    engine = services.core.db.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
