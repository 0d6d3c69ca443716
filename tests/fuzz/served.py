"""The served OpenAPI document as the fuzzer's list of operations, one per EnOS action.

An EnOS path multiplexes its operations on the ``action`` query parameter and names each one's
body in ``x-thingport-actions``; the fuzzer splits it into one operation per action (on a path
of its own that :class:`Operation` maps back), so every action gets bodies of its own type.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from schemathesis import openapi as schemathesis_openapi
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode

from thingport.app import create_app
from thingport.settings import Settings

SPLIT = "/__action__/"
DIALECTS = (("/connect-service/", "enos"), ("/connectService/", "enos"), ("/apim-token-service/", "enos"),
            ("/iocm/", "oceanconnect"), ("/admin/", "admin"), ("/mqtt/emqx/", "emqx"),
            ("/mqtt/rabbitmq/", "rabbitmq"))


@dataclass(frozen=True)
class Operation:
    label: str  # the operationId, with ":action" for an EnOS action
    method: str
    path: str  # as the fuzzer's document has it
    media_type: str | None

    @property
    def real_path(self) -> str:
        return self.path.split(SPLIT)[0]

    @property
    def action(self) -> str | None:
        return self.path.split(SPLIT)[1] if SPLIT in self.path else None

    @property
    def dialect(self) -> str:
        return next((name for prefix, name in DIALECTS if self.path.startswith(prefix)), "living")

    def cases(self, mode: GenerationMode) -> st.SearchStrategy[Any]:
        return fuzzed_schema()[self.path][self.method].as_strategy(generation_mode=mode)


@cache
def served_document() -> dict[str, Any]:
    """The document ``/docs/openapi.json`` serves (the app is built, not run)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=Path(tmp), operator_token="x", mqtt_port=0))
        return app.openapi_schema.to_schema()


@cache
def fuzzed_document() -> dict[str, Any]:
    """The served document with each EnOS action as an operation of its own."""
    doc = copy.deepcopy(served_document())
    for path in list(doc["paths"]):
        item = doc["paths"][path]
        for method, op in list(item.items()):
            actions = op.get("x-thingport-actions") if isinstance(op, dict) else None
            if actions is None:
                continue
            del item[method]
            for name, body in actions.items():
                split = copy.deepcopy(op)
                del split["x-thingport-actions"]
                split["operationId"] = f"{op['operationId']}:{name}"
                split["parameters"] = [p for p in split["parameters"] if p["name"] != "action"]
                if body is None:
                    split.pop("requestBody", None)
                else:
                    split["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
                doc["paths"].setdefault(f"{path}{SPLIT}{name}", {})[method] = split
        if not item:
            del doc["paths"][path]
    return doc


@cache
def fuzzed_schema() -> Any:
    return schemathesis_openapi.from_dict(fuzzed_document())


def operations() -> list[Operation]:
    out = []
    for path, item in fuzzed_document()["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                content = op.get("requestBody", {}).get("content", {})
                out.append(Operation(op["operationId"], method.upper(), path, next(iter(content), None)))
    return sorted(out, key=lambda o: o.label)


def body_of(case: Any) -> Any:
    """The case's body, or None when the case has none."""
    return None if isinstance(case.body, NotSet) else case.body
