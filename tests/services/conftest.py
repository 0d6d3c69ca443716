import pytest

from tests.conftest import make_product
from thingport.domain.models import ProductType
from thingport.services.container import Services
from thingport.services.context import Caller


@pytest.fixture
async def gateway_product(services: Services, caller: Caller) -> str:
    return await make_product(services, caller, ProductType.GATEWAY)
