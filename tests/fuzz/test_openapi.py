"""Every operation of the served OpenAPI document, fuzzed by schemathesis with valid signatures.

Each case is drawn from the operation's documented parameters and body (schema-conforming, or, in
schemathesis' negative mode, deliberately not), then made authentic for its dialect: the EnOS
signature over the final query and body, the OceanConnect token, the Living gateway signature
with a live ``iotToken``, the operator and EMQX hook tokens. Path and query identifiers are
sometimes swapped for ids that exist, so cases reach past "not found". Every answer is checked by
:meth:`World.send`: no internal error, nothing logged, errors name a field, nothing half-written.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from tests.fuzz.conftest import SENT
from tests.fuzz.served import Operation, body_of, operations, served_document
from tests.fuzz.world import World, json_bytes
from tests.support.fuzz import budget
from thingport.dialects.openapi import FORM

pytestmark = [pytest.mark.fuzz, pytest.mark.asyncio(loop_scope="module")]

OPERATIONS = operations()


async def test_the_fuzzed_document_is_the_served_one(world: World) -> None:
    r = await world.http.get("/docs/openapi.json")
    assert r.json() == served_document()
    assert len(OPERATIONS) >= 70


def flat(query: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Query values as they go on the wire (lists repeat the name)."""
    out = []
    for name, value in (query or {}).items():
        for v in value if isinstance(value, list) else [value]:
            out.append((name, "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)))
    return out


def encode(op: Operation, body: Any, ascii_only: bool) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if op.media_type == FORM and isinstance(body, dict):
        return urlencode({str(k): str(v) for k, v in body.items()}).encode()
    return json_bytes(body, ascii_only=ascii_only)


@pytest.mark.parametrize("op", OPERATIONS, ids=[o.label for o in OPERATIONS])
@budget(ci=3)
@given(data=st.data())
async def test_operation(world: World, op: Operation, data: st.DataObject, caplog: pytest.LogCaptureFixture
                         ) -> None:
    mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]), label="mode")
    case = data.draw(op.cases(mode), label="case")
    known = st.booleans()

    path = op.real_path
    for name, value in (case.path_parameters or {}).items():
        ids = world.ids.get(name)
        if ids and data.draw(known, label=f"known {name}"):
            value = quote(data.draw(st.sampled_from(ids)), safe="")
        path = path.replace(f"{{{name}}}", quote(str(value), safe="%"))

    query = flat(case.query)
    if op.dialect == "enos" and op.path.startswith("/connect-service"):
        query = [(k, v) for k, v in query if k not in ("orgId", "accessKey")]
        if data.draw(st.integers(0, 9)):
            query.insert(0, ("orgId", world.caller.org_id))
        query.insert(0, ("action", str(op.action)))
    elif op.dialect == "oceanconnect" and data.draw(st.integers(0, 4)):
        query = [(k, v) for k, v in query if k != "appId"]
    query = [(k, world.ids[k][0]) if k in world.ids and data.draw(known, label=f"known {k}") else (k, v)
             for k, v in query]

    body = body_of(case)
    if isinstance(body, dict) and data.draw(known, label="authentic body"):
        if op.label.startswith("enosToken"):
            body = {**body, **world.token_fields()}
        elif op.dialect == "living":
            request = body.get("request")
            body = {**body, "request": {**(request if isinstance(request, dict) else {}), "apiVer": "1.0.2",
                                        "iotToken": world.iot_token}}
        elif op.label == "ocLogin":
            body = {**body, "appId": world.app.app_key, "secret": world.app.secret}
    raw = encode(op, body, data.draw(st.booleans(), label="ascii"))
    headers = {"content-type": op.media_type} if op.media_type else {}

    sent = await world.sign(op.dialect, op.method, path, query, raw, headers,
                            scheme=data.draw(st.sampled_from(["apim", "accessKey"]), label="scheme"))
    await world.send(op.dialect, sent, caplog)
    SENT[op.dialect] += 1
