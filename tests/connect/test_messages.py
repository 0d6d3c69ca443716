"""The request envelope: what a device may send, and the field an error names when it sends more."""

from __future__ import annotations

import json

import pytest

from thingport.connect.messages import BadRequest, parse_request
from thingport.domain import limits


def envelope(params: str, rid: str = '"7"') -> bytes:
    return f'{{"id":{rid},"version":"1.0","method":"thing.topo.add","params":{params}}}'.encode()


@pytest.mark.parametrize(("payload", "message", "rid"), [
    (b"[" * 100_000 + b"]" * 100_000, "payload: arrays and objects nested more than 32 levels deep", ""),
    (envelope("[" * 1_000 + "]" * 1_000), "payload: arrays and objects nested more than 32 levels deep", ""),
    (envelope('{"a":' * 40 + "1" + "}" * 40), "params.a.a.a", "7"),
    (envelope('[{"rssi":' + "9" * 400 + "}]"), "params[0].rssi: integers are limited to 64 bits", "7"),
    (envelope('{"rssi":9223372036854775808}'), "params.rssi: integers are limited to 64 bits", "7"),
    (envelope('{"rssi":1e400}'), "params.rssi: numbers are limited", "7"),
    (envelope('{"rssi":NaN}'), "params.rssi: numbers are limited", "7"),
    (envelope('{"rssi":-Infinity}'), "params.rssi: numbers are limited", "7"),
    (envelope('{"token":"a\\u0000b"}'), "params.token: contains a NUL character", "7"),
    (envelope('{"token":"\\ud800"}'), "params.token: is not valid Unicode", "7"),
    (envelope(json.dumps({"ssid": "x" * 70_000})), "params.ssid: strings are limited to 65536 characters", "7"),
    (envelope(json.dumps([0] * 10_001)), "params: at most 10000 items", "7"),
    (envelope("{}", rid='{"a":1}'), "id: must be a string or a number", ""),
    (envelope("{}", rid='"\\u0000"'), "id: contains a NUL character", ""),
    (envelope("{}", rid='"\\ud800"'), "id: is not valid Unicode", ""),
    (b'{"id":"3"}', "params: missing", "3"),
    (b'\xff{"params":{}}', "payload: not JSON", ""),
    (b'["params"]', "payload: must be a JSON object", ""),
])
def test_a_payload_beyond_the_limits_is_refused_naming_the_field(payload: bytes, message: str, rid: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_request(payload)
    assert refused.value.message.startswith(message) and refused.value.request_id == rid


def test_a_request_at_the_limits_is_read() -> None:
    params = {"a" * 64: "é" * limits.MAX_STRING, "n": [2**63 - 1, -(2**63), 1.5e308]}
    nested: object = params
    for _ in range(limits.MAX_DEPTH - 3):  # the envelope, these lists, params, "n": 32 levels
        nested = [nested]
    req = parse_request(json.dumps({"id": 12, "method": "m", "params": nested}).encode())
    assert (req.id, req.method, req.params) == ("12", "m", nested)
