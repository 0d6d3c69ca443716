"""The search language against a real database: the same answers on SQLite and PostgreSQL."""

from thingport.domain.expression import DEVICE_FIELDS, parse
from thingport.domain.models import I18nText, Page
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceSpec


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
