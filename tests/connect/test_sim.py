"""The simulator's fleet and storm against the embedded front door, and ``thingport sim`` end to end."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from tests.connect.conftest import Door
from tests.support.live_server import live_server
from tests.support.processes import free_port
from thingport.cli import cli
from thingport.connect import sim
from thingport.domain.models import I18nText, Organization, Page, ProductType
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceSpec
from thingport.services.products import ProductSpec
from thingport.settings import Settings


async def test_fleet_logs_in_with_gateways_and_sub_devices(door: Door, services: Services, org: Organization,
                                                           caller: Caller) -> None:
    fleet = await sim.create_fleet(services, org.org_id, devices=5, gateways=2, subs_per_gateway=3)
    assert len(fleet) == 7 and sum(len(d.subs) for d in fleet) == 6
    result = await sim.storm("127.0.0.1", door.port, fleet, concurrency=4)
    try:
        assert (result.connected, result.refused, result.failed, result.sub_logins) == (7, 0, 0, 6)
        await services.connectivity.presence.flush()  # online state lags the connections by a batch
        stats = await services.devices.stats(caller, None)
        assert stats.online == 13 and stats.inactive == 0
    finally:
        await result.close()
    wrong = [sim.SimDevice(d.product_key, d.device_key, "wrong") for d in fleet[:2]]
    refused = await sim.storm("127.0.0.1", door.port, wrong)
    assert (refused.connected, refused.refused) == (0, 2)


async def test_later_runs_reuse_the_products_and_devices_and_remove_fleet_deletes_them(
        services: Services, org: Organization, caller: Caller) -> None:
    first = await sim.create_fleet(services, org.org_id, devices=3, gateways=1, subs_per_gateway=2)
    again = await sim.create_fleet(services, org.org_id, devices=3, gateways=1, subs_per_gateway=2)
    assert {d.device_key for d in again} == {d.device_key for d in first}
    assert {s.device_key for s in again[-1].subs} == {s.device_key for s in first[-1].subs}
    more = await sim.create_fleet(services, org.org_id, devices=5, gateways=1, subs_per_gateway=3)
    assert len(more) == 6 and len(more[-1].subs) == 3
    assert {d.device_key for d in first[:3]} < {d.device_key for d in more[:5]}
    products, _ = await services.products.search(caller, None, Page(1, 100))
    assert sorted(p.name.default for p in products) == ["sim device", "sim gateway", "sim sub-device"]
    assert (await services.devices.stats(caller, None)).total == 5 + 1 + 3

    mine = await services.products.create(caller, ProductSpec(I18nText("Meter"), ProductType.DEVICE, "Json",
                                                              "model1", False))
    await services.devices.create(caller, DeviceSpec(mine.product_key, I18nText("keep"), "+00:00"))
    assert await sim.remove_fleet(services, org.org_id) == (9, 3)
    products, _ = await services.products.search(caller, None, Page(1, 100))
    assert [p.product_key for p in products] == [mine.product_key]  # only the simulator's are gone
    assert (await services.devices.stats(caller, None)).total == 1
    assert await sim.remove_fleet(services, org.org_id) == (0, 0)


@pytest.mark.slow
def test_sim_command(settings: Settings) -> None:
    settings = replace(settings, mqtt_port=free_port())
    with live_server(settings) as server:
        server.admin("POST", "/orgs", {"name": "Sim", "orgId": "o-sim"})
        server.admin("POST", "/orgs/o-sim/models", {"modelId": "m"})
        env = {"THINGPORT_DATABASE_URL": settings.database_url}
        r = CliRunner().invoke(cli, ["sim", "--org", "o-sim", "--devices", "3", "--gateways", "1",
                                     "--subs-per-gateway", "2", "--duration", "0.2", "--json",
                                     "--mqtt-port", str(settings.mqtt_port), "--data-dir", str(settings.data_dir)],
                               env=env)
        assert r.exit_code == 0, r.output
        summary = json.loads(r.output)
        assert summary["connected"] == 4 and summary["subDeviceLogins"] == 2 and summary["refused"] == 0

        # A table and a summary for people; the same devices again; --cleanup removes them.
        r = CliRunner().invoke(cli, ["sim", "--org", "o-sim", "--devices", "3", "--gateways", "1",
                                     "--subs-per-gateway", "2", "--duration", "0.2", "--cleanup",
                                     "--mqtt-port", str(settings.mqtt_port), "--data-dir", str(settings.data_dir)],
                               env=env, terminal_width=80)
        assert r.exit_code == 0, r.output
        assert "connected" in r.stdout and "logins/s" in r.stdout
        assert "4 of 4 devices logged in" in r.stdout and "0 refused, 0 failed" in r.stdout
        assert "2 sub-devices logged in through their gateways" in r.stdout
        assert "removed 6 devices and 3 products" in r.stdout
        assert all(len(line.rstrip()) <= 80 for line in r.stdout.splitlines()), r.stdout
        assert server.admin("GET", "/orgs/o-sim/models") is not None
