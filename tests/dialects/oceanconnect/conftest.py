import httpx
import pytest

from tests.support.oc_client import OcClient
from thingport.domain.models import Application


@pytest.fixture
async def oc(http: httpx.AsyncClient, app: Application) -> OcClient:
    client = OcClient(http, app.app_key, app.secret)
    await client.login()
    return client
