"""Application secrets: rotation (the console's "rotate secret")."""

import pytest

from thingport.domain.errors import NotFound, Unauthenticated
from thingport.domain.models import Application
from thingport.services.container import Services


async def test_rotating_a_secret_replaces_it_and_revokes_tokens(services: Services, app: Application) -> None:
    accounts = services.accounts
    token, _ = await accounts.issue_token(app)
    assert (await accounts.app_for_token(token))[0].app_key == app.app_key
    rotated = await accounts.rotate_app_secret(app.app_key)
    assert rotated.secret != app.secret and rotated.app_key == app.app_key
    assert (await accounts.get_app(app.app_key)).secret == rotated.secret  # stored (encrypted) and read back
    with pytest.raises(Unauthenticated):
        await accounts.app_for_token(token)
    with pytest.raises(NotFound, match="appKey: application nope does not exist"):
        await accounts.rotate_app_secret("nope")
