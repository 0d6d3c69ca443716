"""A console form body, read with the kit's limits and turned into typed values that name their field."""

from __future__ import annotations

from typing import Any

from thingport.dialects.common import digits, form_pairs, read_body
from thingport.domain.errors import InvalidArgument
from thingport.services.container import Services

#: Characters of one form value; the validators hold fields with a limit of their own to it.
MAX_VALUE = 16_384


class Form:
    """The fields of an ``application/x-www-form-urlencoded`` body (HTML forms, htmx)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        for name, value in pairs:
            if len(value) > MAX_VALUE:
                raise InvalidArgument(f"{name}: at most {MAX_VALUE} characters", field=name)

    @classmethod
    async def read(cls, request: Any, services: Services) -> Form:
        body = await read_body(request, services)
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise InvalidArgument("body: the form is not UTF-8", field="body") from exc
        return cls(form_pairs(text))

    def get(self, name: str) -> str | None:
        """The last value given for ``name`` (None: not in the form)."""
        found = None
        for n, v in self._pairs:
            if n == name:
                found = v
        return found

    def all(self, name: str) -> list[str]:
        return [v for n, v in self._pairs if n == name]

    def text(self, name: str) -> str:
        """A value that must be there and not blank, trimmed."""
        value = (self.get(name) or "").strip()
        if not value:
            raise InvalidArgument(f"{name}: is required", field=name)
        return value

    def optional(self, name: str) -> str | None:
        """A trimmed value, None when absent or blank."""
        value = (self.get(name) or "").strip()
        return value or None

    def flag(self, name: str) -> bool:
        """A checkbox: present (any value but ``false``/``0``) means ticked."""
        value = self.get(name)
        return value is not None and value not in ("", "0", "false", "off")

    def number(self, name: str, lo: int, hi: int) -> int | None:
        """An integer in ``lo..hi`` in ASCII digits; None when blank."""
        raw = self.optional(name)
        if raw is None:
            return None
        value = digits(raw)
        if value is None or not lo <= value <= hi:
            raise InvalidArgument(f"{name}: must be a whole number from {lo} to {hi}", field=name)
        return value

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name)
        if value not in allowed:
            raise InvalidArgument(f"{name}: must be one of {', '.join(allowed)}", field=name)
        return value
