"""What the OpenAPI document says of the requests the dialects read themselves.

The vendor dialects read the raw body (their signatures cover its bytes) and decode it with the
kit's :func:`~thingport.dialects.common.decode`, so Litestar never sees a body type to document. A
route names its body struct and query parameters here instead, through ``operation_class``; the
structs' schemas come from msgspec (constraints such as ``maxItems`` included) and are published
once under ``components/schemas`` (:class:`Config`, the app's ``OpenAPIConfig``).

The pages at ``/docs`` (Swagger UI) load their script, style and icon from ``/docs/assets``, files
vendored in ``swagger_ui/`` with their licences (:func:`ui`, :func:`ui_assets`): a host without
internet access still shows the API.

An EnOS path carries many operations told apart by the ``action`` query parameter; its operation
lists every action's body in a ``oneOf`` and maps each action to its body in the
``x-thingport-actions`` extension (docs/design.md, "The OpenAPI document").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import msgspec
from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Example,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.static_files import create_static_files_router

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
_REF = "#/components/schemas/{name}"
_DOCUMENTED: list[Any] = []
_cache: tuple[int, dict[Any, dict[str, Any]], dict[str, Any]] = (0, {}, {})
#: Where the pages find Swagger UI's files (``swagger_ui/README.md`` says which release).
UI_ASSETS = "/docs/assets"
_UI_FILES = Path(__file__).with_name("swagger_ui")


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


def ui() -> list[OpenAPIRenderPlugin]:
    """Swagger UI at ``/docs`` and ``/docs/swagger``, every file it loads served by Thingport.

    Litestar's plugins load their UI from a CDN (Scalar also fetches fonts at run time), which
    leaves the page blank on an offline host; only Swagger UI is vendored (2 MB), hence one UI.
    """
    return [SwaggerRenderPlugin(
        path=["/", "/swagger"], js_url=f"{UI_ASSETS}/swagger-ui-bundle.js", css_url=f"{UI_ASSETS}/swagger-ui.css",
        standalone_preset_js_url=f"{UI_ASSETS}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{UI_ASSETS}/favicon-32x32.png'>")]


def ui_assets() -> Router:
    """The vendored files under :data:`UI_ASSETS`; cached a day, as they change only with a release."""
    return create_static_files_router(UI_ASSETS, [_UI_FILES], name="docs-assets", include_in_schema=False,
                                      cache_control=CacheControlHeader(max_age=86_400))


def schema(value: Mapping[str, Any]) -> Schema:
    """A JSON Schema written as a dict, where Litestar's spec takes a :class:`Schema`."""
    return cast(Schema, dict(value))


def query(name: str, description: str, *, required: bool = False, kind: OpenAPIType = OpenAPIType.STRING,
          enum: Sequence[str] | None = None) -> Parameter:
    return Parameter(name=name, param_in="query", description=description, required=required,
                     schema=Schema(type=kind, enum=list(enum) if enum else None))


@dataclass
class _Example(Example):
    """An example kept as written: Litestar drops every null member of a dict (``"data": null``,
    which every EnOS error carries) when it writes the document."""

    def to_schema(self) -> dict[str, Any]:
        out = super().to_schema()
        out["value"] = self.value
        return out


@dataclass(frozen=True)
class Answer:
    """One documented response of an operation: what it means, its body (as ``documented``'s
    ``body``: a registered type, a JSON Schema, or a function writing one) and named examples.

    The vendor dialects answer from their own envelopes with the status the vendor uses (EnOS: 200
    even for most errors), which Litestar cannot see; without this it claims its defaults.
    """

    description: str
    body: Any = None
    examples: Mapping[str, Any] = field(default_factory=dict)
    media_type: str = JSON

    def response(self) -> OpenAPIResponse:
        content = _content(self.body)
        examples: dict[str, Example | Reference] = {
            name: _Example(summary=name, value=value) for name, value in self.examples.items()}
        return OpenAPIResponse(description=self.description, content={self.media_type: OpenAPIMediaType(
            schema=schema(content) if content is not None else None, examples=examples or None)})


def _content(body: Any) -> Any:
    """The schema ``body`` stands for (see :func:`documented`)."""
    if isinstance(body, type):
        return ref(body)
    if isinstance(body, Mapping):
        return dict(body)
    return body() if body is not None else None


def documented(body: Any = None, *, params: Sequence[Parameter] = (), media_type: str = JSON,
               bodies: Mapping[str, Any] | None = None, uses: Sequence[Any] = (),
               enums: Mapping[str, Sequence[str]] | None = None,
               answers: Mapping[int, Answer] | None = None) -> type[Operation]:
    """An ``operation_class`` that documents ``params`` and a body: ``body`` (a struct, a JSON Schema,
    or a function that writes one once every type is registered, from the types in ``uses``), or, for an
    EnOS path, ``bodies``: each value of the ``action`` parameter to its body type (None: no body).
    ``enums`` lists the values of parameters Litestar documents as plain strings (a path's).
    ``answers``, when given, are the operation's responses by status, in place of Litestar's."""
    register(body if isinstance(body, type) else None, *(bodies or {}).values(), *uses,
             *(a.body for a in (answers or {}).values() if isinstance(a.body, type)))

    @dataclass
    class Documented(Operation):
        def __post_init__(self) -> None:
            content: Any = None
            if bodies is not None:
                kinds = [ref(kind) for kind in dict.fromkeys(k for k in bodies.values() if k)]
                content = {"oneOf": kinds} if kinds else None
            else:
                content = _content(body)
            if answers is not None:
                self.responses = {str(status): answer.response() for status, answer in answers.items()}
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
