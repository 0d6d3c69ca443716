"""The EnOS search expression language (docs/reference/enos.md §2.7), parsed into a small AST.

Grammar (case-insensitive keywords, single or double quotes)::

    expr    := and_expr ("or" and_expr)*
    and_expr:= atom ("and" atom)*
    atom    := "(" expr ")" | ["not"] "exists" "(" field ")" | field op
    op      := ("=" | "!=") value | "in" "(" value ("," value)* ")" | "like" value

The store turns the AST into SQL; which fields a search allows is the caller's catalogue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from thingport.domain.errors import InvalidArgument

MAX_EXPRESSION = 4096
#: Parentheses nested deeper than this are refused: the parser and the SQL built from the tree
#: recurse once per level, and 4,096 characters hold 1,300 levels.
MAX_NESTING = 32


class FieldKind(Enum):
    """How a field is stored, which decides the operators it supports."""

    COLUMN = "column"  # a plain column: =, !=, in
    NAME = "name"  # a StringI18n name: like, =, != (optionally .locale)
    MAP = "map"  # tags / attributes: field.key with =, !=, in, exists
    STATUS = "status"  # derived device status


@dataclass(frozen=True, slots=True)
class Compare:
    field: str  # catalogue name, e.g. "productKey", "deviceTags", "deviceName"
    key: str | None  # map key or name locale
    op: str  # "=", "!=", "in", "like"
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Exists:
    field: str
    key: str
    negated: bool


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Expr, ...]


Expr = Compare | Exists | BoolOp

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>!=|=|\(|\)|,)
      | (?P<word>[A-Za-z0-9_.\-:/*%+]+)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "in", "like", "exists", "not"}


@dataclass(slots=True)
class _Tok:
    kind: str
    text: str


_TRAILING_SPACE = re.compile(r"\s*")


def _tokenize(src: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(src):
        if _TRAILING_SPACE.fullmatch(src, pos):
            break
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise InvalidArgument(f"expression: unexpected character at position {pos}", field="expression")
        pos = m.end()
        if m.group("str") is not None:
            raw = m.group("str")[1:-1]
            out.append(_Tok("str", re.sub(r"\\(.)", r"\1", raw)))
        elif m.group("op") is not None:
            out.append(_Tok("op", m.group("op")))
        else:
            word = m.group("word")
            out.append(_Tok("kw" if word.lower() in _KEYWORDS else "word", word))
    return out


class _Parser:
    def __init__(self, tokens: list[_Tok], catalogue: Mapping[str, FieldKind]) -> None:
        self.toks = tokens
        self.i = 0
        self.catalogue = catalogue
        self.depth = 0

    def _peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _next(self, what: str) -> _Tok:
        tok = self._peek()
        if tok is None:
            raise InvalidArgument(f"expression: ended early, expected {what}", field="expression")
        self.i += 1
        return tok

    def _is_kw(self, word: str) -> bool:
        tok = self._peek()
        return tok is not None and tok.kind == "kw" and tok.text.lower() == word

    def _expect_op(self, op: str) -> None:
        tok = self._next(f"'{op}'")
        if tok.kind != "op" or tok.text != op:
            raise InvalidArgument(f"expression: expected '{op}' but found '{tok.text}'", field="expression")

    def parse(self) -> Expr:
        expr = self._or()
        if self._peek() is not None:
            raise InvalidArgument(
                f"expression: unexpected '{self._peek().text}'",  # type: ignore[union-attr]
                field="expression",
            )
        return expr

    def _or(self) -> Expr:
        items = [self._and()]
        while self._is_kw("or"):
            self.i += 1
            items.append(self._and())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def _and(self) -> Expr:
        items = [self._atom()]
        while self._is_kw("and"):
            self.i += 1
            items.append(self._atom())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def _atom(self) -> Expr:
        tok = self._peek()
        if tok is not None and tok.kind == "op" and tok.text == "(":
            self.i += 1
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise InvalidArgument(f"expression: parentheses nested more than {MAX_NESTING} levels deep",
                                      field="expression")
            expr = self._or()
            self._expect_op(")")
            self.depth -= 1
            return expr
        negated = False
        if self._is_kw("not"):
            self.i += 1
            negated = True
            if not self._is_kw("exists"):
                raise InvalidArgument("expression: 'not' must be followed by 'exists'", field="expression")
        if self._is_kw("exists"):
            self.i += 1
            self._expect_op("(")
            name, key = self._field()
            self._expect_op(")")
            kind = self.catalogue[name]
            if kind is not FieldKind.MAP or key is None:
                raise InvalidArgument(
                    f"expression: exists() takes a tag or attribute like {name}.key", field="expression"
                )
            return Exists(name, key, negated)
        name, key = self._field()
        kind = self.catalogue[name]
        op_tok = self._next("an operator")
        op = op_tok.text.lower()
        if op_tok.kind == "op" and op in ("=", "!="):
            values: tuple[str, ...] = (self._value(),)
        elif op_tok.kind == "kw" and op == "in":
            self._expect_op("(")
            vals = [self._value()]
            while (t := self._peek()) is not None and t.kind == "op" and t.text == ",":
                self.i += 1
                vals.append(self._value())
            self._expect_op(")")
            values = tuple(vals)
        elif op_tok.kind == "kw" and op == "like":
            if kind is not FieldKind.NAME:
                raise InvalidArgument(f"expression: 'like' applies to names, not {name}", field="expression")
            values = (self._value(),)
        else:
            raise InvalidArgument(f"expression: unknown operator '{op_tok.text}'", field="expression")
        if kind is FieldKind.MAP and key is None:
            raise InvalidArgument(f"expression: {name} needs a key, as in {name}.key", field="expression")
        return Compare(name, key, op, values)

    def _field(self) -> tuple[str, str | None]:
        tok = self._next("a field name")
        if tok.kind != "word":
            raise InvalidArgument(f"expression: expected a field name, found '{tok.text}'", field="expression")
        name, _, key = tok.text.partition(".")
        kind = self.catalogue.get(name)
        if kind is None:
            allowed = ", ".join(sorted(self.catalogue))
            raise InvalidArgument(
                f"expression: unknown field '{name}' (searchable: {allowed})", field="expression"
            )
        if key and kind not in (FieldKind.MAP, FieldKind.NAME):
            raise InvalidArgument(f"expression: {name} has no sub-fields", field="expression")
        if kind is FieldKind.NAME and key == "default":
            return name, ""  # the default value only; no suffix (None) means any locale
        return name, key or None

    def _value(self) -> str:
        tok = self._next("a value")
        if tok.kind in ("str", "word"):
            return tok.text
        raise InvalidArgument(f"expression: expected a value, found '{tok.text}'", field="expression")


def parse(src: str | None, catalogue: Mapping[str, FieldKind]) -> Expr | None:
    """Parse a search expression; ``None`` or blank means match everything."""
    if src is None or not src.strip():
        return None
    if len(src) > MAX_EXPRESSION:
        raise InvalidArgument(f"expression: at most {MAX_EXPRESSION} characters", field="expression")
    return _Parser(_tokenize(src), catalogue).parse()


DEVICE_FIELDS: Mapping[str, FieldKind] = {
    "assetId": FieldKind.COLUMN,
    "productKey": FieldKind.COLUMN,
    "deviceKey": FieldKind.COLUMN,
    "modelId": FieldKind.COLUMN,
    "productType": FieldKind.COLUMN,
    "timezone": FieldKind.COLUMN,
    "deviceName": FieldKind.NAME,
    "deviceTags": FieldKind.MAP,
    "deviceAttributes": FieldKind.MAP,
    "status": FieldKind.STATUS,
}

PRODUCT_FIELDS: Mapping[str, FieldKind] = {
    "productKey": FieldKind.COLUMN,
    "modelId": FieldKind.COLUMN,
    "productType": FieldKind.COLUMN,
    "productName": FieldKind.NAME,
    "productTags": FieldKind.MAP,
}
