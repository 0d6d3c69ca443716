"""The search language against a real database: the same answers on SQLite and PostgreSQL."""

import pytest

from thingport.domain.expression import DEVICE_FIELDS, parse
from thingport.domain.models import I18nText, Page
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceSpec
from thingport.store.devices import search_queries


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


LABELS = "ix_device_labels_field_key_value (field=? AND key=? AND <expr>=?)"
DEVICE_BY_ID = "SEARCH devices USING INDEX sqlite_autoindex_devices_1 (asset_id=?)"


@pytest.mark.parametrize(("expression", "uses"), [
    ("deviceTags.site = 'north'", (LABELS, DEVICE_BY_ID)),
    ("deviceAttributes.floor in ('1', '2') and timezone = '+08:00'", (LABELS, DEVICE_BY_ID)),
    ("deviceName.default = 'Pump'", (LABELS, DEVICE_BY_ID)),
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
