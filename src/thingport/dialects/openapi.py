"""What the OpenAPI document says of the requests the dialects read themselves.

The vendor dialects read the raw body (their signatures cover its bytes) and decode it with the
kit's :func:`~thingport.dialects.common.decode`, so Litestar never sees a body type to document. A
route names its body struct and query parameters here instead, through ``operation_class``; the
structs' schemas come from msgspec (constraints such as ``maxItems`` included) and are published
once under ``components/schemas`` (:class:`Config`, the app's ``OpenAPIConfig``).

An EnOS path carries many operations told apart by the ``action`` query parameter; its operation
lists every action's body in a ``oneOf`` and maps each action to its body in the
``x-thingport-actions`` extension (docs/design.md, "The OpenAPI document").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

import msgspec
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIType, Operation, Parameter, RequestBody, Schema

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
_REF = "#/components/schemas/{name}"
_DOCUMENTED: list[Any] = []
_cache: tuple[int, dict[Any, dict[str, Any]], dict[str, Any]] = (0, {}, {})


def _schemas() -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
    """Each documented type's reference and every component, from one msgspec call: it names a
    component by its class, qualified by module where two classes share a name."""
    global _cache
    if _cache[0] != len(_DOCUMENTED):
        refs, components = msgspec.json.schema_components(_DOCUMENTED, ref_template=_REF)
        _cache = (len(_DOCUMENTED), dict(zip(_DOCUMENTED, refs, strict=True)), dict(components))
    return _cache[1], _cache[2]


def register(*kinds: Any) -> None:
    """Publish ``kinds`` under ``components/schemas``; called at import, before any document exists."""
    for kind in kinds:
        if kind is not None and kind not in _DOCUMENTED:
            _DOCUMENTED.append(kind)


def ref(kind: Any) -> dict[str, Any]:
    """The schema of a registered type (a ``$ref`` to its component, for a struct)."""
    return _schemas()[0][kind]


def components() -> dict[str, Any]:
    """The components of every documented type."""
    return _schemas()[1]


@dataclass
class Document(OpenAPI):
    """The document with the documented types beside the components Litestar generates (it
    replaces ``components.schemas`` with its own when it builds the paths)."""

    def to_schema(self) -> dict[str, Any]:
        out = super().to_schema()
        schemas = out.setdefault("components", {}).setdefault("schemas", {})
        ours = components()
        if clash := set(schemas) & set(ours):
            raise ValueError(f"OpenAPI components named twice: {sorted(clash)}")
        schemas.update(ours)
        return out


@dataclass
class Config(OpenAPIConfig):
    """``OpenAPIConfig`` whose document is a :class:`Document`."""

    def to_openapi_schema(self) -> OpenAPI:
        doc = super().to_openapi_schema()
        return Document(**{f.name: getattr(doc, f.name) for f in fields(doc)})


def schema(value: Mapping[str, Any]) -> Schema:
    """A JSON Schema written as a dict, where Litestar's spec takes a :class:`Schema`."""
    return cast(Schema, dict(value))


def query(name: str, description: str, *, required: bool = False, kind: OpenAPIType = OpenAPIType.STRING,
          enum: Sequence[str] | None = None) -> Parameter:
    return Parameter(name=name, param_in="query", description=description, required=required,
                     schema=Schema(type=kind, enum=list(enum) if enum else None))


def documented(body: Any = None, *, params: Sequence[Parameter] = (), media_type: str = JSON,
               bodies: Mapping[str, Any] | None = None, uses: Sequence[Any] = (),
               enums: Mapping[str, Sequence[str]] | None = None) -> type[Operation]:
    """An ``operation_class`` that documents ``params`` and a body: ``body`` (a struct, a JSON Schema,
    or a function that writes one once every type is registered, from the types in ``uses``), or, for an
    EnOS path, ``bodies``: each value of the ``action`` parameter to its body type (None: no body).
    ``enums`` lists the values of parameters Litestar documents as plain strings (a path's)."""
    register(body if isinstance(body, type) else None, *(bodies or {}).values(), *uses)

    @dataclass
    class Documented(Operation):
        def __post_init__(self) -> None:
            content: Any = None
            if bodies is not None:
                kinds = [ref(kind) for kind in dict.fromkeys(k for k in bodies.values() if k)]
                content = {"oneOf": kinds} if kinds else None
            elif isinstance(body, type):
                content = ref(body)
            elif isinstance(body, Mapping):
                content = dict(body)
            elif body is not None:
                content = body()
            if content is not None:
                self.request_body = RequestBody(content={media_type: OpenAPIMediaType(schema=schema(content))},
                                                required=bodies is None)
            for p in self.parameters or []:
                if isinstance(p, Parameter) and p.name in (enums or {}):
                    p.schema = Schema(type=OpenAPIType.STRING, enum=list((enums or {})[p.name]))
            self.parameters = [*(self.parameters or []), *params] or None

        def to_schema(self) -> dict[str, Any]:
            out = super().to_schema()
            if bodies is not None:
                out["x-thingport-actions"] = {name: ref(kind) if kind else None for name, kind in bodies.items()}
            return out

    return Documented
