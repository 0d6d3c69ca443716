"""The HTTP hooks an external EMQX 5 broker calls, under ``/mqtt/emqx`` (docs/mqtt.md).

* ``POST /authn`` — the HTTP authenticator: ``{"clientid", "username", "password", "peerhost"}`` →
  ``{"result": "allow"|"deny", "is_superuser": false}``.
* ``POST /authz`` — the HTTP authorizer: ``{"clientid", "username", "topic", "action"}`` →
  ``{"result": "allow"|"deny"}``.
* ``POST /events`` — a rule's HTTP action on ``$events/client_connected`` and
  ``$events/client_disconnected`` (``{"event": "client.connected"|"client.disconnected", "clientid",
  "username", "reason"}``): the device goes online / offline.

Every decision is the front door's (:class:`thingport.connect.frontdoor.FrontDoor`, through its
:class:`~thingport.connect.remote.RemoteSessions`): the same login check, topic rights and online
state as on the embedded broker. Each call may reach any Thingport node, so rights are derived from
the user name, not from a session this node holds.

Only the broker may call these: ``Authorization: Bearer {emqx_hook_token}``; with no token set the
hooks are off (403). A malformed authentication or authorization request is answered ``deny`` with a
message naming the field — never ``ignore``, which EMQX could turn into "allowed".
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Literal

import msgspec
from litestar import Response, Router, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import SecurityScheme

from thingport.connect.external import BrokerUrl
from thingport.connect.mqtt import codec
from thingport.connect.mqtt.broker import ConnectInfo
from thingport.dialects import openapi
from thingport.dialects.brokers import Req, check_secret, door_of
from thingport.dialects.common import ErrorHandlers, decode, read_body
from thingport.domain.errors import DomainError, InvalidArgument
from thingport.logs import LogLimiter
from thingport.settings import Settings

log = logging.getLogger(__name__)


class AuthnIn(msgspec.Struct):
    clientid: str
    username: str | None = None
    password: str | None = None
    peerhost: str | None = None


class AuthzIn(msgspec.Struct):
    clientid: str
    username: str
    topic: str
    action: Literal["publish", "subscribe"]


class EventIn(msgspec.Struct):
    event: str
    clientid: str
    username: str | None = None
    reason: str | None = None


def hook_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    settings: Settings = connection.app.state.services.core.settings
    scheme, _sep, token = connection.headers.get("authorization", "").partition(" ")
    check_secret(token if scheme.lower() == "bearer" else "", settings.emqx_hook_token, setting="emqx_hook_token",
                 what="EMQX")


def platform_user(settings: Settings, username: str | None, password: str | None) -> bool:
    """The privileged client's own login (the credentials in ``mqtt_external_url``)."""
    if not settings.mqtt_external_url or username is None or password is None:
        return False
    try:
        url = BrokerUrl.parse(settings.mqtt_external_url)
    except ValueError:
        return False
    if url.username is None or url.password is None:
        return False
    return hmac.compare_digest(username.encode(), url.username.encode()) and \
        hmac.compare_digest(password.encode(), url.password.encode())


#: Refused hook requests: one warning a minute, however many arrive.
REFUSALS = LogLimiter()


def _deny(err: DomainError) -> dict[str, Any]:
    REFUSALS.log(log, logging.WARNING, "refused", "EMQX hook request refused: %s", err.message)
    return {"result": "deny", "is_superuser": False, "message": err.message}


async def _body(request: Req) -> bytes:
    return await read_body(request, request.app.state.services)


@post("/authn", summary="EMQX HTTP authenticator: may this client connect?", status_code=200,
      operation_class=openapi.documented(AuthnIn))
async def authenticate(request: Req) -> dict[str, Any]:
    try:
        body = decode(await _body(request), AuthnIn)
    except DomainError as err:
        return _deny(err)
    settings: Settings = request.app.state.services.core.settings
    if platform_user(settings, body.username, body.password):
        return {"result": "allow", "is_superuser": True}
    conn = ConnectInfo(body.clientid, body.username or None,
                       body.password.encode() if body.password else None, True, 0,
                       (body.peerhost or "", 0), False)
    result = await door_of(request).remote.authenticate(conn)
    return {"result": "allow" if result.return_code == codec.ACCEPTED else "deny", "is_superuser": False}


@post("/authz", summary="EMQX HTTP authorizer: may this client publish / subscribe to this topic?",
      status_code=200, operation_class=openapi.documented(AuthzIn))
async def authorize(request: Req) -> dict[str, Any]:
    try:
        body = decode(await _body(request), AuthzIn)
    except DomainError as err:
        return _deny(err)
    allowed = await door_of(request).remote.authorize(body.username, body.topic, body.action)
    return {"result": "allow" if allowed else "deny"}


@post("/events", summary="EMQX rule HTTP action for client.connected / client.disconnected", status_code=200,
      operation_class=openapi.documented(EventIn))
async def client_event(request: Req) -> Response[dict[str, Any]]:
    try:
        body = decode(await _body(request), EventIn)
        if body.event not in ("client.connected", "client.disconnected"):
            raise InvalidArgument(f"event: {body.event!r} is not client.connected or client.disconnected",
                                  field="event")
        if not body.username:
            raise InvalidArgument("username: missing", field="username")
    except DomainError as err:
        return Response({"result": "error", "message": err.message}, status_code=400)
    remote = door_of(request).remote
    if body.event == "client.connected":
        known = await remote.connected(body.clientid, body.username)
    else:
        known = await remote.disconnected(body.clientid, body.username, body.reason or "")
    return Response({"result": "ok" if known else "ignored"})


hook_errors = ErrorHandlers()


@hook_errors.unexpected(log, lambda request: f"EMQX hook {request.url.path}")
def hook_internal(request: Req) -> Response[dict[str, Any]]:
    """A failed login or topic check is a denial, never an error EMQX could read as "ignore"."""
    if request.url.path.endswith("/events"):
        return Response({"result": "error", "message": "internal error"}, status_code=500)
    return Response({"result": "deny", "is_superuser": False, "message": "internal error"}, status_code=200)


SECURITY_SCHEMES = {
    "emqxHookToken": SecurityScheme(type="http", scheme="bearer", description="The emqx_hook_token setting"),
}

router = Router(path="/mqtt/emqx", route_handlers=[authenticate, authorize, client_event], guards=[hook_guard],
                tags=["EMQX hooks"], exception_handlers=hook_errors.map, security=[{"emqxHookToken": []}])
