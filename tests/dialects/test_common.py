"""The dialect kit on a bare Litestar app: body limit, field-naming decoders, error handlers by class."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar, Request, Response, Router, post

from thingport.dialects import common
from thingport.dialects.common import (
    BodyTooLarge,
    ErrorHandlers,
    convert,
    decode,
    read_body,
    scoped,
    split_pairs,
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


# --------------------------------------------------------------------------------------------- limits

@pytest.mark.parametrize("opening, closing", [(b"[", b"]"), (b'{"a":', b"}")])
def test_a_body_nested_too_deep_is_refused_before_decoding(opening: bytes, closing: bytes) -> None:
    for depth in (common.MAX_DEPTH + 1, 1000, 100_000):  # 1,000 raised RecursionError in msgspec
        err = invalid(lambda d=depth: decode(b'{"name": "x", "items": ' + opening * d + closing * d + b"}", Outer))
        assert err.field == "body" and "nested more than 32 levels" in err.message
    unclosed = invalid(lambda: decode(opening * 5000, Outer))
    assert unclosed.field == "body" and "nested" in unclosed.message
    at_limit = b"[" * (common.MAX_DEPTH - 1) + b"]" * (common.MAX_DEPTH - 1)
    assert decode(b'{"deep": ' + at_limit + b"}", dict[str, Any])["deep"]


def test_brackets_inside_strings_are_not_nesting() -> None:
    text = "[{" * 500 + '\\"' + "}]" * 500
    assert decode(json.dumps({"name": text}).encode(), Outer).name == text


@pytest.mark.parametrize("literal, field", [
    (b"9223372036854775808", "items[0].b"), (b"-9223372036854775809", "items[0].b"), (b"1" + b"0" * 400, "items[0].b"),
    (b"1e400", "items[0].b"),
])
def test_numbers_beyond_64_bits_or_a_double_name_their_field(literal: bytes, field: str) -> None:
    err = invalid(lambda: decode(b'{"items": [{"b": ' + literal + b"}]}", Outer))
    assert err.field == field, err.message
    assert decode(b'{"items": [{"b": 9223372036854775807}, {"b": -9223372036854775808}]}', Outer).items


def test_numbers_in_free_form_values_are_bounded_too() -> None:
    err = invalid(lambda: decode(b'{"attrs": {"x": [1, 123456789012345678901234567890]}}', dict[str, Any]))
    assert err.field == "attrs.x[1]" and "64 bits" in err.message


def test_strings_items_and_nul() -> None:
    long = "a" * (common.MAX_STRING + 1)
    assert invalid(lambda: decode(json.dumps({"name": long}).encode(), Outer)).field == "name"
    assert invalid(lambda: decode(json.dumps({long: 1}).encode(), dict[str, Any])).field.startswith("a" * 64)
    many = json.dumps({"items": [{"b": 1}] * (common.MAX_ITEMS + 1)}).encode()
    assert invalid(lambda: decode(many, Outer)).field == "items"
    err = invalid(lambda: decode(b'{"name": "a\\u0000b"}', Outer))
    assert (err.field, err.message) == ("name", "name: contains a NUL character")
    assert decode(b'{"name": "a\\\\u0000b"}', Outer).name == "a\\u0000b"  # an escaped backslash, no NUL


def test_query_and_form_values_refuse_nul() -> None:
    assert common.query_pairs(b"a=1&b=%C3%A9?c=2") == [("a", "1"), ("b", "é"), ("c", "2")]
    err = invalid(lambda: common.query_pairs(b"productKey=ab%00c"))
    assert (err.field, err.message) == ("productKey", "productKey: contains a NUL character")
    assert invalid(lambda: common.form_pairs("appId=x&secret=%00")).field == "secret"


@pytest.mark.parametrize("text, value", [("0", 0), ("0012", 12), ("9" * 18, int("9" * 18))])
def test_digits_takes_ascii_digits(text: str, value: int) -> None:
    assert common.digits(text) == value


@pytest.mark.parametrize("text", ["", "²", "1²", "١٢", "１２", "1_000", " 12", "12 ", "+1", "-1", "1.0", "9" * 19,
                                  "12\n", "0x10", "inf"])
def test_digits_refuses_what_isdigit_or_int_would_take(text: str) -> None:
    assert common.digits(text) is None


def test_int_param() -> None:
    assert common.int_param({}, "pageNo", 3, 0, 9) == 3 and common.int_param({"pageNo": ""}, "pageNo", 3, 0, 9) == 3
    assert common.int_param({"pageNo": "9"}, "pageNo", 3, 0, 9) == 9
    for bad in ("10", "¹", "٣", "9" * 400):
        err = invalid(lambda b=bad: common.int_param({"pageNo": b}, "pageNo", 3, 0, 9))
        assert (err.field, err.message) == ("pageNo", "pageNo: must be an integer from 0 to 9")


async def test_a_flood_of_one_unexpected_failure_logs_one_traceback(client: httpx.AsyncClient,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        for _ in range(20):
            assert (await client.post("/echo", json={"raise": "bug"})).status_code == 500
    assert len([rec for rec in caplog.records if rec.levelno >= logging.ERROR]) == 1


async def test_a_deep_body_on_a_router_is_the_dialects_error(client: httpx.AsyncClient,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        r = await client.post("/echo", content=b"[" * 40 + b"]" * 40)  # within the 100-byte body limit
    assert r.status_code == 200 and r.json()["kind"] == "invalid_argument" and r.json()["message"].startswith("body:")
    assert not caplog.records


@given(st.lists(st.sampled_from(["a", "b", "=", "&", "%", "+", "%41", "%zz", "é", " ", "\x00", ""]), max_size=12))
def test_split_pairs_is_parse_qsl_keeping_blanks(parts: list[str]) -> None:
    text = "".join(parts)
    assert split_pairs(text) == parse_qsl(text, keep_blank_values=True, encoding="utf-8")
