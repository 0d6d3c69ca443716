"""The bare reference for the benchmarks: one insert per POST, one select per GET.

A raw ASGI callable (no framework) on the same stack as ``thingport serve``: uvicorn with its
default loop and HTTP parser (uvloop, httptools), one worker. A POST decodes the JSON body, inserts
one row and commits; a GET (``productKey`` and ``deviceKey`` in the query) selects that row and
answers it as JSON. On SQLite (``--db``): aiosqlite and the WAL pragmas of ``thingport.store.db``,
one transaction at a time. On PostgreSQL (``--pg``): an asyncpg pool of 10 connections (Thingport's
pool size), each insert a prepared statement in its own autocommitted transaction. It is the floor
a request costs on this machine before any framework, validation, signing or crypto.

Run: ``python -m bench.reference_app --port 8181 --db /tmp/ref.db`` (or ``--pg postgresql://…``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import aiosqlite

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Its own table name, so a PostgreSQL database shared with the Thingport under test is no problem.
SCHEMA = """CREATE TABLE IF NOT EXISTS reference_devices (
    id {id}, product_key TEXT NOT NULL, device_key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL, create_time BIGINT NOT NULL)"""
INSERT = "INSERT INTO reference_devices (product_key, device_key, body, create_time) VALUES ({})"
SELECT = "SELECT product_key, device_key, body, create_time FROM reference_devices WHERE device_key = {}"


class ReferenceApp:
    def __init__(self, db_path: str, pg_dsn: str = "") -> None:
        self.db_path = db_path
        self.pg_dsn = pg_dsn
        self.db: aiosqlite.Connection | None = None
        self.pool: Any = None  # asyncpg.Pool on PostgreSQL
        self.write_lock = asyncio.Lock()  # one SQLite transaction per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"] == "/health":
                await self.answer(send, 200, b'{"status":"ok"}')
            elif scope["method"] == "GET":
                await self.get_device(scope, send)
            else:
                await self.create_device(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.pg_dsn:
                    import asyncpg
                    self.pool = await asyncpg.create_pool(self.pg_dsn, min_size=10, max_size=10)
                    await self.pool.execute("DROP TABLE IF EXISTS reference_devices")
                    await self.pool.execute(SCHEMA.format(id="BIGSERIAL PRIMARY KEY"))
                else:
                    self.db = await aiosqlite.connect(self.db_path)
                    await self.db.execute("PRAGMA journal_mode=WAL")
                    await self.db.execute("PRAGMA synchronous=NORMAL")
                    await self.db.execute(SCHEMA.format(id="INTEGER PRIMARY KEY"))
                    await self.db.commit()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.db is not None:
                    await self.db.close()
                if self.pool is not None:
                    await self.pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def create_device(self, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
            product_key, device_key = str(body["productKey"]), str(body["deviceKey"])
        except (ValueError, KeyError, TypeError):
            await self.answer(send, 200, b'{"code":99400,"msg":"Invalid Argument","data":null}')
            return
        row = (product_key, device_key, raw.decode(), int(time.time() * 1000))
        if self.pool is not None:
            await self.pool.execute(INSERT.format("$1, $2, $3, $4"), *row)
        else:
            assert self.db is not None
            async with self.write_lock:
                await self.db.execute(INSERT.format("?, ?, ?, ?"), row)
                await self.db.commit()
        out = {"code": 0, "msg": "OK", "requestId": str(uuid.uuid4()),
               "data": {"productKey": product_key, "deviceKey": device_key}}
        await self.answer(send, 200, json.dumps(out, separators=(",", ":")).encode())

    async def get_device(self, scope: Scope, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode())
        device_key = query.get("deviceKey", [""])[0]
        if self.pool is not None:
            row = await self.pool.fetchrow(SELECT.format("$1"), device_key)
        else:
            assert self.db is not None
            async with self.db.execute(SELECT.format("?"), (device_key,)) as cursor:
                row = await cursor.fetchone()
        if row is None:
            await self.answer(send, 200, b'{"code":11404,"msg":"Device not found","data":null}')
            return
        out = {"code": 0, "msg": "OK", "requestId": str(uuid.uuid4()),
               "data": {"productKey": row[0], "deviceKey": row[1], "device": json.loads(row[2]),
                        "createTime": row[3]}}
        await self.answer(send, 200, json.dumps(out, separators=(",", ":")).encode())

    @staticmethod
    async def answer(send: Send, status: int, payload: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json;charset=UTF-8"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", default="", help="SQLite file")
    parser.add_argument("--pg", default="", help="PostgreSQL DSN (postgresql://…) instead of SQLite")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    if not args.db and not args.pg:
        parser.error("give --db FILE or --pg DSN")
    # the same call ``thingport serve`` makes: default loop and HTTP implementation, one worker
    uvicorn.run(ReferenceApp(args.db, args.pg), host=args.host, port=args.port, log_level=args.log_level,
                access_log=False)


if __name__ == "__main__":
    main()
