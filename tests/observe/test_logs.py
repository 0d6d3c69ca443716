"""Logs: one format for every logger, access lines, and no secret anywhere (issue 14 §3)."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest

from tests.support.enos_client import EnosClient
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
