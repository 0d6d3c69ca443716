"""Turn a parsed search expression into a SQL condition, for devices and products alike.

Shared by the device and product stores and owning no table of its own, so functions (the store
rule, ``store/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, false, func, literal_column, not_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.domain.expression import BoolOp, Compare, Exists, Expr, FieldKind

#: Characters of a label value in the index ``ix_*_labels_field_value_key`` (migration search_0410):
#: values are unbounded and a btree row is not, so = and IN match the indexed prefix, then the value.
VALUE_PREFIX = 100


def value_prefix(value: ColumnElement[str]) -> ColumnElement[str]:
    """``substr(value, 1, 100)`` with literal bounds: a backend uses the index only for the very expression."""
    return func.substr(value, literal_column("1"), literal_column(str(VALUE_PREFIX)))


@dataclass(frozen=True, slots=True)
class Lookup:
    """A field another table holds (a device's model is its product's).

    Compared through a join, a planner can only guess how many rows match, and for the first page
    it walks the organization's newest rows instead (a scan at a million devices: ``modelId`` p99
    5.4 s on SQLite, 2.1 s on PostgreSQL). :func:`resolve` turns it into the other table's keys
    first (an organization has few products), and the search compares its own indexed column with
    those literal keys, as a ``productKey`` search does.
    """

    column: ColumnElement[Any]  # what the field names: products.model_id
    key: ColumnElement[Any]  # the other table's key: products.product_key
    scope: ColumnElement[Any]  # its organization: products.org_id
    local: ColumnElement[Any]  # the searched table's column holding that key: devices.product_key


#: Past this many keys a lookup is compared through the join as before: a literal list that long
#: helps no planner.
MAX_LOOKUP_KEYS = 1000


@dataclass(frozen=True, slots=True)
class SearchTarget:
    """What one searchable table looks like: its columns, its label table and its fields."""

    table: Table
    labels: Table
    owner: str  # the owner column name shared by table and labels
    catalogue: Mapping[str, FieldKind]
    columns: Mapping[str, ColumnElement[object]]
    status: Callable[[str], ColumnElement[bool]] | None = None
    lookups: Mapping[str, Lookup] = field(default_factory=dict)


#: The keys :func:`resolve` found for each lookup comparison of one expression (by ``id``).
Resolved = Mapping[int, list[str]]


def _compares(expr: Expr | None) -> Iterator[Compare]:
    if isinstance(expr, BoolOp):
        for item in expr.items:
            yield from _compares(item)
    elif isinstance(expr, Compare):
        yield expr


async def resolve(conn: AsyncConnection, expr: Expr | None, target: SearchTarget, scope: str) -> Resolved:
    """The keys each lookup comparison of ``expr`` stands for in organization ``scope`` (a query
    per comparison, before the search); one with too many keys is left to the join."""
    found: dict[int, list[str]] = {}
    for cmp in _compares(expr):
        lookup = target.lookups.get(cmp.field)
        if lookup is None:
            continue
        q = (select(lookup.key).where(lookup.scope == scope, lookup.column.in_(cmp.values))
             .order_by(lookup.key).limit(MAX_LOOKUP_KEYS + 1))
        keys = [str(k) for k in (await conn.execute(q)).scalars()]
        if len(keys) <= MAX_LOOKUP_KEYS:
            found[id(cmp)] = keys
    return found


def condition(expr: Expr | None, target: SearchTarget, resolved: Resolved | None = None) -> ColumnElement[bool]:
    if expr is None:
        return true()
    if isinstance(expr, BoolOp):
        parts = [condition(e, target, resolved) for e in expr.items]
        return and_(*parts) if expr.op == "and" else or_(*parts)
    if isinstance(expr, Exists):
        found = _label_exists(target, expr.field, expr.key, None)
        return not_(found) if expr.negated else found
    keys = None if resolved is None else resolved.get(id(expr))
    if keys is not None:  # a lookup: the searched table's own column against the keys found
        within = target.lookups[expr.field].local.in_(keys)
        return not_(within) if expr.op == "!=" else within
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
