"""The files of deploy/ that a user copies are valid as they stand (the RabbitMQ and HAProxy ones also
run in tests/cluster/test_rabbitmq.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import haproxy
from thingport.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_haproxy_config_is_valid() -> None:
    if haproxy.binary() is None:
        pytest.skip("haproxy is not installed (.ci/run installs it: apt-get install haproxy)")
    done = haproxy.check()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Configuration file is valid" in done.stdout + done.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in (DEPLOY / "thingport").glob("*.toml")))
def test_the_node_configs_name_only_real_settings(name: str) -> None:
    settings = Settings.load(DEPLOY / "thingport" / name, env={})
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.nonce_store == "database"


def test_the_systemd_unit_is_valid(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # the unit runs the installed command; here, this checkout's
    exe = Path(sys.executable).with_name("thingport")
    unit = tmp_path / "thingport.service"
    unit.write_text((DEPLOY / "systemd" / "thingport.service").read_text()
                    .replace("/opt/thingport/.venv/bin/thingport", str(exe)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
