"""What any one request may carry, whichever way it arrives (docs/security.md, "Limits").

The numbers live here, beside the validators, so that every front door reads the same ones, and so
does the one walk that holds a decoded JSON document to them (:func:`check`): the dialect kit
screens HTTP bodies with it (``dialects/common.py``) and the MQTT request envelope its payloads
(``connect/messages.py``), so both refuse the same values with the same words. Each front door
decodes in its own way (msgspec for bodies; the standard library for payloads, which also reads the
``NaN`` some device SDKs write) with the number hooks below, and turns :class:`Beyond` into its own
error.
"""

from __future__ import annotations

import math
from typing import Any

#: The longest grace period a rotation may give the credential it replaces (a certificate renewal's
#: ``gracePeriod``, a device secret's or application secret's ``grace``), seconds: 30 days.
MAX_GRACE_S = 30 * 86_400
#: Arrays and objects nested deeper than this are refused before decoding. msgspec recurses once
#: per level and fails with RecursionError near Python's limit (~1,000: a 2 KB body); values stored
#: in the database are read back recursively too. No vendor body nests more than 5 levels.
MAX_DEPTH = 32
#: Characters in one string, object keys included; fields with a shorter limit of their own (names,
#: descriptions, identifiers) are checked by the validators.
MAX_STRING = 65_536
#: Items of one array and members of one object.
MAX_ITEMS = 10_000
#: Every integer is a signed 64-bit value: what both databases store and the JSON encoder writes
#: back. Fields with a narrower range (page numbers, timeouts) check their own.
INT64 = (-(2**63), 2**63 - 1)
#: Longer integer literals are not parsed at all: none fits 64 bits, and ``int`` is quadratic in
#: the length (and refuses more than 4,300 digits).
MAX_NUMBER_TEXT = 64

#: Object keys are cut to this length in a field's name, so an error message stays short.
_KEY_IN_NAME = 64
_INTEGER_RANGE = "integers are limited to 64 bits"
_FLOAT_RANGE = "numbers are limited to the range of a 64-bit float"


class Beyond(ValueError):
    """A value beyond a limit. ``field`` names it (``params[0].sign``; empty: the whole document),
    printable whatever the document held (a NUL is ``\\0``, a lone surrogate escaped)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode()
        self.reason = reason

    def message(self, root: str) -> str:
        """``field: reason``, with ``root`` (``body``, ``payload``) naming the whole document."""
        return f"{self.field or root}: {self.reason}"


class Unfit:
    """A JSON number no field can hold (beyond a double, NaN, an integer literal too long to
    parse), kept by the decoder in its place so that the walk can name its field: no decoder knows
    the path of a value inside a free-form object."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_UNFIT_INTEGER = Unfit(_INTEGER_RANGE)
_UNFIT_FLOAT = Unfit(_FLOAT_RANGE)


def json_int(text: str) -> int | Unfit:
    """The hook for an integer literal (``parse_int``); its range is checked by :func:`check`."""
    return int(text) if len(text) <= MAX_NUMBER_TEXT else _UNFIT_INTEGER


def json_float(text: str) -> float | Unfit:
    """The hook for a fraction or exponent literal (``parse_float``, msgspec's ``float_hook``)."""
    value = float(text)
    return value if math.isfinite(value) else _UNFIT_FLOAT


def json_constant(_: str) -> Unfit:
    """The hook for ``NaN``, ``Infinity`` and ``-Infinity`` (``parse_constant``)."""
    return _UNFIT_FLOAT


def check(value: Any, path: str = "", depth: int = 1) -> None:
    """Walk a decoded JSON value for the first value beyond a limit; :class:`Beyond` names it."""
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, Unfit):
        raise Beyond(path, value.reason)
    elif isinstance(value, int) and not isinstance(value, bool):
        if not INT64[0] <= value <= INT64[1]:
            raise Beyond(path, _INTEGER_RANGE)
    elif isinstance(value, list | dict):
        if depth > MAX_DEPTH:
            raise Beyond(path, f"arrays and objects nested more than {MAX_DEPTH} levels deep")
        if len(value) > MAX_ITEMS:
            raise Beyond(path, f"at most {MAX_ITEMS} items")
        if isinstance(value, list):
            for i, item in enumerate(value):
                check(item, f"{path}[{i}]", depth + 1)
            return
        for key, item in value.items():
            name = f"{path}.{key[:_KEY_IN_NAME]}" if path else key[:_KEY_IN_NAME]
            check_text(key, name)
            check(item, name, depth + 1)


def check_text(text: str, path: str) -> None:
    """No store takes NUL or a lone surrogate (``"\\ud800"``), and no field is longer."""
    if len(text) > MAX_STRING:
        raise Beyond(path, f"strings are limited to {MAX_STRING} characters")
    if "\x00" in text:
        raise Beyond(path, "contains a NUL character")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise Beyond(path, "is not valid Unicode") from None
