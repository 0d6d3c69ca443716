"""A real Thingport HTTP server for tests that drive synchronous clients (the vendor SDKs).

``create_app(settings)`` runs under uvicorn, configured as ``thingport serve`` configures it, in a
background thread on a free loopback port, with its own event loop, so a blocking client such as
``requests`` can call it from the test thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from tests.support.processes import free_port, wait_for_health
from thingport.app import create_app
from thingport.server import server_options
from thingport.settings import Settings


@dataclass(frozen=True, slots=True)
class LiveServer:
    url: str
    operator_token: str
    #: The embedded broker's plain port (0: off).
    mqtt_port: int = 0

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call the admin API (``/admin/v1``) as the operator; fails on any non-2xx answer."""
        r = httpx.request(method, f"{self.url}/admin/v1{path}", json=body,
                          headers={"Authorization": f"Bearer {self.operator_token}"})
        assert r.is_success, r.text
        return r.json()


@contextmanager
def live_server(settings: Settings, *, start_timeout_s: float = 20.0) -> Iterator[LiveServer]:
    """Serve ``settings`` on ``127.0.0.1:<free port>`` until the block ends."""
    port = free_port()
    options = {**server_options(settings), "host": "127.0.0.1", "port": port, "log_level": "warning"}
    config = uvicorn.Config(create_app(settings), lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"thingport-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, thread.is_alive, what="the Thingport test server",
                        timeout_s=start_timeout_s)
        yield LiveServer(url, settings.operator_token, settings.mqtt_port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
