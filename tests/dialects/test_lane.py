"""The bare lane answers the Connect Service exactly as Litestar's pipeline would, only faster.

Each request is sent twice, once through the lane and once with the lane's table emptied (so
the same app falls through to Litestar), and the two answers must match: status, headers and
body, apart from what differs by nature (the request id, a new device's identifiers).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.support.enos_client import EnosClient
from thingport.app import create_app
from thingport.dialects import lane
from thingport.dialects.enos import routes
from thingport.domain.models import now_ms
from thingport.services.container import Services
from thingport.settings import Settings

#: Sends one signed request: the client, the product key, the timestamp to sign with (the two runs
#: of a case sign apart: one signature twice is a replay).
Send = Callable[[EnosClient, str, int], Awaitable[httpx.Response]]
V24 = "/connect-service/v2.4/devices"


def shape(value: Any) -> Any:
    """A JSON value with its leaves replaced by their types (identifiers differ between the runs)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def answer(r: httpx.Response) -> tuple[int, list[str], str, Any]:
    headers = sorted(k for k in r.headers if k != "x-request-id")
    body = r.json() if r.content else None
    if isinstance(body, dict):
        body.pop("requestId", None)
        if body.get("code") == 0:
            body["data"] = shape(body["data"])
    return r.status_code, headers, r.headers.get("content-type", ""), body


def create(key: str) -> Send:
    async def send(enos: EnosClient, product_key: str, ts: int) -> httpx.Response:
        return await enos.raw("POST", V24, {"action": "create"}, {
            "productKey": product_key, "deviceName": {"defaultValue": "lamp"}, "timezone": "+08:00",
            "deviceKey": key}, timestamp=ts)
    return send


def call(method: str, path: str, params: dict[str, str], body: Any = None, **kw: Any) -> Send:
    async def send(enos: EnosClient, product_key: str, ts: int) -> httpx.Response:
        given = {k: v.replace("{pk}", product_key) for k, v in params.items()}
        return await enos.raw(method, path, given, body, **{"timestamp": ts, **kw})
    return send


CASES: dict[str, Send] = {
    "get": call("GET", V24, {"action": "get", "productKey": "{pk}", "deviceKey": "lamp-there"}),
    "get missing": call("GET", V24, {"action": "get", "productKey": "{pk}", "deviceKey": "nothere"}),
    "search": call("POST", V24, {"action": "search"}, {"expression": "deviceKey = 'lamp-there'"}),
    "bad version": call("GET", "/connect-service/v9.9/devices", {"action": "get", "productKey": "{pk}",
                                                                  "deviceKey": "lamp-there"}),
    "unknown action": call("GET", V24, {"action": "nosuch"}),
    "wrong method": call("POST", V24, {"action": "get", "productKey": "{pk}", "deviceKey": "lamp-there"}),
    "unsigned": call("GET", V24, {"action": "get", "productKey": "{pk}", "deviceKey": "lamp-there"}, sign=False),
    "bad json": call("POST", V24, {"action": "create"}, b"{nope"),
    "deep json": call("POST", V24, {"action": "create"}, b"[" * 100 + b"]" * 100),
    "too large": call("POST", V24, {"action": "create"}, b" " * (1_048_576 + 10)),
    "stale": call("GET", V24, {"action": "get", "productKey": "{pk}", "deviceKey": "lamp-there"}, timestamp=1),
    "nul in query": call("GET", V24, {"action": "get", "productKey": "{pk}", "deviceKey": "a\x00b"}),
    "products": call("GET", "/connect-service/v2.1/products", {"action": "get", "productKey": "{pk}"}),
    "trailing slash": call("GET", V24 + "/", {"action": "get", "productKey": "{pk}", "deviceKey": "lamp-there"}),
}


@pytest.fixture
async def pk(enos: EnosClient, product_key: str) -> str:
    r = await create("lamp-there")(enos, product_key, now_ms())
    assert r.json()["code"] == 0, r.text
    return product_key


async def both(enos: EnosClient, pk: str, monkeypatch: pytest.MonkeyPatch, send: Send
               ) -> tuple[httpx.Response, httpx.Response]:
    ts = now_ms()
    through_lane = await send(enos, pk, ts)
    with monkeypatch.context() as m:
        m.setattr(lane, "HANDLERS", {})
        through_litestar = await send(enos, pk, ts + 1)
    return through_lane, through_litestar


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_lane_answers_as_litestar_does(enos: EnosClient, pk: str, monkeypatch: pytest.MonkeyPatch,
                                                 case: str) -> None:
    fast, slow = await both(enos, pk, monkeypatch, CASES[case])
    assert answer(fast) == answer(slow)


async def test_a_create_answers_alike_both_ways(enos: EnosClient, pk: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = await create("lamp-one")(enos, pk, now_ms())
    with monkeypatch.context() as m:
        m.setattr(lane, "HANDLERS", {})
        slow = await create("lamp-two")(enos, pk, now_ms())
    assert fast.json()["code"] == 0
    assert answer(fast) == answer(slow)


async def test_an_unexpected_error_is_answered_and_logged_alike(
        enos: EnosClient, pk: str, monkeypatch: pytest.MonkeyPatch, services: Services,
        caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the disk fell off")

    monkeypatch.setattr(services.devices, "get", broken)
    monkeypatch.setattr(routes.connect_errors, "map", dict(routes.connect_errors.map))
    with caplog.at_level(logging.ERROR):
        fast, slow = await both(enos, pk, monkeypatch, CASES["get"])
    assert fast.status_code == 500 and fast.json()["code"] == 99500
    assert answer(fast) == answer(slow)
    assert "the disk fell off" not in fast.text
    assert any("failed" in r.getMessage() for r in caplog.records)


async def test_the_lane_skips_litestar_for_its_routes_only(
        enos: EnosClient, pk: str, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Litestar's pipeline (what the lane wraps) sees /health but not a Connect Service call."""
    app = http._transport.app  # type: ignore[attr-defined]
    bare_lane = app.asgi_handler.app
    assert isinstance(bare_lane, lane.BareLane)
    seen: list[str] = []
    inner = bare_lane.app

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await inner(scope, receive, send)

    monkeypatch.setattr(bare_lane, "app", counting)
    r = await CASES["get"](enos, pk, now_ms())
    assert r.json()["code"] == 0
    assert (await http.get("/health")).status_code == 200
    assert seen == ["/health"]


def test_every_connect_service_route_has_a_bare_handler() -> None:
    assert {route.fn for route in routes.CONNECT_ROUTES} <= set(lane.HANDLERS)


async def test_a_bad_host_header_gets_litestars_answer(enos: EnosClient, pk: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    send = call("GET", V24, {"action": "get", "productKey": "{pk}", "deviceKey": "lamp-there"},
                headers={"Host": "bad host\\name"})
    fast, slow = await both(enos, pk, monkeypatch, send)
    assert fast.status_code == 400
    assert answer(fast) == answer(slow)


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT"])
async def test_other_methods_answer_as_litestar_does(enos: EnosClient, pk: str, monkeypatch: pytest.MonkeyPatch,
                                                     method: str) -> None:
    send = call(method, V24, {"action": "get", "productKey": "{pk}", "deviceKey": "lamp-there"})
    fast, slow = await both(enos, pk, monkeypatch, send)
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
    assert sorted(k for k in fast.headers if k != "x-request-id") == sorted(k for k in slow.headers
                                                                          if k != "x-request-id")


async def test_litestars_own_error_answer_is_rendered_by_litestar(enos: EnosClient, pk: str, services: Services,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer that is not the kit's plain bytes (here Litestar's own, for one of its exceptions)
    goes through Litestar's rendering, the same as without the lane."""
    from litestar.exceptions import NotAuthorizedException

    async def refused(*_: Any, **__: Any) -> Any:
        raise NotAuthorizedException("no")

    monkeypatch.setattr(services.devices, "get", refused)
    fast, slow = await both(enos, pk, monkeypatch, CASES["get"])
    assert (fast.status_code, fast.json()) == (401, {"status_code": 401, "detail": "no"})
    assert answer(fast) == answer(slow)


def test_the_lane_skips_nothing_its_routes_declare(settings: Settings, services: Services) -> None:
    """The lane runs a route's handler and its exception handlers only: a guard, middleware, hook,
    dependency or response header or cookie added to one of its routes (or the app) would be
    skipped, so this fails first."""
    app = create_app(settings, services)
    assert not app.middleware and not app.before_send
    bare = [h for route in app.routes for h in getattr(route, "route_handlers", ()) if h.fn in lane.HANDLERS]
    assert len(bare) == len(routes.CONNECT_ROUTES)
    for h in bare:
        assert not h.resolve_guards() and not h.resolve_middleware(), h
        assert h.resolve_before_request() is None and h.resolve_after_response() is None, h
        assert not h.resolve_response_headers() and not h.resolve_response_cookies(), h
        assert not h.resolve_dependencies(), h
