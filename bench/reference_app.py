"""The bare reference for the create-device benchmark: one SQLite insert per request.

A raw ASGI callable (no framework) that decodes the JSON body, inserts one row and commits,
on the same stack as ``thingport serve``: uvicorn with its default loop and HTTP parser (uvloop,
httptools), one worker, aiosqlite, and the WAL pragmas of ``thingport.store.db``. It is the floor
a request costs on this machine before any framework, validation, signing or crypto.

Run: ``python -m bench.reference_app --port 8181 --db /tmp/ref.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiosqlite

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SCHEMA = """CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY, product_key TEXT NOT NULL, device_key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL, create_time INTEGER NOT NULL)"""


class ReferenceApp:
    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.db: aiosqlite.Connection | None = None
        self.write_lock = asyncio.Lock()  # one transaction per request, as Thingport's writers queue

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"] == "/health":
                await self.answer(send, 200, b'{"status":"ok"}')
            else:
                await self.create_device(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.db = await aiosqlite.connect(self.db_path)
                await self.db.execute("PRAGMA journal_mode=WAL")
                await self.db.execute("PRAGMA synchronous=NORMAL")
                await self.db.execute(SCHEMA)
                await self.db.commit()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.db is not None:
                    await self.db.close()
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
        assert self.db is not None
        async with self.write_lock:
            await self.db.execute(
                "INSERT INTO devices (product_key, device_key, body, create_time) VALUES (?, ?, ?, ?)",
                (product_key, device_key, raw.decode(), int(time.time() * 1000)))
            await self.db.commit()
        out = {"code": 0, "msg": "OK", "requestId": str(uuid.uuid4()),
               "data": {"productKey": product_key, "deviceKey": device_key}}
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
    parser.add_argument("--db", required=True, help="SQLite file")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # the same call ``thingport serve`` makes: default loop and HTTP implementation, one worker
    uvicorn.run(ReferenceApp(args.db), host=args.host, port=args.port, log_level=args.log_level, access_log=False)


if __name__ == "__main__":
    main()
