"""Compose the running service: data directory, master key, database, services, HTTP app."""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.logging import LoggingConfig
from litestar.openapi.spec import Components, SecurityScheme

from thingport import __version__, datadir
from thingport.cluster.nodes import Node, node_name, readiness
from thingport.connect import embedded
from thingport.crypto.keyring import Keyring
from thingport.dialects import brokers, openapi
from thingport.dialects.admin.routes import router as admin_router
from thingport.dialects.console.routes import routers as console_routers
from thingport.dialects.emqx.routes import SECURITY_SCHEMES as EMQX_SECURITY
from thingport.dialects.emqx.routes import router as emqx_router
from thingport.dialects.enos.routes import SECURITY_SCHEMES as ENOS_SECURITY
from thingport.dialects.enos.routes import router as enos_router
from thingport.dialects.lane import BareLane
from thingport.dialects.living.admin import router as living_admin_router
from thingport.dialects.living.routes import SECURITY_SCHEMES as LIVING_SECURITY
from thingport.dialects.living.routes import router as living_router
from thingport.dialects.oceanconnect.pushes import OceanConnectWorker
from thingport.dialects.oceanconnect.routes import SECURITY_SCHEMES as OC_SECURITY
from thingport.dialects.oceanconnect.routes import router as oceanconnect_router
from thingport.dialects.oceanconnect.throttle import Throttle
from thingport.dialects.rabbitmq.routes import SECURITY_SCHEMES as RABBITMQ_SECURITY
from thingport.dialects.rabbitmq.routes import router as rabbitmq_router
from thingport.observe.http import HttpFront
from thingport.observe.metrics import CONTENT_TYPE, Metrics
from thingport.services.container import Services
from thingport.services.context import Core
from thingport.settings import Settings
from thingport.store.db import Database

log = logging.getLogger(__name__)


def ensure_initialised(settings: Settings) -> tuple[Keyring, str]:
    """On first start with an empty data directory create the master key and operator token."""
    datadir.prepare(settings)  # owner-only: key, token, database; refused when others can write it
    key_file = settings.key_file
    if key_file.exists():
        keyring = Keyring.load(key_file)
    else:
        keyring = Keyring.generate()
        keyring.save(key_file)
        log.info("created master key %s", key_file)
    token = settings.operator_token
    if not token:
        path = settings.operator_token_file
        if path.exists():
            token = path.read_text().strip()
        else:
            token = secrets.token_urlsafe(32)
            path.touch(mode=0o600)
            path.write_text(token + "\n")
            log.info("created operator token file %s", path)
    return keyring, token


async def open_services(settings: Settings, node_id: str | None = None) -> Services:
    """Initialise if needed, migrate the database and build the services (``node_id``: of a serving
    node; None for a ``thingport`` command)."""
    keyring, _ = ensure_initialised(settings)
    db = Database(settings.db_url, sqlite_synchronous=settings.sqlite_synchronous)
    await db.migrate()
    return Services.build(Core(settings, keyring, db, node_id=node_id))


@get("/health", include_in_schema=False)
async def health() -> Response[dict[str, str]]:
    """Liveness: the process answers (whatever the database does; that is ``/ready``)."""
    return Response({"status": "ok", "version": __version__})


@get("/ready", include_in_schema=False)
async def ready(state: State) -> Response[dict[str, Any]]:
    """Readiness: 200 when this node should get traffic, else 503 with the checks that failed."""
    services: Services | None = state.get("services")
    if services is None:
        return Response({"status": "starting"}, status_code=503)
    mqtt = state.get("mqtt")
    found = await readiness(services.core, lambda: None if mqtt is None else mqtt.listening)
    return Response({"status": "ready" if found.ready else "not ready", "checks": found.checks},
                    status_code=200 if found.ready else 503)


@get("/metrics", include_in_schema=False)
async def metrics_text(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus metrics; with ``metrics_token`` set, only for ``Authorization: Bearer <token>``."""
    token: str = request.app.state.metrics_token
    if token:
        scheme, _sep, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return Response(b"the metrics token is missing or wrong\n", status_code=401, media_type="text/plain",
                            headers={"WWW-Authenticate": "Bearer"})
    metrics: Metrics = request.app.state.metrics
    return Response(await metrics.render(), media_type=CONTENT_TYPE)


async def purge_audit(services: Services, interval_s: float = 3600.0) -> None:
    """Delete audit records past ``audit_retention_days``: at start, then hourly."""
    while True:
        try:
            gone = await services.audit.purge()
            if gone:
                log.info("audit trail: deleted %d records older than %d days", gone,
                         services.core.settings.audit_retention_days)
        except Exception:  # the next round tries again; the trail only grows meanwhile
            log.exception("audit trail: purge failed")
        await asyncio.sleep(interval_s)


def create_app(settings: Settings, services: Services | None = None) -> Litestar:
    """The HTTP application. ``services`` may be given (tests); otherwise opened at start-up."""
    _, operator_token = ensure_initialised(settings)
    metrics = Metrics()
    if services is not None:
        metrics.attach(services)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        svc = await open_services(settings, node_name(settings))
        app.state.services = svc
        node = Node(svc.core)
        await node.start()  # this node's devices of an earlier run offline; other nodes' events on the bus
        if brokers.configured(settings):  # the external broker holds the sessions, whatever becomes of this node
            svc.connectivity.presence.owner = None
        # external-broker mode replaces the embedded broker (docs/mqtt.md)
        mqtt = await brokers.start(svc) if brokers.configured(settings) else await embedded.start(svc)
        app.state.mqtt = mqtt
        app.state.door = mqtt.door if mqtt is not None else None
        metrics.attach(svc, mqtt)
        oceanconnect = OceanConnectWorker(svc)
        oceanconnect.start()
        purge = asyncio.create_task(purge_audit(svc), context=contextvars.Context())
        try:
            yield
        finally:
            purge.cancel()
            await asyncio.gather(purge, return_exceptions=True)
            await oceanconnect.stop()
            if mqtt is not None:
                await mqtt.stop()
            await node.stop()
            await svc.accounts.nonces.flush()
            await svc.core.db.close()

    app = Litestar(
        route_handlers=[enos_router, oceanconnect_router, admin_router, emqx_router, rabbitmq_router,
                        living_router, living_admin_router, *console_routers, health, ready, metrics_text,
                        openapi.ui_assets()],
        lifespan=[lifespan] if services is None else [],
        state=State({"services": services, "operator_token": operator_token,
                     "oceanconnect_throttle": Throttle.from_settings(settings), "metrics": metrics,
                     "metrics_token": settings.metrics_token}),
        openapi_config=openapi.Config(
            title="Thingport", version=__version__, path="/docs",
            render_plugins=openapi.ui(),
            components=Components(security_schemes={
                "operatorToken": SecurityScheme(type="http", scheme="bearer",
                                                description="The operator token (data-dir/operator.token)"),
                **ENOS_SECURITY, **OC_SECURITY, **LIVING_SECURITY, **EMQX_SECURITY,
                **RABBITMQ_SECURITY}),
        ),
        request_max_body_size=settings.max_body_bytes + 1,
        # the root logger is the CLI's (settings.log_level); Litestar's default would reset it to INFO
        logging_config=LoggingConfig(configure_root_logger=False),
        debug=False,
    )
    # outermost, so it also sees what no route answers (docs/operations.md, "Logs")
    # the bare lane answers the hottest routes without Litestar's handler pipeline (dialects/lane.py)
    app.asgi_handler = HttpFront(BareLane(app.asgi_handler, app), metrics, app)
    return app
