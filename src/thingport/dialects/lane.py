"""The bare lane: the hottest routes answered without Litestar's handler pipeline.

Litestar's routing, its handler-parameter model, its response objects and its exception
middleware cost about a third of the server's time on a signed get-device (docs/benchmarks.md).
A route can register a *bare* handler, ``(request, path_params) -> Response``: the lane asks
Litestar's own router which route a request matches (its cached lookup, so the match is exactly
the one Litestar would make), and when that route has a bare handler it builds the ``Request``
itself, calls the handler, and sends the ``Response``'s bytes. Everything else, and every request
whose route has no bare handler, goes on to Litestar unchanged.

The same route handler functions serve both ways (a bare handler is what the Litestar handler
calls), and an exception is answered by the route's own exception handlers, found the way
Litestar finds them: what a client sees cannot differ. A response with a ``bytes`` body and plain
headers (what the dialect kit's ``respond`` makes) is sent here; any other is rendered by Litestar.
What the lane does not run (guards, middleware, hooks, dependencies, response headers) its routes
must not declare: ``tests/dialects/test_lane.py`` fails when one does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar, Request, Response
from litestar._asgi.utils import is_valid_host
from litestar.enums import MediaType, ScopeType
from litestar.middleware._internal.exceptions.middleware import get_exception_handler
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send
from litestar.utils import normalize_path
from litestar.utils.helpers import get_enum_string_value

BareHandler = Callable[[Request[Any, Any, Any], dict[str, Any]], Awaitable[Response[bytes]]]

#: Route handler function → its bare handler (filled by the dialects at import: :func:`bare`).
HANDLERS: dict[Callable[..., Any], BareHandler] = {}


def bare(route_fn: Callable[..., Any], handler: BareHandler) -> None:
    """Let the lane answer the route whose handler function is ``route_fn`` with ``handler``."""
    HANDLERS[route_fn] = handler


class BareLane:
    """ASGI: requests for a route with a bare handler are answered here; the rest go to ``app``."""

    def __init__(self, app: ASGIApp, litestar: Litestar) -> None:
        self.app = app
        self.router = litestar.asgi_router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        host = next((value for name, value in scope["headers"] if name == b"host"), None)
        try:
            if host is not None and not is_valid_host(host):
                raise ValueError(host)  # Litestar's 400
            _, route_handler, path, params, template = self.router.handle_routing(
                path=normalize_path(scope["path"]), method=scope.get("method"))
        except Exception:  # no route, a wrong method, a bad Host: Litestar's answers (404, 405, 400)
            await self.app(scope, receive, send)
            return
        handler = HANDLERS.get(route_handler.fn)
        if handler is None:
            await self.app(scope, receive, send)
            return
        scope["route_handler"] = route_handler
        scope["path_template"] = template
        scope["path"] = path
        scope["path_params"] = params
        request: Request[Any, Any, Any] = Request(scope, receive, send)
        try:
            response = await handler(request, params)
        except Exception as exc:
            render = get_exception_handler(route_handler.resolve_exception_handlers(), exc)
            if render is None:  # every bare route's Router maps Exception; without it, Litestar's way
                raise
            response = render(request, exc)
        content = response.content
        if not isinstance(content, bytes) or response.cookies or response.background is not None:
            # not the kit's plain bytes (Litestar's own error answer, say): Litestar renders it
            await response.to_asgi_response(None, request)(scope, receive, send)
            return
        await _send(response, content, send)


async def _send(response: Response[Any], content: bytes, send: Send) -> None:
    media = get_enum_string_value(response.media_type or MediaType.JSON)
    headers = [(b"content-type", media.encode("latin-1")), (b"content-length", str(len(content)).encode())]
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items())
    start: HTTPResponseStartEvent = {"type": "http.response.start", "status": response.status_code or 200,
                                     "headers": headers}
    await send(start)
    body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": content, "more_body": False}
    await send(body)

