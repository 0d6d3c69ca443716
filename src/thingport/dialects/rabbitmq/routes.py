"""RabbitMQ's HTTP auth backend (``rabbitmq_auth_backend_http``) asks these, under ``/mqtt/rabbitmq``.

RabbitMQ POSTs form fields and reads a plain ``allow`` or ``deny``:

* ``/user`` — ``username``, ``password``, ``vhost``, ``client_id``: may this client log in?
* ``/vhost`` — ``username``, ``vhost``, ``ip``, ``client_id``: may it use the virtual host?
* ``/resource`` — ``username``, ``resource`` (``queue``/``exchange``), ``name``, ``permission``,
  ``client_id``: the MQTT plugin's own queues (``mqtt-subscription-{clientid}qos{n}``) and exchange;
* ``/topic`` — ``username``, ``name`` (the exchange), ``permission`` (``write`` = publish, ``read`` =
  subscribe), ``routing_key``: the topic rights.

Every decision is the front door's, through its :class:`~thingport.connect.remote.RemoteSessions`, as
for EMQX: the same login check, topic rights and caches. Only MQTT clients are let in: the MQTT
plugin always sends ``client_id``, so an AMQP or STOMP login with a device's credentials is refused.
RabbitMQ cannot send headers, so the secret is in the URLs it is given (``?token=…``); with
``rabbitmq_hook_token`` empty the hooks answer 403, which RabbitMQ takes as ``deny``.

A malformed check (a body over ``max_body_bytes``, not UTF-8, a NUL in a field) is answered ``deny``,
as is any failure inside Thingport: RabbitMQ reads nothing but ``allow``/``deny``, so the reason rides
in an ``X-Thingport-Reason`` header ("field: why") and in a rate-limited log line.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Response, Router, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import SecurityScheme

from thingport.connect.mqtt import codec
from thingport.connect.mqtt.broker import Action, ConnectInfo
from thingport.connect.session import DeviceSession
from thingport.dialects import openapi
from thingport.dialects.brokers import Req, check_secret, door_of
from thingport.dialects.common import ErrorHandlers, form_pairs, read_body
from thingport.dialects.rabbitmq import topics
from thingport.domain.errors import DomainError, InvalidArgument
from thingport.logs import LogLimiter
from thingport.settings import Settings

log = logging.getLogger(__name__)

ACTIONS: dict[str, Action] = {"write": "publish", "read": "subscribe"}
#: The MQTT plugin's subscription queues of a client, one per QoS it subscribes with.
SUBSCRIPTION_QUEUE = "mqtt-subscription-{client_id}qos{qos}"


def hook_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    settings: Settings = connection.app.state.services.core.settings
    check_secret(connection.query_params.get("token", ""), settings.rabbitmq_hook_token,
                 setting="rabbitmq_hook_token", what="RabbitMQ")


async def form(request: Req) -> dict[str, str]:
    """The check's form fields (the last of a repeated one); a malformed body is an ``InvalidArgument``."""
    body = await read_body(request, request.app.state.services)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument("body: not UTF-8 form fields", field="body") from exc
    return dict(form_pairs(text))


def answer(allowed: bool, reason: str = "") -> Response[str]:
    return Response("allow" if allowed else "deny", media_type=MediaType.TEXT, status_code=200,
                    headers={"X-Thingport-Reason": reason} if reason else None)


#: Refused malformed checks: one warning a minute, however many arrive.
REFUSALS = LogLimiter()
hook_errors = ErrorHandlers()


@hook_errors.on(DomainError)
def refused(_: Req, err: DomainError) -> Response[str]:
    REFUSALS.log(log, logging.WARNING, "refused", "RabbitMQ hook request refused: %s", err.message)
    return answer(False, err.message)


@hook_errors.unexpected(log, lambda request: f"RabbitMQ hook {request.url.path}")
def hook_internal(_: Req) -> Response[str]:
    """A check that failed inside Thingport is a denial (RabbitMQ would take a 500 as one too)."""
    return answer(False, "internal error")


def settings_of(request: Req) -> Settings:
    settings: Settings = request.app.state.services.core.settings
    return settings


def mqtt_client(request: Req, f: dict[str, str]) -> bool:
    """An MQTT connection (the plugin names its client) on the virtual host the nodes consume from."""
    return bool(f.get("client_id")) and f.get("vhost") == topics.vhost_of(settings_of(request).rabbitmq_amqp_url)


async def device(request: Req, f: dict[str, str]) -> DeviceSession | None:
    """The enabled device an MQTT client's user name names (its login was checked by ``/user``)."""
    if not mqtt_client(request, f):
        return None
    return await door_of(request).remote.session_for(f.get("username", ""))


def fields(*names: str) -> type[Any]:
    """The OpenAPI description of a check: its form fields, all strings."""
    return openapi.documented({"type": "object", "properties": {n: {"type": "string"} for n in names}},
                              media_type=openapi.FORM)


@post("/user", summary="RabbitMQ HTTP auth backend: may this MQTT client log in?", status_code=200,
      operation_class=fields("username", "password", "vhost", "client_id"))
async def user(request: Req) -> Response[str]:
    f = await form(request)
    username = f.get("username", "")
    if not mqtt_client(request, f):
        log.info("RabbitMQ login of %r refused: not an MQTT client of virtual host %r", username, f.get("vhost"))
        return answer(False)
    password = f.get("password", "")
    conn = ConnectInfo(f.get("client_id", ""), username or None, password.encode() if password else None, True, 0, None,
                       False)
    result = await door_of(request).remote.authenticate(conn)
    session = result.principal
    if result.return_code != codec.ACCEPTED or not isinstance(session, DeviceSession):
        return answer(False)
    dotted = topics.dotted_name(session)
    if dotted is not None:
        log.warning("MQTT login of %r refused behind RabbitMQ: %r contains '.', which RabbitMQ turns into a topic "
                    "level separator, so this device's topics cannot be told apart from others' "
                    "(docs/operations.md, RabbitMQ)", username, dotted)
        return answer(False)
    return answer(True)


@post("/vhost", summary="RabbitMQ HTTP auth backend: may this client use the virtual host?", status_code=200,
      operation_class=fields("username", "vhost", "ip", "tags", "client_id"))
async def vhost(request: Req) -> Response[str]:
    f = await form(request)
    return answer(await device(request, f) is not None)


@post("/resource", summary="RabbitMQ HTTP auth backend: the MQTT plugin's own queues and exchange", status_code=200,
      operation_class=fields("username", "vhost", "resource", "name", "permission", "tags", "client_id"))
async def resource(request: Req) -> Response[str]:
    f = await form(request)
    if await device(request, f) is None:
        return answer(False)
    kind, name, client_id = f.get("resource"), f.get("name"), f.get("client_id", "")
    if kind == "queue":
        return answer(name in {SUBSCRIPTION_QUEUE.format(client_id=client_id, qos=q) for q in (0, 1)})
    return answer(kind == "exchange" and name == topics.EXCHANGE and f.get("permission") in ACTIONS)


@post("/topic", summary="RabbitMQ HTTP auth backend: may this client publish / subscribe to this topic?",
      status_code=200, operation_class=fields("username", "vhost", "resource", "name", "permission", "routing_key"))
async def topic(request: Req) -> Response[str]:
    """A routing key's topic rights; a ``deny`` makes RabbitMQ close the client's connection."""
    f = await form(request)
    action = ACTIONS.get(f.get("permission", ""))
    vhost = topics.vhost_of(settings_of(request).rabbitmq_amqp_url)
    if action is None or f.get("name") != topics.EXCHANGE or f.get("vhost") != vhost:
        return answer(False)
    username, mqtt_topic = f.get("username", ""), topics.topic(f.get("routing_key", ""))
    allowed = await door_of(request).remote.authorize(username, mqtt_topic, action)
    if not allowed:
        log.info("RabbitMQ topic check: %r may not %s %r", username, action, mqtt_topic)
    return answer(allowed)


SECURITY_SCHEMES = {
    "rabbitmqHookToken": SecurityScheme(type="apiKey", name="token", security_scheme_in="query",
                                        description="The rabbitmq_hook_token setting"),
}

router = Router(path="/mqtt/rabbitmq", route_handlers=[user, vhost, resource, topic], guards=[hook_guard],
                tags=["RabbitMQ auth backend"], exception_handlers=hook_errors.map,
                security=[{"rabbitmqHookToken": []}])
