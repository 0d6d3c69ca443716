"""The pytest plugin ``pip install thingport`` registers (entry point ``pytest11``): a Thingport
for your tests, like moto is for AWS.

Fixtures:

* ``thingport_server`` (session): one running Thingport (:class:`~thingport.testing.ThingportServer`)
  on free ports, with its embedded MQTT broker and SQLite in a temporary directory;
* ``thingport_app`` (test): a new organization and an application in it
  (:class:`~thingport.testing.App`: ``org_id``, ``app_key``, ``secret``);
* ``thingport_device`` (test): a device of a new product of that application
  (:class:`~thingport.testing.Device`: ``asset_id``, ``product_key``, ``device_key``, ``secret``);
* ``thingport_settings`` (session): settings the server starts with (docs/operations.md);
  override it in a ``conftest.py`` to change them.

``--thingport-mode=thread`` (or the ini option ``thingport_mode``) runs the server in a thread of
the test process instead of a child process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from thingport.testing.server import App, Device, ThingportServer

MODES = ("process", "thread")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("thingport", "Thingport test server")
    group.addoption("--thingport-mode", choices=MODES, default=None,
                    help="run thingport_server as a child process (default) or in a thread of this process")
    parser.addini("thingport_mode", "process (default) or thread: how thingport_server runs", default="process")


@pytest.fixture(scope="session")
def thingport_settings() -> dict[str, Any]:
    """Settings ``thingport_server`` starts with, by name (``{"max_page_size": 50}``); none by default."""
    return {}


@pytest.fixture(scope="session")
def thingport_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                     thingport_settings: dict[str, Any]) -> Iterator[ThingportServer]:
    """One Thingport for the whole session: free HTTP and MQTT ports, SQLite in a temporary directory."""
    from thingport.testing.server import start_server

    mode = request.config.getoption("--thingport-mode") or request.config.getini("thingport_mode")
    if mode not in MODES:
        raise pytest.UsageError(f"thingport_mode must be one of {', '.join(MODES)}, not {mode!r}")
    with start_server(tmp_path_factory.mktemp("thingport"), mode=mode, settings=thingport_settings) as server:
        yield server


@pytest.fixture
def thingport_app(thingport_server: ThingportServer) -> App:
    """An application with every permission, in an organization of its own (nothing else in it)."""
    return thingport_server.create_app()


@pytest.fixture
def thingport_device(thingport_server: ThingportServer, thingport_app: App) -> Device:
    """A device (of a new device product of ``thingport_app``) with its login credentials."""
    return thingport_server.create_device(thingport_server.create_product(thingport_app))
