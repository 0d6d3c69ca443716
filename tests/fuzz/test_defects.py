"""The defect classes of the adversarial review (issue 11), generated against every dialect.

Each spot is a place a request carries a value (a body field, a query parameter, a header, a path
segment) and a valid value for it; each defect is derived from that value: nested 33 to 5,000
deep, a number beyond 64 bits or a double (``1e400``, 400 digits, ``Infinity``, ``NaN``), its
digits swapped for superscripts, Arabic-Indic or other scripts' digits, a trailing newline,
control characters, or stretched past every length limit. Every answer passes :meth:`World.send`'s
checks; where a spot's rules refuse a defect (``strict``), the answer must be an error naming the
spot's field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import SENT
from tests.fuzz.world import World, verdict
from tests.support.fuzz import budget

pytestmark = [pytest.mark.fuzz, pytest.mark.asyncio(loop_scope="module")]

SUPERSCRIPT = "⁰¹²³⁴⁵⁶⁷⁸⁹"
ARABIC_INDIC = "٠١٢٣٤٥٦٧٨٩"
OTHER_DIGITS = "۰۱۲۳०१२३０１２３𝟎𝟏𝟐𝟑߀߁"
NEWLINES = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x85", "\u2028"]
CONTROLS = "".join(map(chr, range(0x20))) + "\x7f"
#: deep: nested past MAX_DEPTH; number: beyond 64 bits or a double; wide: beyond 32 bits (columns
#: of 32-bit integers); the others derive from a valid value.
KINDS = ("deep", "number", "wide", "digits", "newline", "control", "overlong")


@dataclass(frozen=True)
class Defect:
    kind: str
    text: str  # the value as text (a query parameter, a header)
    json: str  # the value as JSON (a body field)


def defects(valid: str) -> st.SearchStrategy[Defect]:
    """The defect classes, each derived from ``valid`` (a value the spot accepts)."""
    def as_string(kind: str) -> Callable[[str], Defect]:
        return lambda text: Defect(kind, text, json.dumps(text))

    def nested(depth: int, brackets: str) -> Defect:
        opening, closing = (("[", "]") if brackets == "array" else ('{"a":', "}"))
        literal = opening * depth + closing * depth
        return Defect("deep", literal, literal)

    digits = st.lists(st.sampled_from(SUPERSCRIPT + ARABIC_INDIC + OTHER_DIGITS), min_size=1, max_size=8)

    def swap_digits(swapped: list[str]) -> str:
        out, it = [], iter(swapped)
        for c in valid:
            out.append(next(it, c) if c.isascii() and c.isdigit() else c)
        return "".join(out) if any(c.isdigit() for c in valid) else valid + "".join(swapped)

    big = st.one_of(st.integers(2**63, 10**30), st.integers(-(10**30), -(2**63) - 1),
                    st.integers(20, 400).map(lambda n: "9" * n))
    number = st.one_of(big.map(str), st.sampled_from(["1e400", "-1e400", "1E+999", "Infinity", "-Infinity", "NaN",
                                                        "inf", "nan", "0x10", "1_000"]))
    wide = st.one_of(st.integers(2**31, 2**63 - 1), st.integers(-(2**63), -(2**31)))
    return st.one_of(
        st.builds(nested, st.integers(33, 5000), st.sampled_from(["array", "object"])),
        number.map(lambda n: Defect("number", n, n)),
        wide.map(lambda n: Defect("wide", str(n), str(n))),
        digits.map(swap_digits).map(as_string("digits")),
        st.sampled_from(NEWLINES).map(lambda nl: valid + nl).map(as_string("newline")),
        st.tuples(st.text(CONTROLS, min_size=1, max_size=3), st.integers(0, len(valid)))
          .map(lambda t: valid[:t[1]] + t[0] + valid[t[1]:]).map(as_string("control")),
        st.integers(300, 70_000).map(lambda n: (valid * (n // max(len(valid), 1) + 1))[:n]).map(as_string("overlong")),
    )


@dataclass(frozen=True)
class Spot:
    """Where a request carries a value, and which defects its rules must refuse there."""

    name: str
    dialect: str
    method: str
    path: str
    where: str  # "body" (the template's § is the value's JSON), "query", "header" or "path"
    template: str  # the body (or the parameter / header name)
    field: str  # what an error answer must name
    valid: Callable[[World], str]
    strict: frozenset[str] = frozenset()


def now() -> str:
    return str(int(time.time() * 1000))


def const(value: str) -> Callable[[World], str]:
    return lambda _: value


def enos_device(field: str) -> str:
    """A v2.1 create-device body with ``field`` (and the world's product) in it."""
    return '{"productKey": "%(product)s", "deviceName": "d", "timezone": "+08:00", ' + field + "}"


#: What an identifier's or a number's rules refuse (a wide number may be a valid value).
IDENTIFIER = NUMBER = frozenset(KINDS) - {"wide"}
SPOTS = [
    # EnOS Connect Service and the APIM token service
    Spot("deviceKey", "enos", "POST", "/connect-service/v2.1/devices?action=create", "body",
         enos_device('"deviceKey": §'), "deviceKey", const("fuzz-key-1"), IDENTIFIER),
    Spot("timezone", "enos", "POST", "/connect-service/v2.1/devices?action=create", "body",
         '{"productKey": "%(product)s", "deviceName": "d", "timezone": §}', "timezone", const("+08:00"),
         IDENTIFIER),
    Spot("tag key", "enos", "POST", "/connect-service/v2.1/devices?action=create", "body",
         enos_device('"deviceTags": {§: "v"}'), "deviceTags", const("site-1"),
         frozenset({"deep", "number", "digits", "newline", "control", "overlong"})),
    Spot("tag value", "enos", "POST", "/connect-service/v2.1/devices?action=create", "body",
         enos_device('"deviceTags": {"site": §}'), "deviceTags", const("north 1"),
         frozenset({"deep", "number", "newline", "overlong"})),
    Spot("attribute", "enos", "POST", "/connect-service/v2.1/devices?action=create", "body",
         enos_device('"deviceAttributes": {"a": §}'), "deviceAttributes", const("1"),
         frozenset({"deep"})),
    Spot("deviceName", "enos", "POST", "/connect-service/v2.4/devices?action=create", "body",
         '{"productKey": "%(product)s", "deviceName": {"defaultValue": §}, "timezone": "UTC"}', "deviceName",
         const("meter 1"), frozenset({"deep", "number", "overlong"})),
    Spot("pageNo", "enos", "POST", "/connect-service/v2.1/devices?action=search", "body",
         '{"pagination": {"pageNo": §, "pageSize": 10}}', "pageNo", const("1"), NUMBER),
    Spot("expression", "enos", "POST", "/connect-service/v2.1/products?action=search", "body",
         '{"expression": §}', "expression", const("(productKey = 'p1' or modelId in ('m1', 'm2'))"),
         frozenset({"deep", "number"})),
    Spot("legacy pageSize", "enos", "GET", "/connectService/products", "query", "pageSize", "pageSize", const("10"),
         NUMBER - {"deep"}),
    Spot("productKey query", "enos", "GET", "/connect-service/v2.1/products?action=get", "query", "productKey",
         "productKey", lambda w: w.ids["productKey"][0]),
    Spot("apim-timestamp", "enos", "GET", "/connect-service/v2.1/devices?action=getStats", "header",
         "apim-timestamp", "apim-timestamp", lambda _: now(), NUMBER - {"deep"}),
    Spot("token timestamp", "enos", "POST", "/apim-token-service/v2.0/token/get", "body",
         '{"appKey": "%(app)s", "encryption": "00", "timestamp": §}', "timestamp", lambda _: now(), NUMBER),
    # OceanConnect
    Spot("login appId", "oceanconnect", "POST", "/iocm/app/sec/v1.1.0/login", "form", "appId", "appId",
         lambda w: w.app.app_key),
    Spot("logout", "oceanconnect", "POST", "/iocm/app/sec/v1.1.0/logout", "body", '{"accessToken": §}',
         "accessToken", const("0" * 32), frozenset({"deep", "number"})),
    Spot("nodeId", "oceanconnect", "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", "body", '{"nodeId": §}',
         "nodeId", const("fuzz-node-2"), IDENTIFIER),
    Spot("timeout", "oceanconnect", "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", "body",
         '{"nodeId": "fuzz-node-3", "timeout": §}', "timeout", const("60"), NUMBER),
    Spot("psk", "oceanconnect", "POST", "/iocm/app/reg/v1.1.0/deviceCredentials", "body",
         '{"nodeId": "fuzz-node-4", "psk": §}', "psk", const("0123456789abcdef"), IDENTIFIER),
    Spot("pageNo query", "oceanconnect", "GET", "/iocm/app/dm/v1.4.0/devices", "query", "pageNo", "pageNo",
         const("1"), NUMBER - {"deep"}),
    Spot("startTime", "oceanconnect", "GET", "/iocm/app/dm/v1.4.0/devices?pageNo=0", "query", "startTime",
         "startTime", const("20151212T121212Z"), NUMBER - {"deep"}),
    Spot("deviceId", "oceanconnect", "GET", "/iocm/app/dm/v1.4.0/devices/§", "path", "", "device",
         lambda w: w.ids["device_id"][0], frozenset({"control"})),
    # Living
    Spot("X-Ca-Timestamp", "living", "POST", "/living/home/query", "header", "x-ca-timestamp", "Timestamp",
         lambda _: now(), NUMBER - {"deep"}),
    Spot("apiVer", "living", "POST", "/living/home/query", "body",
         '{"id": "1", "request": {"apiVer": §, "iotToken": "%(iot)s"}, "params": {"pageNo": 1, "pageSize": 10}}',
         "apiVer", const("1.0.2"), IDENTIFIER),
    Spot("params pageNo", "living", "POST", "/living/home/query", "body",
         '{"request": {"apiVer": "1.0.2", "iotToken": "%(iot)s"}, "params": {"pageNo": §, "pageSize": 10}}',
         "pageNo", const("1"), NUMBER),
    Spot("home name", "living", "POST", "/living/home/create", "body",
         '{"request": {"apiVer": "1.0.2", "iotToken": "%(iot)s"}, "params": {"name": §}}', "name",
         const("home 1"), frozenset({"deep", "number"})),
    Spot("permit time", "living", "POST", "/thing/gateway/permit", "body",
         '{"request": {"apiVer": "1.0.2", "iotToken": "%(iot)s"}, "params": {"iotId": "x", "time": §}}', "time",
         const("60"), NUMBER),
    Spot("envelope id", "living", "POST", "/living/home/query", "body",
         '{"id": §, "request": {"apiVer": "1.0.2", "iotToken": "%(iot)s"}, "params": {"pageNo": 1, "pageSize": 1}}',
         "id", const("42"), frozenset({"deep", "number"})),
    # the operator API
    Spot("org name", "admin", "POST", "/admin/v1/orgs", "body", '{"name": §}', "name", const("Org 1"),
         frozenset({"deep", "number"})),
    Spot("orgId", "admin", "POST", "/admin/v1/orgs", "body", '{"name": "n", "orgId": §}', "orgId",
         const("o-fuzz-2"), IDENTIFIER),
    Spot("modelId", "admin", "POST", "/admin/v1/orgs/o-fuzz/models", "body", '{"modelId": §}', "modelId",
         const("model-2"), frozenset({"deep", "number"})),
    Spot("categoryId", "admin", "PUT", "/admin/v1/living/orgs/o-fuzz/products/%(product)s", "body",
         '{"categoryId": §}', "categoryId", const("7"), NUMBER),
    Spot("apps orgId", "admin", "GET", "/admin/v1/apps", "query", "orgId", "orgId", const("o-fuzz")),
    # the EMQX hooks
    Spot("clientid", "emqx", "POST", "/mqtt/emqx/authn", "body", '{"clientid": §, "username": "u", "password": "p"}',
         "clientid", const("client-1"), frozenset({"deep", "number"})),
    Spot("topic", "emqx", "POST", "/mqtt/emqx/authz", "body",
         '{"clientid": "c", "username": "u", "topic": §, "action": "publish"}', "topic", const("/sys/a/b"),
         frozenset({"deep", "number"})),
    # the RabbitMQ auth backend (form fields; a refusal is "deny", the reason in X-Thingport-Reason)
    Spot("username", "rabbitmq", "POST", "/mqtt/rabbitmq/user", "form", "username", "username", const("pk&dk")),
    Spot("routing_key", "rabbitmq", "POST", "/mqtt/rabbitmq/topic", "form", "routing_key", "routing_key",
         const(".sys.pk.dk.thing.topo.add")),
]
DIALECTS = sorted({s.dialect for s in SPOTS})


def placed(spot: Spot, world: World, defect: Defect
           ) -> tuple[str, list[tuple[str, str]], bytes, dict[str, str | bytes]]:
    """The request of ``spot`` carrying ``defect``: (path, query, body, headers)."""
    names = {"product": world.ids["productKey"][0], "app": world.app.app_key, "iot": world.iot_token}
    path, _, query_text = (spot.path % names if "%(" in spot.path else spot.path).partition("?")
    query = [(p.partition("=")[0], p.partition("=")[2]) for p in query_text.split("&") if p]
    if spot.dialect == "enos" and not path.startswith("/apim-token-service"):
        query.append(("orgId", world.caller.org_id))
    body, headers = b"", dict[str, str | bytes]()
    if spot.where == "body":
        body = (spot.template % names if "%(" in spot.template else spot.template).replace("§", defect.json).encode(
            "utf-8", "surrogatepass")
        headers["content-type"] = "application/json"
    elif spot.where == "form":
        body = f"{spot.template}={quote(defect.text)}&secret=x".encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    elif spot.where == "query":
        query.append((spot.template, defect.text))
    elif spot.where == "path":
        path = path.replace("§", quote(defect.text, safe=""))
    return path, [(k, v) for k, v in query], body, headers


@pytest.mark.parametrize("dialect", DIALECTS)
@budget(ci=25)
@given(data=st.data())
async def test_defect_classes(world: World, dialect: str, data: st.DataObject, caplog: pytest.LogCaptureFixture
                              ) -> None:
    spot = data.draw(st.sampled_from([s for s in SPOTS if s.dialect == dialect]), label="spot")
    defect = data.draw(defects(spot.valid(world)), label="defect")
    if spot.where == "header" and any(c in CONTROLS for c in defect.text):
        return  # not sendable: the HTTP parser refuses a control character in a header
    if spot.where != "body" and len(defect.text) > 8000:
        defect = Defect(defect.kind, defect.text[:8000], defect.json)  # a URL or a head stays under the server's 64 KiB
    path, query, body, headers = placed(spot, world, defect)
    if spot.where == "header":  # sent as UTF-8 bytes; a server reads them as Latin-1
        headers[spot.template] = defect.text.encode("utf-8", "surrogatepass")
    sent = await world.sign(dialect, spot.method, path, query, body, headers)
    response = await world.send(dialect, sent, caplog)
    SENT[dialect] += 1
    if defect.kind in spot.strict:
        failed, _ = verdict(dialect, response)
        assert failed, f"{spot.name}: {defect.kind} {defect.text[:80]!r} was accepted: {sent.describe()}"
        said = response.text + response.headers.get("x-ca-error-message", "") + response.headers.get(
            "x-thingport-reason", "")
        # a literal that is not JSON at all (Infinity, 0x10, a key that is not a string) is the body's fault
        fields = {spot.field, "body"} if defect.kind in ("deep", "number") and spot.where == "body" else {spot.field}
        assert any(f in said for f in fields), f"{spot.name}: the answer names none of {fields}: {sent.describe()}"
