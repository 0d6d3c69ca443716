"""The console in a real browser: Debian's Chromium, headless, driven by Playwright (no browser download).

One walk through what an operator does first: sign in with the operator token, create an organization,
a thing model, a product and a device, watch a simulated device (a real MQTT client logging in to the
server's embedded broker) go online without a reload, replace its key and watch the old session end.
The same walk takes the screenshots of docs/console.md: set ``THINGPORT_SCREENSHOTS`` to a directory
(``docs/images/console`` regenerates the committed ones).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import PG_URL, reset_postgres
from tests.support.live_server import LiveServer, live_server
from tests.support.mqtt_client import WAIT
from tests.support.mqtt_client import Device as MqttDevice
from tests.support.processes import free_port
from thingport.connect.sim import SimDevice, enos_login
from thingport.settings import Settings

CHROMIUM = Path("/usr/lib/chromium/chromium")
#: How long the page may take to show a change it polls for (htmx every 2 s, plus the presence batch).
LIVE_MS = 10_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]


@pytest.fixture
def server(settings: Settings, backend: str) -> Iterator[LiveServer]:
    if backend == "postgresql":
        asyncio.run(reset_postgres(PG_URL))
    with live_server(replace(settings, mqtt_port=free_port())) as live:
        yield live


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        errors: list[str] = []
        # an error page's status (the 401 of a wrong token, a 400) is logged as a failed load: not a fault
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error"
               and not m.text.startswith("Failed to load resource") else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        yield tab
        context.close()
        browser.close()
        assert not errors, f"the browser reported errors: {errors}"  # a CSP refusal, a script error


def shoot(tab: Page, name: str, tmp_path: Path) -> None:
    target = Path(os.environ.get("THINGPORT_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(target / f"{name}.png"), full_page=True)


def connect(port: int, product_key: str, device_key: str, secret: str) -> MqttDevice:
    client_id, username, password = enos_login(SimDevice(product_key, device_key, secret))
    dev = MqttDevice(port, client_id=client_id, username=username, password=password)
    dev.client.connect_async("127.0.0.1", port, 60)
    dev.client.loop_start()
    assert dev.connected.wait(WAIT), "no CONNACK"
    assert dev.connack == 0, f"login refused: CONNACK {dev.connack}"
    return dev


def test_operator_walk(server: LiveServer, page: Page, tmp_path: Path) -> None:
    url = server.url

    # sign-in: every page leads there first; a wrong token is refused with a message
    page.goto(f"{url}/console")
    assert page.url == f"{url}/console/login"
    shoot(page, "login", tmp_path)
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not the operator token")
    page.fill("input[name=token]", server.operator_token)
    page.click("button[type=submit]")
    assert page.url == f"{url}/console/orgs"  # no organization yet

    # an organization with a thing model, and an application whose secret is shown once
    page.fill("input[name=name]", "Acme Energy")
    page.fill("input[name=orgId]", "o-acme")
    page.click("text=Create organization")
    expect(page.locator(".notice")).to_contain_text("Organization Acme Energy (o-acme) created")
    page.fill("#org-o-acme input[name=modelId]", "meter-model")
    page.click("#org-o-acme >> text=Register model")
    page.fill("#org-o-acme form:has(button:text('Create application')) input[name=name]", "billing")
    page.click("#org-o-acme >> text=Create application")
    expect(page.locator(".secret-value")).to_have_count(1)
    shoot(page, "organizations", tmp_path)

    # a product, then a device of it
    page.goto(f"{url}/console/o/o-acme/products")
    page.fill("input[name=name]", "Smart meter")
    page.select_option("select[name=productType]", "Gateway")
    page.click("text=Create product")
    notice = page.locator(".notice").inner_text()
    found = re.search(r"productKey (\S+)\.", notice)
    assert found, notice
    product_key = found.group(1)
    page.goto(f"{url}/console/o/o-acme/devices")
    page.fill("input[name=name]", "Meter 1")
    page.fill("input[name=deviceKey]", "meter-0001")
    page.click("text=Create device")
    secret = page.locator(".secret-value").inner_text().strip()
    assert len(secret) >= 16
    row = page.locator("tr[data-asset]")
    expect(row).to_have_count(1)
    asset_id = row.get_attribute("data-asset")
    expect(row.locator(".status")).to_have_attribute("data-status", "inactive")

    # a simulated device logs in over MQTT: both the list and the device page turn online, unreloaded
    device = connect(server.mqtt_port, product_key, "meter-0001", secret)
    try:
        expect(row.locator(".status")).to_have_attribute("data-status", "online", timeout=LIVE_MS)
        page.fill("input[name=q]", "deviceKey = 'meter-0001' and status = 'online'")
        page.click("button:text('Search')")
        page.wait_for_url(re.compile(r".*/devices\?q=deviceKey.*"))
        expect(page.locator("tr[data-asset]")).to_have_count(1)
        expect(page.locator("tr[data-asset] .status")).to_have_attribute("data-status", "online")
        shoot(page, "devices", tmp_path)
        page.goto(f"{url}/console/o/o-acme")
        expect(page.locator("svg.chart rect.accepted")).not_to_have_count(0)

        page.goto(f"{url}/console/o/o-acme/devices/{asset_id}")
        status = page.locator("#device-status .status")
        expect(status).to_have_attribute("data-status", "online")
        expect(page.locator("#asset-id")).to_have_text(asset_id or "")
        expect(page.locator(".timeline")).to_contain_text("device.connected")
        shoot(page, "device", tmp_path)

        # a second tab watches the list while the first replaces the key: the old session ends
        watcher = page.context.new_page()
        watcher.goto(f"{url}/console/o/o-acme/devices")
        watched = watcher.locator(f"tr[data-asset='{asset_id}'] .status")
        expect(watched).to_have_attribute("data-status", "online")
        page.fill("input[name=newDeviceKey]", "meter-0002")
        page.click("text=Replace key")
        expect(page.locator(".notice")).to_contain_text("now logs in as meter-0002")
        new_secret = page.locator(".secret-value").inner_text().strip()
        assert new_secret and new_secret != secret
        assert device.disconnected.wait(WAIT), "the old session was not closed"
        expect(watched).to_have_attribute("data-status", "inactive", timeout=LIVE_MS)
        watcher.close()
    finally:
        device.client.disconnect()
        device.client.loop_stop()

    # the new credentials work; the old ones are refused (and counted as a refusal on the dashboard)
    again = connect(server.mqtt_port, product_key, "meter-0002", new_secret)
    try:
        expect(page.locator("#device-status .status")).to_have_attribute("data-status", "online", timeout=LIVE_MS)
    finally:
        again.client.disconnect()
        again.client.loop_stop()
    with pytest.raises(AssertionError, match="CONNACK 4"):
        connect(server.mqtt_port, product_key, "meter-0001", secret)
    page.goto(f"{url}/console/o/o-acme")
    expect(page.locator("table:has(th:text('Reason'))")).to_contain_text("credential")
    shoot(page, "dashboard", tmp_path)

    # bad input in a form: a readable message, and the record is untouched
    page.goto(f"{url}/console/o/o-acme/devices/{asset_id}")
    page.fill("input[name=newDeviceKey]", "x")
    page.click("text=Replace key")
    expect(page.locator(".error")).to_contain_text("newDeviceKey: must be 4-64 characters")
    page.click("text=Back")
    expect(page.locator("#device-key")).to_have_text("meter-0002")

    # Living: a product's bind window and permit-join rule; an app user
    page.goto(f"{url}/console/o/o-acme/products/{product_key}")
    page.select_option("select[name=status]", "published")
    page.fill("input[name=bindWindowS]", "120")
    page.check("input[name=requirePermitJoin]")
    page.click("text=Save Living metadata")
    expect(page.locator(".notice")).to_contain_text("Living metadata saved")
    expect(page.locator("input[name=bindWindowS]")).to_have_value("120")
    expect(page.locator("input[name=requirePermitJoin]")).to_be_checked()
    page.goto(f"{url}/console/o/o-acme/living")
    page.fill("input[name=login]", "alice@example.com")
    page.click("text=Create user")
    expect(page.locator("h2")).to_contain_text("alice@example.com")

    # the remaining pages render; delete asks first
    for path, name in [("products", "products"), (f"products/{product_key}", "product"), ("living", "living"),
                       ("oceanconnect", "oceanconnect")]:
        page.goto(f"{url}/console/o/o-acme/{path}")
        expect(page.locator("h1")).to_be_visible()
        shoot(page, name, tmp_path)
    page.goto(f"{url}/console/o/o-acme/devices/{asset_id}")
    page.click("text=Delete…")
    expect(page.locator("h1")).to_contain_text("Delete device Meter 1?")
    page.click("button:text('Delete device')")
    expect(page.locator(".notice")).to_contain_text("deleted")
    expect(page.locator("tr[data-asset]")).to_have_count(0)

    # signing out ends the browser's session
    page.click("text=Sign out")
    assert page.url == f"{url}/console/login"
    page.goto(f"{url}/console/o/o-acme")
    assert page.url == f"{url}/console/login"
