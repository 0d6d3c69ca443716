"""aiosqlite's API, with every call made on the event-loop thread instead of a worker thread.

SQLite statements on a WAL database with ``synchronous=NORMAL`` take microseconds and a commit
does not wait for the disk, while each aiosqlite call is a round trip to a worker thread and back
through the event loop (3-4 per statement). Under load those hops, taken while the single writer
holds the write lock, were what limited throughput (docs/benchmarks.md). Running the calls inline
removes them; the cost is that a write blocked by another *process* holding the SQLite lock (an
operator command) blocks the loop for up to ``busy_timeout``, which such short transactions make
rare and brief.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite


class _RunNow:
    """Stands in for aiosqlite's queue to its worker thread: runs each call as it is queued.

    Everything aiosqlite (and SQLAlchemy's adapter, which also posts to the queue directly) sends
    to the worker goes through ``put_nowait``, so this one seam moves all of it onto the loop.
    """

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            if future is not None:
                future.set_exception(exc)
            return
        if future is not None:
            future.set_result(result)


class LoopThreadConnection(aiosqlite.Connection):
    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self._tx = _RunNow()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # no worker thread to start


def creator(path: str) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine`` opening ``path`` this way."""

    async def connect() -> aiosqlite.Connection:
        return await LoopThreadConnection(partial(sqlite3.connect, path), 64)

    return connect
