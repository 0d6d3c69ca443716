"""The HTTP front: every request gets an id, an audit attempt, an access log line and its metrics.

It wraps the Litestar app's ASGI handler from the outside (``create_app`` installs it), so it
also sees what no route answers (404, 405) and what an exception handler answered. The router
writes the matched route's template into the scope, which is what metrics and the access log
name: never the raw path, so the label set stays bounded whatever clients send, and never the
query string, which carries signatures.

The request id is the caller's ``X-Request-Id`` when it is a short token (a proxy's), else a new
UUID; it is returned in ``X-Request-Id`` on every answer and is EnOS's ``requestId`` (the
dialect kit's ``request_id()`` reads it), so a support request can be matched to its log line and
audit record.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from thingport.dialects.common import split_query
from thingport.dialects.enos.routes import ACTIONS
from thingport.observe.logs import ACCESS
from thingport.observe.metrics import Metrics
from thingport.services import audit
from thingport.services.container import Services

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_GIVEN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

#: Route tags → the dialect label (the first tag in this order that a route has).
DIALECTS = (("Admin", "admin"), ("EnOS", "enos"), ("OceanConnect", "oceanconnect"), ("Living", "living"),
            ("EMQX hooks", "emqx"), ("RabbitMQ auth backend", "rabbitmq"))
#: Channels whose requests are not audited: the brokers' hooks decide MQTT logins (logged and counted).
UNAUDITED = frozenset({"emqx", "rabbitmq"})
#: Path parameters that name what a request acts on, most specific first.
TARGETS = ("asset_id", "device_id", "deviceId", "identity_id", "app_key", "product_key", "subscription_id",
           "model_id", "org_id")
#: EnOS query parameters that name the device or product acted on.
ENOS_TARGETS = ("assetId", "productKey")


#: The first word of a read's last path segment on an API whose reads are POSTs too (Living's).
READ_WORDS = ("get", "query", "list", "search", "filter", "check")


def mutates(method: str, template: str, dialect: str) -> bool:
    """Whether a call asks for a change (a failure of one is audited; a write is recorded anyway):
    any method but GET/HEAD/OPTIONS, except the Living API's reads, POSTs like its writes."""
    if method in SAFE_METHODS:
        return False
    last = template.rstrip("/").rsplit("/", 1)[-1]
    return not (dialect == "living" and last.startswith(READ_WORDS) and not last.startswith("checkOr"))


#: Route handler function → its dialect label: the functions are made once, at import (so the
#: cache stays as small as the route table, however many apps a test run builds), and the tags of
#: the routes they serve never change.
_DIALECT_OF: dict[Any, str] = {}


def dialect_of(scope: Scope) -> str:
    handler = scope.get("route_handler")
    if handler is None:
        return "none"
    if (scope.get("path_template") or "").startswith("/console"):
        return "console"  # its pages are left out of the OpenAPI document, so they have no tags
    key = getattr(handler, "fn", handler)
    label = _DIALECT_OF.get(key)
    if label is None:
        tags = set(handler.resolve_tags()) if hasattr(handler, "resolve_tags") else set()
        label = _DIALECT_OF[key] = next((label for tag, label in DIALECTS if tag in tags), "service")
    return label


def enos_action(template: str, query: dict[str, str]) -> str | None:
    """``resource.action`` of a Connect Service call whose action exists (so a label stays bounded)."""
    if not template.startswith("/connect-service/"):
        return None
    resource = template.rsplit("/", 1)[-1]
    name = query.get("action", "")
    return f"{resource}.{name}" if (resource, name) in ACTIONS else None


def _query(scope: Scope) -> dict[str, str]:
    return dict(split_query(scope.get("query_string", b"")))


class Described:
    """What the request is, learned once the router matched it (the audit record needs it during
    the request, the metrics and the log line after)."""

    __slots__ = ("dialect", "operation", "route")

    def __init__(self, scope: Scope, attempt: audit.Attempt) -> None:
        template = scope.get("path_template") or ""
        method = scope.get("method", "")
        self.dialect = dialect_of(scope)
        self.route = template or "unmatched"
        query = _query(scope) if template.startswith("/connect-service/") else {}
        action = enos_action(template, query)
        if action is not None:
            self.route = f"{template}?action={query['action']}"
            self.operation = action
            attempt.mutating = not action.split(".", 1)[1].startswith(("get", "search"))
            target = next((query[k] for k in ENOS_TARGETS if query.get(k)), "")
            if not target and query.get("deviceKey"):
                target = f"{query.get('productKey', '')}/{query['deviceKey']}"
            attempt.target = attempt.target or target
            attempt.org_id = attempt.org_id or query.get("orgId", "")
        else:
            self.operation = f"{method} {self.route}"
            attempt.mutating = mutates(str(method), template, self.dialect)
            params: dict[str, Any] = scope.get("path_params") or {}
            attempt.target = attempt.target or next((str(params[k]) for k in TARGETS if params.get(k)), "")
            attempt.org_id = attempt.org_id or str(params.get("org_id") or "")
        attempt.channel = self.dialect
        attempt.action = self.operation
        attempt.audited = self.dialect not in UNAUDITED and template != ""


class HttpFront:
    """ASGI middleware around the whole Litestar app (see the module docstring)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, litestar: Any) -> None:
        self.app = app
        self.metrics = metrics
        self.litestar = litestar

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = self._given_id(scope) or str(uuid.uuid4())
        client = scope.get("client")
        attempt = audit.Attempt("", rid, address=client[0] if client else "",
                                mutating=scope.get("method", "") not in SAFE_METHODS)
        described: list[Described] = []

        def describe() -> Described:
            if not described:
                described.append(Described(scope, attempt))
            return described[0]

        attempt.describe = describe  # the first write transaction asks for it
        status = 500
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = audit.ATTEMPT.set(attempt)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            audit.ATTEMPT.reset(token)
            d = describe()
            services: Services | None = self.litestar.state.get("services")
            if services is not None:
                await services.audit.finish(attempt, status)
            else:
                attempt.closed = True
            seconds = time.perf_counter() - start
            self.metrics.http_answered(d.dialect, d.route, status, seconds)
            if ACCESS.isEnabledFor(logging.INFO):
                ACCESS.info("http %s %s %d", scope.get("method", ""), d.route, status, extra={"fields": {
                    "request_id": rid, "channel": d.dialect, "method": scope.get("method", ""), "route": d.route,
                    "operation": d.operation, "caller": attempt.actor or "-", "address": attempt.address,
                    "status": status, "duration_ms": round(seconds * 1000, 3)}})

    @staticmethod
    def _given_id(scope: Scope) -> str | None:
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                text = value.decode("latin-1")
                return text if _GIVEN_ID.fullmatch(text) else None
        return None
