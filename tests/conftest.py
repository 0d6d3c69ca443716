"""Fixtures shared by the whole suite.

Every test that uses ``services`` runs on SQLite, and also on PostgreSQL when
``THINGPORT_TEST_DATABASE_URL`` names a server (``postgresql+asyncpg://user:pw@host/db``); CI sets it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.support.enos_client import EnosClient
from tests.support.oc_client import OcClient
from thingport.app import create_app, ensure_initialised
from thingport.domain.models import Application, I18nText, Organization, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller, Core
from thingport.services.products import ProductSpec
from thingport.settings import Settings
from thingport.store.db import Database

PG_URL = os.environ.get("THINGPORT_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


async def reset_postgres(url: str) -> None:
    db = Database(url)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await db.close()


#: Fixtures that start a broker or a server outside the test's event loop, and the markers a test using
#: one must carry, so that the quick loop (``-m "not slow"``) never starts one (CONTRIBUTING.md, "Tests").
MARKS_OF_FIXTURE = {"broker_port": {"slow", "subprocess"}, "live": {"slow", "sdk"},
                    "thingport_server": {"slow", "subprocess"}}  # the pytest plugin users get (docs/testing.md)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse to run a test whose markers do not say what it starts: ``subprocess`` and ``sdk`` are
    always also ``slow``, ``rabbitmq`` also ``slow`` and ``subprocess``, and a test using a fixture of
    :data:`MARKS_OF_FIXTURE` carries its markers."""
    wrong = []
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        needed = {"slow"} if marks & {"subprocess", "sdk"} else set()
        if "rabbitmq" in marks:
            needed |= {"slow", "subprocess"}
        for fixture, fixture_marks in MARKS_OF_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                needed |= fixture_marks
        if needed - marks:
            wrong.append(f"{item.nodeid}: add {', '.join(sorted(needed - marks))}")
    if wrong:
        raise pytest.UsageError("tests lack the markers of what they start:\n" + "\n".join(wrong))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, backend: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=PG_URL if backend == "postgresql" else "",
                    operator_token="operator-secret-token", mqtt_port=0)


async def open_services(settings: Settings, backend: str) -> Services:
    """Services on a fresh database of ``backend`` (close with ``svc.core.db.close()``)."""
    if backend == "postgresql":
        await reset_postgres(PG_URL)
    keyring, _ = ensure_initialised(settings)
    db = Database(settings.db_url)
    await db.migrate()
    return Services.build(Core(settings, keyring, db))


@pytest.fixture
async def services(settings: Settings, backend: str) -> AsyncIterator[Services]:
    svc = await open_services(settings, backend)
    yield svc
    svc.connectivity.credentials.stop()
    await svc.core.db.close()


@pytest.fixture
async def http(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                   base_url="http://thingport.test") as client:
        yield client


@pytest.fixture
async def org(services: Services) -> Organization:
    org = await services.accounts.create_org("Acme", "o-acme")
    await services.accounts.create_model(org.org_id, "model1")
    return org


@pytest.fixture
async def caller(org: Organization) -> Caller:
    """The operator acting inside the test organization (every permission)."""
    return Caller.operator(org.org_id)


async def make_product(services: Services, caller: Caller, product_type: ProductType = ProductType.DEVICE) -> str:
    spec = ProductSpec(I18nText("Meter"), product_type, "Json", "model1", False)
    return (await services.products.create(caller, spec)).product_key


@pytest.fixture
async def service_product(services: Services, caller: Caller) -> str:
    """A device product created through the service layer (no HTTP)."""
    return await make_product(services, caller)


@pytest.fixture
async def app(services: Services, org: Organization) -> Application:
    return await services.accounts.create_app(org.org_id, "integration")


@pytest.fixture
async def enos(http: httpx.AsyncClient, app: Application) -> EnosClient:
    return EnosClient(http, app.app_key, app.secret, app.org_id)


@pytest.fixture
async def oc(http: httpx.AsyncClient, app: Application) -> OcClient:
    """An OceanConnect northbound client, logged in as ``app``."""
    client = OcClient(http, app.app_key, app.secret)
    await client.login()
    return client


@pytest.fixture
async def product_key(enos: EnosClient) -> str:
    return await enos.create_product()


def data(r: dict[str, Any]) -> Any:
    """The ``data`` of a successful answer; fails with the whole answer otherwise."""
    assert r["code"] == 0, r
    return r["data"]
