"""Turn a parsed search expression into a SQL condition, for devices and products alike.

Shared by the device and product stores and owning no table of its own, so functions (the store
rule, ``store/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, and_, false, func, literal_column, not_, or_, select, true

from thingport.domain.expression import BoolOp, Compare, Exists, Expr, FieldKind

#: Characters of a label value in the index ``ix_*_labels_field_value_key`` (migration search_0410):
#: values are unbounded and a btree row is not, so = and IN match the indexed prefix, then the value.
VALUE_PREFIX = 100


def value_prefix(value: ColumnElement[str]) -> ColumnElement[str]:
    """``substr(value, 1, 100)`` with literal bounds: a backend uses the index only for the very expression."""
    return func.substr(value, literal_column("1"), literal_column(str(VALUE_PREFIX)))


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
    """The owner has a matching label: ``owner IN (labels by field, key, value)``.

    Not a correlated EXISTS, which a backend evaluates once per owner of the organization (a scan at
    a million devices): the subquery is driven by the label index and yields the few owners.
    """
    lab = target.labels
    conds = [lab.c.field == field]
    if key is not None:
        conds.append(lab.c.key == key)
    if value_cond is not None:
        conds.append(value_cond(lab.c.value))
    return target.table.c[target.owner].in_(select(lab.c[target.owner]).where(*conds))


def _equal(values: list[str]) -> Callable[[ColumnElement[str]], ColumnElement[bool]]:
    """= / IN on a label value, through the indexed prefix.

    One value: prefix and rest compared apart. ``value = 'x'`` beside the prefix would let SQLite
    propagate the constant into ``substr(value, ...)``, which then no longer matches the index.
    """
    prefixes = sorted({v[:VALUE_PREFIX] for v in values})
    if len(values) == 1:
        rest = func.substr  # the characters after the prefix
        return lambda v: and_(value_prefix(v) == prefixes[0],
                              rest(v, literal_column(str(VALUE_PREFIX + 1))) == values[0][VALUE_PREFIX:])
    return lambda v: and_(value_prefix(v).in_(prefixes), v.in_(values))


def driven_by_labels(expr: Expr | None, target: SearchTarget) -> bool:
    """Whether the search must hold a label condition that the value index answers (= or IN on a
    tag, attribute or name, at the top level of an AND): its owners are then the few rows to read,
    and the organization's index, which a planner without statistics prefers, would be a scan."""
    if isinstance(expr, BoolOp):
        return expr.op == "and" and any(driven_by_labels(e, target) for e in expr.items)
    return (isinstance(expr, Compare) and expr.op in ("=", "in")
            and target.catalogue[expr.field] in (FieldKind.NAME, FieldKind.MAP))


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
        return _label_exists(target, cmp.field, key, _equal(list(cmp.values)))
    found = _label_exists(target, cmp.field, key, _equal([value]))
    return not_(found) if cmp.op == "!=" else found
