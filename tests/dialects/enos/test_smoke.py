from tests.conftest import data
from tests.support.enos_client import EnosClient


async def test_create_and_get_device(enos: EnosClient, product_key: str) -> None:
    created = await enos.create_device(product_key, "dev-0001")
    params = {"action": "get", "assetId": created["assetId"]}
    got = data(await enos.call("GET", "/connect-service/v2.1/devices", params))
    assert got["deviceKey"] == "dev-0001"
    assert got["status"] == "inactive"
