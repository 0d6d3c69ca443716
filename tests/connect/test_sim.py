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
from thingport.domain.models import Organization
from thingport.services.container import Services
from thingport.services.context import Caller
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
