"""Every mutating route leaves an audit record, from the route table itself (issue 14 §5).

Each route that changes something (POST, PUT, PATCH, DELETE, and each EnOS action that is not a
``get``/``search``) is called without credentials: the refused attempt must be in the trail under
the request id the answer carries. A route added later is in the table, so it is checked too.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from litestar.routes import HTTPRoute

from thingport.app import create_app
from thingport.dialects.enos.routes import ACTIONS
from thingport.observe.http import UNAUDITED, dialect_of, mutates
from thingport.services.container import Services
from thingport.settings import Settings
from thingport.store.audit import AuditFilter

MUTATING = ("POST", "PUT", "PATCH", "DELETE")


def mutating_calls() -> list[tuple[str, str, str]]:
    """(method, path, what) of every mutating route of the app, path parameters filled in."""
    app = create_app(Settings(operator_token="t", mqtt_port=0))
    calls: list[tuple[str, str, str]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method, handler in route.route_handler_map.items():
            if method not in MUTATING:
                continue
            dialect = dialect_of({"route_handler": handler[0] if isinstance(handler, tuple) else handler,
                                  "path_template": route.path})
            if dialect in UNAUDITED or not (route.path.startswith("/connect-service/")
                                            or mutates(method, route.path, dialect)):
                continue
            if route.path.startswith("/connect-service/"):
                resource = route.path.rsplit("/", 1)[-1]
                for (res, name), act in ACTIONS.items():
                    if res == resource and act.method == method and not name.startswith(("get", "search")):
                        calls.append((method, f"/connect-service/v2.1/{resource}?action={name}&orgId=o",
                                      f"{resource}.{name}"))
            else:
                calls.append((method, path, f"{method} {route.path}"))
    return calls


CALLS = mutating_calls()


def test_the_table_is_not_empty() -> None:
    whats = {w for _, _, w in CALLS}
    assert {"devices.create", "devices.delete", "products.update", "device-topos.addSubDevice"} <= whats
    assert any(w.startswith("POST /iocm/") for w in whats) and any(w.startswith("PUT /admin/") for w in whats)
    assert "POST /living/home/create" in whats and "POST /living/home/query" not in whats


@pytest.mark.parametrize("method, path, what", CALLS, ids=[w for _, _, w in CALLS])
async def test_a_refused_change_is_audited(http: httpx.AsyncClient, services: Services, method: str, path: str,
                                           what: str) -> None:
    kwargs: dict[str, Any] = {"content": b"{}", "headers": {"Content-Type": "application/json"}}
    r = await http.request(method, path, **kwargs)
    rid = r.headers["x-request-id"]
    found = [rec for rec in await services.audit.search(AuditFilter(), 50) if rec.request_id == rid]
    assert len(found) == 1, (r.status_code, r.text)
    [record] = found
    assert record.outcome == "failed" and record.error and record.actor == "", record
    assert _plain(record.action) == _plain(what), record


def _plain(action: str) -> str:
    """An action with its path parameters' types dropped (``{org_id:str}`` and ``{org_id}`` alike)."""
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", r"{\1}", action)
