"""Organizations, applications (service accounts), thing models, access tokens and nonces."""

from __future__ import annotations

from dataclasses import replace

from thingport.crypto import ids
from thingport.crypto.caller_secret import CallerKeyError, load_public_key
from thingport.domain import validate
from thingport.domain.errors import Conflict, InvalidArgument, NotFound, Unauthenticated
from thingport.domain.models import Application, Organization, Permission, ThingModel
from thingport.services import audit, events
from thingport.services.cache import TtlCache
from thingport.services.context import Caller, Core
from thingport.services.nonces import NonceGuard


class AccountService:
    def __init__(self, core: Core) -> None:
        self.core = core
        ttl = core.settings.auth_cache_ttl_s
        self._apps: TtlCache[str, Application] = TtlCache(ttl)
        self._tokens: TtlCache[str, tuple[str, int]] = TtlCache(ttl)
        self.nonces = NonceGuard(core)
        core.bus.subscribe(self._on_event)

    def _forget(self) -> None:
        """After a change to an application or its tokens, look them up afresh."""
        self._apps.clear()
        self._tokens.clear()

    async def _on_event(self, ev: events.Event) -> None:
        """Any node's change to an application (its own too, at commit) drops the cached lookups;
        so does losing sight of other nodes' changes (the feed lost)."""
        if isinstance(ev.payload, events.ApplicationChanged | events.FeedLost):
            self._forget()

    # organizations -------------------------------------------------------------------------
    async def create_org(self, name: str, org_id: str | None = None) -> Organization:
        validate.text(name, field="name", max_len=128, required=True)
        org_id = None if org_id is None else validate.org_id(org_id)
        async with self.core.write() as tx:
            org = Organization(org_id or ids.org_id(), name, tx.now)
            if await self.core.accounts.get_org(tx.conn, org.org_id):
                raise Conflict(f"orgId: organization {org.org_id} exists", field="orgId")
            await self.core.accounts.insert_org(tx.conn, org)
            tx.about(org.org_id, org_id=org.org_id)
        return org

    async def list_orgs(self) -> list[Organization]:
        async with self.core.read() as conn:
            return await self.core.accounts.list_orgs(conn)

    async def get_org(self, org_id: str) -> Organization:
        async with self.core.read() as conn:
            org = await self.core.accounts.get_org(conn, org_id)
        if org is None:
            raise NotFound(f"orgId: organization {org_id} does not exist", field="orgId")
        return org

    # applications --------------------------------------------------------------------------
    async def create_app(self, org_id: str, name: str, permissions: frozenset[Permission] | None = None,
                         rsa_public_key: str | None = None) -> Application:
        """Create a service account; the returned object is the only time its secret is shown."""
        validate.text(name, field="name", max_len=128, required=True)
        if rsa_public_key is not None:
            self._check_public_key(rsa_public_key)
        await self.get_org(org_id)
        async with self.core.write(org_id) as tx:
            app = Application(ids.app_key(), org_id, name, ids.app_secret(),
                              Permission.all() if permissions is None else permissions,
                              rsa_public_key, False, tx.now)
            await self.core.accounts.insert_app(tx.conn, app)
            tx.about(app.app_key)
        return app

    @staticmethod
    def _check_public_key(pem: str) -> None:
        try:
            load_public_key(pem)
        except CallerKeyError as exc:
            raise InvalidArgument(f"publicKey: {exc}", field="publicKey") from exc

    async def list_apps(self, org_id: str | None = None) -> list[Application]:
        async with self.core.read() as conn:
            return await self.core.accounts.list_apps(conn, org_id)

    async def get_app(self, app_key: str) -> Application:
        async with self.core.read() as conn:
            app = await self.core.accounts.get_app(conn, app_key)
        if app is None:
            raise NotFound(f"appKey: application {app_key} does not exist", field="appKey")
        return app

    async def set_app_disabled(self, app_key: str, disabled: bool) -> Application:
        async with self.core.write() as tx:
            app = await self.core.accounts.get_app(tx.conn, app_key)
            if app is None:
                raise NotFound(f"appKey: application {app_key} does not exist", field="appKey")
            await self.core.accounts.update_app(tx.conn, app_key, disabled=disabled)
            if disabled:
                await self.core.accounts.revoke_tokens(tx.conn, app_key)
            await tx.emit(events.ApplicationChanged(app_key=app_key), org_id=app.org_id)
        self._forget()
        return replace(app, disabled=disabled)

    async def rotate_app_secret(self, app_key: str, *, grace_s: int = 0) -> Application:
        """Give the application a new secret; the returned object is the only time it is shown.

        The old secret stops signing at once, and the access tokens it obtained are revoked with it
        (a token outliving the secret that proved the caller would defeat the rotation). With
        ``grace_s`` (at most 30 days) the old secret keeps signing, and its tokens keep working, until
        that many seconds from now, so an integration can roll its secret with no failed call; a
        rotation during the period ends the one before (one previous secret at most).
        """
        validate.grace(grace_s)
        async with self.core.write() as tx:
            app = await self.core.accounts.get_app(tx.conn, app_key)
            if app is None:
                raise NotFound(f"appKey: application {app_key} does not exist", field="appKey")
            until = tx.now + grace_s * 1000
            app = replace(app, secret=ids.app_secret(), previous_secret=app.secret if grace_s else None,
                          previous_until=until if grace_s else None)
            await self.core.accounts.set_app_secret(tx.conn, app_key, app.secret, previous=app.previous_secret,
                                                    until=app.previous_until)
            if grace_s:
                await self.core.accounts.cap_tokens(tx.conn, app_key, until)
            else:
                await self.core.accounts.revoke_tokens(tx.conn, app_key)
            await tx.emit(events.ApplicationChanged(app_key=app_key), org_id=app.org_id)
        self._forget()
        return app

    async def set_app_public_key(self, app_key: str, pem: str | None) -> Application:
        if pem is not None:
            self._check_public_key(pem)
        async with self.core.write() as tx:
            app = await self.core.accounts.get_app(tx.conn, app_key)
            if app is None:
                raise NotFound(f"appKey: application {app_key} does not exist", field="appKey")
            await self.core.accounts.update_app(tx.conn, app_key, rsa_public_key=pem)
            await tx.emit(events.ApplicationChanged(app_key=app_key), org_id=app.org_id)
        self._forget()
        return replace(app, rsa_public_key=pem)

    async def set_app_permissions(self, app_key: str, permissions: frozenset[Permission]) -> Application:
        async with self.core.write() as tx:
            app = await self.core.accounts.get_app(tx.conn, app_key)
            if app is None:
                raise NotFound(f"appKey: application {app_key} does not exist", field="appKey")
            await self.core.accounts.update_app(
                tx.conn, app_key, permissions=",".join(sorted(p.value for p in permissions)))
            await tx.emit(events.ApplicationChanged(app_key=app_key), org_id=app.org_id)
        self._forget()
        return replace(app, permissions=permissions)

    # thing models --------------------------------------------------------------------------
    async def create_model(self, org_id: str, model_id: str, name: str | None = None) -> ThingModel:
        if not model_id or len(model_id) > 128:
            raise InvalidArgument("modelId: 1-128 characters", field="modelId")
        await self.get_org(org_id)
        async with self.core.write(org_id) as tx:
            if await self.core.products.model_exists(tx.conn, org_id, model_id):
                raise Conflict(f"modelId: model {model_id} exists", field="modelId")
            model = ThingModel(org_id, model_id, name or model_id, tx.now)
            await self.core.products.insert_model(tx.conn, model)
        return model

    async def list_models(self, org_id: str) -> list[ThingModel]:
        async with self.core.read() as conn:
            return await self.core.products.list_models(conn, org_id)

    # authentication ------------------------------------------------------------------------
    async def active_app(self, app_key: str) -> Application:
        """The enabled application with this key, or Unauthenticated (never says which part failed)."""
        app = self._apps.get(app_key)
        if app is None:
            generation = self._apps.generation
            async with self.core.read() as conn:
                app = await self.core.accounts.get_app(conn, app_key)
            if app is not None:
                self._apps.put(app_key, app, generation)
        if app is None or app.disabled:
            raise Unauthenticated("the application key is unknown or disabled")
        return app

    async def issue_token(self, app: Application, *, renew: bool = False) -> tuple[str, int]:
        """The app's current access token (or a new one); returns ``(token, expire_time_ms)``.

        Repeated requests get the same token while it is valid; ``renew`` replaces it.
        """
        ttl = self.core.settings.access_token_ttl_s * 1000
        async with self.core.write(app.org_id) as tx:
            current = None
            if renew:
                await self.core.accounts.revoke_tokens(tx.conn, app.app_key)
                await tx.emit(events.ApplicationChanged(app_key=app.app_key))
            else:
                current = await self.core.accounts.current_token(tx.conn, app.app_key, tx.now)
            if current is None:
                current = (ids.token(), tx.now + ttl)
                await self.core.accounts.insert_token(tx.conn, app.app_key, current[0], tx.now, current[1])
        if renew:
            self._tokens.clear()  # after the commit, so no lookup re-caches the revoked token
        return current

    async def app_for_token(self, token: str) -> tuple[Application, int]:
        """Resolve a bearer token to its enabled application and expiry, or Unauthenticated."""
        found = self._tokens.get(token)
        if found is None:
            generation = self._tokens.generation
            async with self.core.read() as conn:
                found = await self.core.accounts.token_owner(conn, token, 0)
            if found is not None:
                self._tokens.put(token, found, generation)
        if found is None:
            raise Unauthenticated("the access token is unknown")
        app = await self.active_app(found[0])
        return app, found[1]

    async def use_nonce(self, nonce: str, ttl_ms: int) -> bool:
        """Record a single-use value (a signature, a nonce); False if it was used before."""
        return await self.nonces.use(nonce, ttl_ms)

    @staticmethod
    def caller(app: Application) -> Caller:
        """The caller an authenticated application acts as (named in the audit trail)."""
        audit.identify(f"app:{app.app_key}", app.org_id)
        return Caller(app.org_id, app.app_key, app.permissions)

