from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from tests.conftest import make_product
from thingport.domain.models import ProductType
from thingport.services.container import Services
from thingport.services.context import Caller


@pytest.fixture
async def gateway_product(services: Services, caller: Caller) -> str:
    return await make_product(services, caller, ProductType.GATEWAY)


@contextmanager
def statements(services: Services) -> Iterator[list[str]]:
    """The SQL statements the block sends, to show that a read does not grow with its page."""
    seen: list[str] = []
    engine = services.core.db.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
