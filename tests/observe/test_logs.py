"""Logs: one format for every logger, access lines, and no secret anywhere (issue 14 §3)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.device_login import enos_connect
from tests.support.enos_client import EnosClient
from tests.support.mqtt_client import Device as MqttDevice
from tests.support.processes import free_port, serve_argv, stop, wait_for_health
from thingport.connect import sim
from thingport.connect.frontdoor import FrontDoor
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.domain.models import Application
from thingport.observe import logs
from thingport.services.container import Services


def test_configure_routes_every_logger_through_one_format() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        logs.configure("info", "json", stream)
        logging.getLogger("uvicorn.error").info("started")
        logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 0001")
        logging.getLogger("thingport.access").info("http", extra={"fields": {"status": 200}})
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["uvicorn.error", "alembic.runtime.migration", "thingport.access"]
    assert lines[2]["status"] == 200 and lines[0]["time"].endswith("Z")


def test_text_lines_quote_what_has_spaces() -> None:
    record = logging.LogRecord("thingport.access", logging.INFO, "", 0, "http %s", ("GET",), None)
    record.fields = {"route": "/a", "caller": "app:x y"}
    assert logs.TextFormatter().format(record).endswith('INFO thingport.access http GET route=/a caller="app:x y"')


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log_format"):
        logs.formatter("xml")


async def test_no_secret_in_any_line_of_a_run_that_used_them(
        enos: EnosClient, http: httpx.AsyncClient, services: Services, app: Application,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pk = await enos.create_product()
    device = await enos.create_device(pk, "meter-1")
    await enos.call("POST", "/connect-service/v2.1/devices", {"action": "create"}, b"{not json")
    enos.scheme = "accessKey"
    await enos.call("GET", "/connect-service/v2.1/devices", {"action": "get", "assetId": device["assetId"]})
    await http.post("/admin/v1/orgs", json={"name": "x"}, headers={"Authorization": "Bearer operator-secret-token"})
    await http.post("/admin/v1/orgs", json={"name": "x"}, headers={"Authorization": "Bearer wrong-operator-token"})
    door = FrontDoor(services)
    good = sim.SimDevice(pk, "meter-1", device["deviceSecret"])
    bad = sim.SimDevice(pk, "meter-1", "f" * 32)
    for dev in (good, bad):
        client_id, user, password = sim.enos_login(dev)
        await door.authenticate(ConnectInfo(client_id, user, password.encode(), True, 60, ("10.0.0.9", 1), False))
    secrets = {app.secret, device["deviceSecret"], "operator-secret-token", "wrong-operator-token",
               await enos.token(), sim.enos_login(good)[2], sim.enos_login(bad)[2]}
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # the test's own client
    text = "\n".join(logs.TextFormatter().format(r) + "\n" + logs.JsonFormatter().format(r) for r in server)
    assert "thingport.access" in text and "mqtt connect" in text and "refused" in text
    for secret in secrets:
        assert secret not in text
    # the signatures too: every 40/64-hex value in the logs is an id we handed out, not a signature
    assert "sign=" not in text and "apim-signature" not in text


@pytest.mark.slow
@pytest.mark.subprocess
async def test_a_served_run_logs_json_only_and_no_secret(tmp_path: Path) -> None:
    """``thingport serve`` with ``log_format = json``: uvicorn's, the migrations' and the access
    lines are all JSON objects, and none carries a secret the run used."""
    port, mqtt_port = free_port(), free_port()
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "THINGPORT_LOG_FORMAT": "json", "THINGPORT_OPERATOR_TOKEN": "op-token-0123456789"}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(serve_argv(tmp_path / "data", port, mqtt_port), stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, lambda: proc.poll() is None, what="thingport serve")
        operator = {"Authorization": "Bearer op-token-0123456789"}
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.post("/admin/v1/orgs", json={"name": "Acme", "orgId": "o-acme"},
                                    headers=operator)).status_code == 201
            assert (await http.post("/admin/v1/orgs/o-acme/models", json={"modelId": "model1"},
                                    headers=operator)).status_code == 201
            app = (await http.post("/admin/v1/orgs/o-acme/apps", json={"name": "a"}, headers=operator)).json()
            enos = EnosClient(http, app["appKey"], app["appSecret"], "o-acme")
            pk = await enos.create_product()
            device = await enos.create_device(pk, "meter-1")
            token = await enos.token()
        cid, user, password = enos_connect(pk, "meter-1", device["deviceSecret"])
        good = MqttDevice(mqtt_port, cid, username=user, password=password)
        bad_fields = enos_connect(pk, "meter-1", "0" * 32)
        assert await good.connect() == 0
        assert await MqttDevice(mqtt_port, bad_fields[0], username=user, password=bad_fields[2]).connect() == 4
        await good.close()
    finally:
        stop(proc)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    loggers = {line["logger"] for line in lines}
    assert {"uvicorn.error", "alembic.runtime.migration", "thingport.access"} <= loggers, loggers
    access = [line for line in lines if line["logger"] == "thingport.access"]
    assert any(line.get("route") == "/connect-service/{version}/devices?action=create" for line in access)
    assert {line["message"] for line in access} >= {"mqtt connect", "mqtt connect refused", "mqtt disconnect"}
    text = log_path.read_text()
    for secret in (app["appSecret"], device["deviceSecret"], "op-token-0123456789", token,
                   password, bad_fields[2]):
        assert secret not in text
