"""The pytest plugin as users get it: registered by the ``pytest11`` entry point of the installed
package, run in a pytest of its own (not through this suite's conftest), and the examples/ that
docs/testing.md shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parents[2]


def pytest_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THINGPORT_", "PYTEST_"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_users_project_gets_the_fixtures_without_configuration(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture(scope='session')\n"
        "def thingport_settings():\n"
        "    return {'max_page_size': 7}\n")
    (tmp_path / "test_mine.py").write_text(
        "import threading\n\n"
        "def test_one_line(thingport_server, thingport_device):\n"
        "    assert thingport_device.secret and thingport_server.mqtt_port\n"
        "    assert any(t.name.startswith('thingport-') for t in threading.enumerate())  # thread mode\n\n"
        "def test_settings(thingport_server, thingport_app):\n"
        "    r = thingport_server.enos(thingport_app).call('POST', '/connect-service/v2.1/devices',\n"
        "        {'action': 'search'}, {'pagination': {'pageNo': 1, 'pageSize': 8}})\n"
        "    assert r['code'] == 99400 and 'pageSize' in r['msg']\n")
    result = pytest_run("-q", "--thingport-mode=thread", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    listed = pytest_run("--fixtures", cwd=tmp_path)
    assert "thingport_server" in listed.stdout and "thingport_device" in listed.stdout


def test_the_examples_pass() -> None:
    """examples/ drives the vendor SDKs through the plugin, as docs/testing.md tells users to."""
    result = pytest_run(str(ROOT / "examples"), cwd=ROOT)  # -q comes from pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
