"""An organization with an app, products (published), devices and signed-in end users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import make_product
from tests.support.living_client import LivingClient
from thingport.domain.models import Application, I18nText, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceSpec
from thingport.services.events import Event, EventPayload
from thingport.services.living_accounts import EndUser, MetaPatch


@dataclass
class World:
    services: Services
    http: httpx.AsyncClient
    app: Application
    caller: Caller
    events: list[Event] = field(default_factory=list)

    async def product(self, gateway: bool = False, status: str = "published", **meta: Any) -> str:
        pk = await make_product(self.services, self.caller, ProductType.GATEWAY if gateway else ProductType.DEVICE)
        await self.services.living.set_product_meta(self.caller.org_id, pk, MetaPatch(status=status, **meta))
        return pk

    async def device(self, product_key: str, name: str, *, online: bool = False) -> str:
        view = await self.services.devices.create(self.caller, DeviceSpec(product_key, I18nText(name), "+08:00", name))
        if online:
            await self.services.devices.mark_connected(view.device.asset_id)
        return view.device.asset_id

    async def user(self, login: str) -> LivingClient:
        """A signed-in app user with one home (``client.home``)."""
        u = await self.services.living.create_user(self.caller.org_id, login)
        code, _ = await self.services.living.mint_auth_code(u.identity_id)
        client = LivingClient(self.http, self.app.app_key, self.app.secret)
        await client.sign_in(code)
        client.identity_id = u.identity_id
        client.home = await client.ok("/living/home/create", {"name": f"{login} home"}, api_ver="1.1.0")
        return client

    def end_user(self, client: LivingClient) -> EndUser:
        return EndUser(client.identity_id, self.caller.org_id, self.app.app_key)

    def kinds(self, kind: type[EventPayload]) -> list[Event]:
        return [e for e in self.events if isinstance(e.payload, kind)]


@pytest.fixture
async def world(services: Services, http: httpx.AsyncClient, app: Application, caller: Caller) -> World:
    w = World(services, http, app, caller)

    async def record(ev: Event) -> None:
        w.events.append(ev)

    services.core.bus.subscribe(record)
    return w
