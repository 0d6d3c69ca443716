"""The OceanConnect dialect's tests push to receivers on loopback, which pushes may reach only when
an operator allows it (docs/security.md, "Outbound pushes"); every other private address stays refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from thingport.settings import Settings

#: What the tests' settings allow pushes to reach besides public addresses.
LOOPBACK = "127.0.0.0/8, ::1"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, oceanconnect_push_allowed_networks=LOOPBACK)
