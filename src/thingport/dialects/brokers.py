"""External brokers: which one a node is behind, and what their HTTP hooks share (EMQX's, RabbitMQ's)."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from thingport.connect.external import ExternalBroker, mqtt_broker
from thingport.connect.frontdoor import FrontDoor
from thingport.dialects.rabbitmq.broker import rabbitmq_broker
from thingport.services.container import Services
from thingport.settings import Settings

Req = Request[Any, Any, Any]


def configured(settings: Settings) -> bool:
    """Devices connect to an external broker (the embedded one stays off)."""
    return bool(settings.mqtt_external_url or settings.rabbitmq_amqp_url)


async def start(services: Services) -> ExternalBroker | None:
    """The node's link to ``rabbitmq_amqp_url``, else ``mqtt_external_url``; None when neither is set."""
    settings = services.core.settings
    if not configured(settings):
        return None
    door = FrontDoor(services)
    try:
        external = rabbitmq_broker(door, settings) if settings.rabbitmq_amqp_url else mqtt_broker(door, settings)
        await external.start()
    except BaseException:
        door.close()
        raise
    return external


def door_of(request: Req) -> FrontDoor:
    """The node's front door: the external link's or the embedded broker's, else one for the hooks."""
    state = request.app.state
    door: FrontDoor | None = state.get("door")
    if door is None:
        door = state.door = FrontDoor(state.services)
    return door


def check_secret(presented: str, expected: str, *, setting: str, what: str) -> None:
    """Only the broker may call its hooks: 403 while ``setting`` is empty, 401 for a wrong secret."""
    if not expected:
        raise PermissionDeniedException(f"{what} hooks are off: set {setting}")
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise NotAuthorizedException(f"the {what} hook secret is missing or wrong")
