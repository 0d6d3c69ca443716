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


async def test_a_grace_period_keeps_the_old_secret_and_caps_its_tokens(services: Services, app: Application) -> None:
    """The old secret signs until the period ends, its tokens work until then at the latest, the master key's
    rotation keeps it readable, and a rotation without grace ends it (and revokes the tokens)."""
    from sqlalchemy import select

    from thingport.services.keys import rotate_master_key
    from thingport.store.schema import access_tokens, applications

    accounts = services.accounts
    token, expire = await accounts.issue_token(app)
    rolled = await accounts.rotate_app_secret(app.app_key, grace_s=60)
    until = rolled.previous_until
    assert until is not None and until < expire
    stored = await accounts.get_app(app.app_key)
    assert stored.secrets_at(until - 1) == (rolled.secret, app.secret) and stored.secrets_at(until) == (rolled.secret,)
    assert (await accounts.app_for_token(token))[1] == until  # capped to the period's end
    async with services.core.read() as conn:
        before = (await conn.execute(select(applications.c.prev_secret_enc))).scalar_one()
        assert (await conn.execute(select(access_tokens.c.expire_time))).scalar_one() == until
    assert app.secret not in before
    await rotate_master_key(services.core)
    assert (await accounts.get_app(app.app_key)).previous_secret == app.secret
    assert app.secret not in repr(rolled)  # the previous secret is kept out of its repr
    again = await accounts.rotate_app_secret(app.app_key)
    assert again.secrets_at(0) == (again.secret,) and (await accounts.get_app(app.app_key)).previous_secret is None
    with pytest.raises(Unauthenticated):
        await accounts.app_for_token(token)
