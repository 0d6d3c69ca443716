"""Master key rotation online: another node takes the new key without a restart, from the event."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace

import msgspec
from sqlalchemy import select

from thingport.app import ensure_initialised
from thingport.cluster.nodes import Node
from thingport.crypto.keyring import Keyring
from thingport.domain.models import I18nText
from thingport.services import events
from thingport.services.container import Services
from thingport.services.context import Caller, Core
from thingport.services.devices import DeviceRef, DeviceSpec
from thingport.services.keys import rotate_master_key
from thingport.settings import Settings
from thingport.store.db import Database
from thingport.store.schema import events as events_table


async def test_another_node_takes_the_new_key_and_the_stored_event_forgets_it(
        settings: Settings, services: Services, caller: Caller, service_product: str) -> None:
    ensure_initialised(settings)
    other_file = settings.data_dir.parent / "node-b.key"
    shutil.copy(settings.key_file, other_file)  # a copy of the one key, as each machine has
    b_settings = replace(settings, master_key_file=str(other_file), node_heartbeat_s=0.1, event_poll_ms=20)
    b = Services.build(Core(b_settings, Keyring.load(other_file), Database(settings.db_url), node_id="b"))
    node_b = Node(b.core)
    await node_b.start()
    try:
        services.core.node_id = services.core.events.node_id = "a"
        made = await services.devices.create(caller, DeviceSpec(service_product, I18nText("d"), "+08:00"))
        old = services.core.keyring.primary
        kid, count = await rotate_master_key(services.core)
        assert count >= 1 and kid != old
        async with asyncio.timeout(5):
            while b.core.keyring.primary != kid:
                await asyncio.sleep(0.02)
        assert set(b.core.keyring.keys) == {kid} and set(Keyring.load(other_file).keys) == {kid}
        view = await b.devices.get(caller, DeviceRef(asset_id=made.device.asset_id))
        assert view.device.secret == made.device.secret  # read under the new key on node b
        async with services.core.read() as conn:
            stored = (await conn.execute(select(events_table.c.payload).where(
                events_table.c.kind == events.KeyringRotated.KIND))).scalars().all()
        assert [msgspec.json.decode(p) for p in stored] == [{"keyId": kid}]  # b read it, so it was scrubbed
    finally:
        await node_b.stop()
        b.connectivity.credentials.close()
        await b.core.db.close()
