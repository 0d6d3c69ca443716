"""Uniqueness lives in the database, not only in the services' checks."""

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from thingport.domain.models import I18nText
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceSpec
from thingport.store.schema import devices


async def test_device_key_unique_per_product_in_the_schema(services: Services, caller: Caller,
                                                           service_product: str) -> None:
    view = await services.devices.create(caller, DeviceSpec(service_product, I18nText("d"), "+08:00", "dev-1"))
    row = services.core.devices._row(view.device)
    with pytest.raises(IntegrityError):
        async with services.core.db.write() as conn:
            await conn.execute(insert(devices).values({**row, "asset_id": "other01"}))
    with pytest.raises(IntegrityError):
        async with services.core.db.write() as conn:
            await conn.execute(insert(devices).values({**row, "device_key": "dev-2"}))
