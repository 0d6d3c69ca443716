"""The dialect kit on a bare Litestar app: body limit, field-naming decoders, error handlers by class."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar, Request, Response, Router, post

from thingport.dialects.common import (
    BodyTooLarge,
    ErrorHandlers,
    convert,
    decode,
    read_body,
    scoped,
)
from thingport.domain.errors import DomainError, InvalidArgument, NotFound

log = logging.getLogger("kit-test")
LIMIT = 100


class Inner(msgspec.Struct):
    b: int


class Outer(msgspec.Struct):
    name: str | None = None
    items: list[Inner] | None = None


def invalid(call: Any) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        call()
    return caught.value


def test_decode_names_the_field() -> None:
    err = invalid(lambda: decode(b'{"items": [{"b": 1}, {"b": "x"}]}', Outer))
    assert (err.message, err.field) == ("items[1].b: Expected `int`, got `str`", "items[1].b")
    err = invalid(lambda: decode(b"[]", Outer))
    assert (err.message, err.field) == ("body: Expected `object`, got `array`", "body")
    err = invalid(lambda: decode(b"{x", Outer))
    assert err.message.startswith("body: is not valid JSON (") and err.field == "body"


def test_decode_reads_a_blank_body_as_empty_object() -> None:
    assert decode(b"", Outer) == Outer() and decode(b" \n", Outer) == Outer()


def test_convert_names_the_field_under_the_prefix() -> None:
    err = invalid(lambda: convert({"items": [{"b": "x"}]}, Outer, prefix="params"))
    assert (err.message, err.field) == ("params.items[0].b: Expected `int`, got `str`", "params.items[0].b")
    err = invalid(lambda: convert(7, Outer, prefix="deviceList[3]"))
    assert (err.message, err.field) == ("deviceList[3]: Expected `object`, got `int`", "deviceList[3]")
    assert convert({"name": "n"}, Outer, prefix="params") == Outer(name="n")


# --------------------------------------------------------------------------------------------- on a Router

class Refused(Exception):
    pass


@dataclass
class Seen:
    step: str = "?"


handlers = ErrorHandlers()


@handlers.on(DomainError)
def domain(request: Request[Any, Any, Any], err: DomainError) -> Response[dict[str, Any]]:
    return Response({"kind": err.kind.value, "message": err.message, "step": scoped(request, Seen).step},
                    status_code=413 if isinstance(err, BodyTooLarge) else 200)


@handlers.on(NotFound)
def not_found(_: Request[Any, Any, Any], err: NotFound) -> Response[dict[str, Any]]:
    return Response({"missing": err.message}, status_code=404)


@handlers.on(Refused)
def refused(_: Request[Any, Any, Any], err: Refused) -> Response[dict[str, Any]]:
    return Response({"refused": str(err)}, status_code=403)


@handlers.unexpected(log, lambda request: f"call {scoped(request, Seen).step}")
def internal(_: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    return Response({"internal": True}, status_code=500)


@post("/echo", status_code=200)
async def echo(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    seen = scoped(request, Seen)
    seen.step = "reading"
    services: Any = SimpleNamespace(core=SimpleNamespace(settings=SimpleNamespace(max_body_bytes=LIMIT)))
    body = decode(await read_body(request, services), dict[str, Any])
    seen.step = "answering"
    what = body.get("raise")
    if what == "domain":
        raise InvalidArgument("name: bad", field="name")
    if what == "missing":
        raise NotFound("thing: gone", field="thing")
    if what == "refused":
        raise Refused("no")
    if what == "bug":
        raise RuntimeError("bug")
    return Response(body)


@pytest.fixture
async def client() -> Any:
    app = Litestar([Router("/", route_handlers=[echo], exception_handlers=handlers.map)],
                   request_max_body_size=LIMIT + 1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kit") as c:
        yield c


async def test_handlers_answer_by_the_most_specific_class(client: httpx.AsyncClient) -> None:
    r = await client.post("/echo", json={"raise": "domain"})
    assert r.status_code == 200 and r.json() == {"kind": "invalid_argument", "message": "name: bad",
                                                 "step": "answering"}
    r = await client.post("/echo", json={"raise": "missing"})
    assert r.status_code == 404 and r.json() == {"missing": "thing: gone"}
    r = await client.post("/echo", json={"raise": "refused"})
    assert r.status_code == 403 and r.json() == {"refused": "no"}
    assert (await client.post("/echo", json={"ok": 1})).json() == {"ok": 1}


async def test_the_body_limit(client: httpx.AsyncClient) -> None:
    at_limit = b'{"p": "' + b"x" * (LIMIT - 9) + b'"}'
    assert len(at_limit) == LIMIT and (await client.post("/echo", content=at_limit)).status_code == 200
    for size in (LIMIT + 1, LIMIT * 10):  # one over is read and measured, more is refused while streaming
        r = await client.post("/echo", content=b" " * size)
        assert r.status_code == 413 and r.json() == {"kind": "invalid_argument", "step": "reading",
                                                     "message": f"body: at most {LIMIT} bytes"}


async def test_an_unexpected_exception_is_logged_once(client: httpx.AsyncClient,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        r = await client.post("/echo", json={"raise": "bug"})
    assert r.status_code == 500 and r.json() == {"internal": True}
    [record] = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert record.name == "kit-test" and record.getMessage() == "call answering failed"
    assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)
