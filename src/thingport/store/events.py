"""The event outbox: events are written in the transaction that caused them."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.store.schema import events


async def append(conn: AsyncConnection, org_id: str, kind: str, asset_id: str | None, payload: dict[str, Any],
                 now: int) -> int:
    res = await conn.execute(insert(events).values(org_id=org_id, kind=kind, asset_id=asset_id,
                                                   payload=json.dumps(payload), create_time=now))
    pk = res.inserted_primary_key
    return int(pk[0]) if pk else 0


async def since(conn: AsyncConnection, after_id: int, limit: int = 500) -> list[dict[str, Any]]:
    q = select(events).where(events.c.id > after_id).order_by(events.c.id).limit(limit)
    return [
        {"id": r["id"], "org_id": r["org_id"], "kind": r["kind"], "asset_id": r["asset_id"],
         "payload": json.loads(r["payload"]), "create_time": r["create_time"]}
        for r in (await conn.execute(q)).mappings()
    ]
