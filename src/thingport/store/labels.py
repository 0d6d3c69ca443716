"""Keep the label table of an owner (tags, attributes, localized names) in step with the row.

Shared by the device and product stores and owning no table of its own, so functions (the store
rule, ``store/__init__.py``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.domain.models import I18nText


def label_value(value: Any) -> str:
    """Attribute values are compared as text: strings as they are, others as JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def rows_for(owner: str, owner_id: str, name_field: str, name: I18nText,
             maps: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    return [{owner: o, "field": f, "key": k, "value": v} for o, f, k, v in tuples_for(owner_id, name_field, name, maps)]


def tuples_for(owner_id: str, name_field: str, name: I18nText,
               maps: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """The label rows as (owner, field, key, value), as a driver's ``executemany`` takes them."""
    rows = [(owner_id, name_field, "", name.default)]
    rows += [(owner_id, name_field, loc, v) for loc, v in name.translations.items()]
    for field, mapping in maps.items():
        rows += [(owner_id, field, k, label_value(v)) for k, v in mapping.items()]
    return rows


async def replace_labels(conn: AsyncConnection, table: Table, owner: str, owner_id: str,
                         rows: list[dict[str, str]], *, fresh: bool = False) -> None:
    """``fresh``: the owner was just inserted, so there is nothing to delete."""
    if not fresh:
        await conn.execute(delete(table).where(table.c[owner] == owner_id))
    if rows:
        await conn.execute(insert(table), rows)
