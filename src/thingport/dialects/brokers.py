"""What the HTTP hooks of every external broker share (EMQX's, RabbitMQ's auth backend)."""

from __future__ import annotations

import hmac
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from thingport.connect.frontdoor import FrontDoor

Req = Request[Any, Any, Any]


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
