"""A real Thingport HTTP server for tests that drive synchronous clients (the vendor SDKs).

``create_app(settings)`` runs under uvicorn in a background thread on a free loopback port, with
its own event loop, so a blocking client such as ``requests`` can call it from the test thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from thingport.app import create_app
from thingport.settings import Settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class LiveServer:
    url: str
    operator_token: str

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
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"thingport-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if not thread.is_alive():
                raise RuntimeError("the Thingport test server stopped during start-up")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Thingport test server did not answer /health within {start_timeout_s} s")
            time.sleep(0.05)
        yield LiveServer(url, settings.operator_token)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
