"""Turn a parsed search expression into a SQL condition, for devices and products alike.

Shared by the device and product stores and owning no table of its own, so functions (the store
rule, ``store/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, and_, exists, false, not_, or_, select, true

from thingport.domain.expression import BoolOp, Compare, Exists, Expr, FieldKind


@dataclass(frozen=True, slots=True)
class SearchTarget:
    """What one searchable table looks like: its columns, its label table and its fields."""

    table: Table
    labels: Table
    owner: str  # the owner column name shared by table and labels
    catalogue: Mapping[str, FieldKind]
    columns: Mapping[str, ColumnElement[object]]
    status: Callable[[str], ColumnElement[bool]] | None = None


def condition(expr: Expr | None, target: SearchTarget) -> ColumnElement[bool]:
    if expr is None:
        return true()
    if isinstance(expr, BoolOp):
        parts = [condition(e, target) for e in expr.items]
        return and_(*parts) if expr.op == "and" else or_(*parts)
    if isinstance(expr, Exists):
        found = _label_exists(target, expr.field, expr.key, None)
        return not_(found) if expr.negated else found
    return _compare(expr, target)


def _label_exists(target: SearchTarget, field: str, key: str | None,
                  value_cond: Callable[[ColumnElement[str]], ColumnElement[bool]] | None) -> ColumnElement[bool]:
    lab = target.labels
    conds = [lab.c[target.owner] == target.table.c[target.owner], lab.c.field == field]
    if key is not None:
        conds.append(lab.c.key == key)
    if value_cond is not None:
        conds.append(value_cond(lab.c.value))
    return exists(select(lab.c[target.owner]).where(*conds))


def _compare(cmp: Compare, target: SearchTarget) -> ColumnElement[bool]:
    kind = target.catalogue[cmp.field]
    if kind is FieldKind.STATUS:
        assert target.status is not None
        matches = [target.status(v) for v in cmp.values]
        cond = or_(*matches) if matches else false()
        return not_(cond) if cmp.op == "!=" else cond
    if kind is FieldKind.COLUMN:
        col = target.columns[cmp.field]
        if cmp.op == "in":
            return col.in_(cmp.values)
        return col != cmp.values[0] if cmp.op == "!=" else col == cmp.values[0]
    # NAME and MAP live in the label table
    key = cmp.key  # MAP: the key; NAME: a locale, "" for the default, None for any
    value = cmp.values[0]
    if cmp.op == "like":
        # With a '%' the value is a LIKE pattern; without, a literal substring ('_' included).
        # Case-insensitive on every backend (ILIKE on PostgreSQL, lower() LIKE lower() on SQLite).
        if "%" in value:
            return _label_exists(target, cmp.field, key, lambda v: v.ilike(value))
        literal = value.replace("\\", "\\\\").replace("_", "\\_")
        return _label_exists(target, cmp.field, key, lambda v: v.ilike(f"%{literal}%", escape="\\"))
    if cmp.op == "in":
        return _label_exists(target, cmp.field, key, lambda v: v.in_(cmp.values))
    found = _label_exists(target, cmp.field, key, lambda v: v == value)
    return not_(found) if cmp.op == "!=" else found
