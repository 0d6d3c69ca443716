"""The fuzz tests' world (one per module and backend) and the count of requests they sent.

Their budget is every fuzz test's: ``tests/support/fuzz.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import BACKENDS, PG_URL, open_services
from tests.fuzz.world import HOOK_TOKEN, OPERATOR_TOKEN, World, build
from thingport.app import create_app
from thingport.settings import Settings

#: How many requests the fuzz tests sent, by dialect.
SENT: Counter[str] = Counter()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    backend = str(request.param)
    settings_ = Settings(data_dir=tmp_path_factory.mktemp("fuzz") / "data", mqtt_port=0,
                         database_url=PG_URL if backend == "postgresql" else "", operator_token=OPERATOR_TOKEN,
                         emqx_hook_token=HOOK_TOKEN, rabbitmq_hook_token=HOOK_TOKEN,
                         oceanconnect_throttle_calls=1_000_000_000,
                         # the world's subscription calls back a loopback address nobody serves
                         oceanconnect_push_allowed_networks="127.0.0.0/8")
    services = await open_services(settings_, backend)
    app = create_app(settings_, services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fuzz.test") as http:
        yield await build(services, http)
    await services.accounts.nonces.flush()
    await services.core.db.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SENT:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(SENT.items()))
        terminalreporter.write_line(f"fuzz: {SENT.total()} requests ({counts})")
