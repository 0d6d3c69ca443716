"""The search language against a real database: the same answers on SQLite and PostgreSQL."""

from collections.abc import Callable

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

from tests.conftest import make_product
from thingport.domain.expression import DEVICE_FIELDS, parse
from thingport.domain.models import I18nText, Page, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceSpec
from thingport.services.products import ProductSpec
from thingport.store.db import alembic_config
from thingport.store.devices import DEVICE_SEARCH, search_queries
from thingport.store.search import resolve


async def names(services: Services, caller: Caller, expression: str) -> list[str]:
    found, _ = await services.devices.search(caller, parse(expression, DEVICE_FIELDS), Page(1, 50))
    return sorted(v.device.name.default for v in found)


async def test_like_is_a_case_insensitive_literal_substring_without_percent(
        services: Services, caller: Caller, service_product: str) -> None:
    for name in ("Smart Meter", "meter_1", "meterX1", "Pump"):
        await services.devices.create(caller, DeviceSpec(service_product, I18nText(name), "+08:00"))
    assert await names(services, caller, "deviceName like 'METER'") == ["Smart Meter", "meterX1", "meter_1"]
    assert await names(services, caller, "deviceName like 'meter_1'") == ["meter_1"]  # '_' is literal here
    assert await names(services, caller, "deviceName like 'meter_1%'") == ["meterX1", "meter_1"]  # a pattern
    assert await names(services, caller, "deviceName like 'smart%'") == ["Smart Meter"]


async def test_localized_names(services: Services, caller: Caller, service_product: str) -> None:
    await services.devices.create(caller, DeviceSpec(service_product, I18nText("Pump", {"zh_CN": "泵"}), "+08:00"))
    await services.devices.create(caller, DeviceSpec(service_product, I18nText("Valve"), "+08:00"))
    assert await names(services, caller, "deviceName like '泵'") == ["Pump"]
    assert await names(services, caller, "deviceName.zh_CN like '泵'") == ["Pump"]
    assert await names(services, caller, "deviceName.default like '泵'") == []


async def test_equal_and_in_on_labels_match_the_whole_value_past_the_indexed_prefix(
        services: Services, caller: Caller, service_product: str) -> None:
    long_a, long_b = "x" * 150 + "a", "x" * 150 + "b"
    for name, site in (("A", long_a), ("B", long_b), ("C", "north")):
        await services.devices.create(caller, DeviceSpec(service_product, I18nText(name), "+08:00",
                                                         tags={"site": site}))
    assert await names(services, caller, f"deviceTags.site = '{long_a}'") == ["A"]
    assert await names(services, caller, f"deviceTags.site in ('{long_b}', 'north')") == ["B", "C"]
    assert await names(services, caller, f"deviceTags.site != '{long_a}'") == ["B", "C"]
    assert await names(services, caller, "deviceTags.site = 'x'") == []


LABELS = "ix_device_labels_field_value_key (field=? AND <expr>=? AND key=?)"
#: A name in any locale names no key: the value, second in the index (migration search_0410), still drives.
ANY_LOCALE = "ix_device_labels_field_value_key (field=? AND <expr>=?)"
DEVICE_BY_ID = "SEARCH devices USING INDEX sqlite_autoindex_devices_1 (asset_id=?)"


@pytest.mark.parametrize(("expression", "uses"), [
    ("deviceTags.site = 'north'", (LABELS, DEVICE_BY_ID)),
    ("deviceAttributes.floor in ('1', '2') and timezone = '+08:00'", (LABELS, DEVICE_BY_ID)),
    ("deviceName.default = 'Pump'", (LABELS, DEVICE_BY_ID)),
    ("deviceName = 'Pump'", (ANY_LOCALE, DEVICE_BY_ID)),
    ("deviceKey = 'k1'", ("ix_devices_org_device_key (org_id=? AND device_key=?)",)),
    ("timezone = '+08:00'", ("ix_devices_org_timezone (org_id=? AND timezone=?)",)),
])
async def test_a_selective_search_is_driven_by_an_index_not_a_scan_of_the_organization(
        services: Services, backend: str, expression: str, uses: tuple[str, ...]) -> None:
    if backend != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans by table statistics")
    for query in search_queries("org1", parse(expression, DEVICE_FIELDS), Page(1, 10)):
        async with services.core.db.read() as conn:
            sql = query.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[-1] for r in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        for part in uses:
            assert part in plan, plan
        assert "SCAN devices" not in plan and "ix_devices_org_create" not in plan, plan


def _label_indexes(conn: Connection) -> set[str]:
    """By the catalogue: SQLAlchemy's reflection skips SQLite's expression indexes."""
    sql = ("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE '%_labels'"
           if conn.dialect.name == "sqlite" else "SELECT indexname FROM pg_indexes WHERE tablename LIKE '%_labels'")
    return {str(name) for name, in conn.exec_driver_sql(sql)}


async def test_the_value_first_label_index_migrates_down_and_up_on_a_registry_that_has_labels(
        services: Services, caller: Caller, service_product: str) -> None:
    """search_0410 replaces search_0400's label index in place; a search answers the same after each step."""
    await services.devices.create(caller, DeviceSpec(service_product, I18nText("Pump", {"fr_FR": "Pompe"}), "+08:00",
                                                     tags={"site": "north"}))
    new = {"ix_device_labels_field_value_key", "ix_product_labels_field_value_key"}
    old = {"ix_device_labels_field_key_value", "ix_product_labels_field_key_value"}
    steps: list[tuple[Callable[[Config], None], set[str], set[str]]] = [
        (lambda cfg: command.downgrade(cfg, "search_0400"), old, new),
        (lambda cfg: command.upgrade(cfg, "heads"), new, old),
    ]
    for step, present, gone in steps:
        async with services.core.db.engine.connect() as conn:
            await conn.run_sync(lambda sync: step(alembic_config(sync)))  # noqa: B023 (run at once)
            await conn.commit()
            indexes = await conn.run_sync(_label_indexes)
        assert present <= indexes and not gone & indexes, indexes
        assert await names(services, caller, "deviceName = 'Pompe'") == ["Pump"]
        assert await names(services, caller, "deviceTags.site = 'north'") == ["Pump"]


async def test_model_and_product_type_searches_answer_through_the_product_keys(
        services: Services, caller: Caller) -> None:
    """modelId and productType are resolved to the organization's product keys before the search
    (store/search.py, ``Lookup``): the answers stay those of the join they replace."""
    await services.accounts.create_model(caller.org_id, "model2")
    other = await services.accounts.create_org("Other", "o-other")
    await services.accounts.create_model(other.org_id, "model1")
    meters = await make_product(services, caller)  # model1, Device
    gateways = await make_product(services, caller, ProductType.GATEWAY)  # model1, Gateway
    pumps = (await services.products.create(caller, ProductSpec(I18nText("Pump"), ProductType.DEVICE, "Json",
                                                                "model2", False))).product_key
    theirs = await make_product(services, Caller.operator(other.org_id))  # model1 in another organization
    for pk, name in ((meters, "M"), (gateways, "G"), (pumps, "P")):
        await services.devices.create(caller, DeviceSpec(pk, I18nText(name), "+08:00"))
    await services.devices.create(Caller.operator(other.org_id), DeviceSpec(theirs, I18nText("X"), "+08:00"))
    assert await names(services, caller, "modelId = 'model1'") == ["G", "M"]
    assert await names(services, caller, "modelId != 'model1'") == ["P"]
    assert await names(services, caller, "modelId in ('model2', 'nosuch')") == ["P"]
    assert await names(services, caller, "modelId = 'nosuch'") == []
    assert await names(services, caller, "modelId != 'nosuch'") == ["G", "M", "P"]
    assert await names(services, caller, "productType = 'Gateway'") == ["G"]
    assert await names(services, caller, "productType != 'Gateway' and modelId = 'model1'") == ["M"]
    assert await names(services, caller, "productType = 'Gateway' or deviceName = 'P'") == ["G", "P"]


async def test_a_model_search_is_driven_by_the_product_index(services: Services, caller: Caller,
                                                             service_product: str, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans by table statistics")
    expr = parse("modelId = 'model1'", DEVICE_FIELDS)
    async with services.core.db.read() as conn:
        resolved = await resolve(conn, expr, DEVICE_SEARCH, caller.org_id)
        assert list(resolved.values()) == [[service_product]]
        for query in search_queries(caller.org_id, expr, Page(1, 10), resolved=resolved):
            sql = query.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[-1] for r in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert "ix_devices_product_create (product_key=?)" in plan, plan
            assert "SCAN devices" not in plan and "ix_devices_org_create" not in plan, plan
