"""The one walk that holds every decoded request to the limits, and that both front doors share."""

from __future__ import annotations

import json

import pytest

from thingport.connect.messages import BadRequest, parse_request
from thingport.dialects.common import screen
from thingport.domain import limits
from thingport.domain.errors import InvalidArgument
from thingport.domain.limits import Beyond, check


@pytest.mark.parametrize(("value", "field", "reason"), [
    ({"a": [1, 2**63]}, "a[1]", "integers are limited to 64 bits"),
    ({"a": -(2**63) - 1}, "a", "integers are limited to 64 bits"),
    ([limits.json_float("1e400")], "[0]", "numbers are limited to the range of a 64-bit float"),
    ({"n": limits.json_constant("NaN")}, "n", "numbers are limited to the range of a 64-bit float"),
    ({"n": limits.json_int("9" * 65)}, "n", "integers are limited to 64 bits"),
    ({"s": "x" * (limits.MAX_STRING + 1)}, "s", "strings are limited to 65536 characters"),
    ({"k\x00": 1}, "k\\0", "contains a NUL character"),
    ({"t": "\ud800"}, "t", "is not valid Unicode"),
    ({"\ud800": 1}, "\\ud800", "is not valid Unicode"),
    ({"l": [0] * (limits.MAX_ITEMS + 1)}, "l", f"at most {limits.MAX_ITEMS} items"),
    ("x" * (limits.MAX_STRING + 1), "", "strings are limited to 65536 characters"),
])
def test_check_names_the_first_value_beyond_a_limit(value: object, field: str, reason: str) -> None:
    with pytest.raises(Beyond) as beyond:
        check(value)
    assert (beyond.value.field, beyond.value.reason) == (field, reason)
    assert beyond.value.message("body") == f"{field or 'body'}: {reason}"


def test_check_measures_depth_and_passes_what_is_at_the_limits() -> None:
    nested: object = [1]
    for _ in range(limits.MAX_DEPTH - 1):
        nested = [nested]
    check(nested)
    with pytest.raises(Beyond, match="nested more than 32 levels"):
        check([nested])
    check({"a" * 64: "é" * limits.MAX_STRING, "n": [limits.INT64[0], limits.INT64[1], 1.5e308], "b": True})


def test_a_long_key_is_cut_in_the_name() -> None:
    with pytest.raises(Beyond) as beyond:
        check({"k" * 500: {"x": 2**64}})
    assert beyond.value.field == "k" * 64 + ".x"


@pytest.mark.parametrize("params", [
    '{"rssi":9223372036854775808}', '{"rssi":1e400}', '{"rssi":' + "9" * 400 + "}",
    '{"token":"a\\u0000b"}', json.dumps({"ssid": "x" * 70_000}), json.dumps([0] * 10_001),
    json.dumps({"a": {"b": [{"c": "\x00"}]}}),
])
def test_an_http_body_and_an_mqtt_payload_are_refused_with_the_same_words(params: str) -> None:
    """The same document is refused by the dialect kit and the device envelope for the same field."""
    document = f'{{"id":"7","method":"m","params":{params}}}'.encode()
    with pytest.raises(InvalidArgument) as http:
        screen(document)
    with pytest.raises(BadRequest) as mqtt:
        parse_request(document)
    assert http.value.message == mqtt.value.message and http.value.field.startswith("params")
