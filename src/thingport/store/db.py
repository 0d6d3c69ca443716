"""The database handle: engine, transactions and migrations for SQLite and PostgreSQL.

SQLite allows one writer; write transactions start with ``BEGIN IMMEDIATE`` so two writers
(the server and an operator command) queue on the lock instead of failing half-way, and an
in-process lock keeps the server's own writers from spinning on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from thingport.store import sqlite_inline

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL", pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # Every transaction ends in an explicit commit or rollback, so the pool need not reset.
        kwargs: dict[str, Any] = {"pool_reset_on_return": None}
        if self.is_sqlite:
            kwargs["async_creator"] = sqlite_inline.creator(make_url(url).database or ":memory:")
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        #: Told each transaction's kind (``read``, ``write``) and seconds (``/metrics``); None: not measured.
        self.on_transaction: Callable[[str, float], None] | None = None
        if self.is_sqlite:
            self._configure_sqlite(sqlite_synchronous)

    def _configure_sqlite(self, synchronous: str) -> None:
        sync_engine = self.engine.sync_engine

        @event.listens_for(sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        @event.listens_for(sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "")
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        start = time.perf_counter()
        try:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
        finally:
            if self.on_transaction is not None:
                self.on_transaction("read", time.perf_counter() - start)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on any exception."""
        start = time.perf_counter()
        try:
            if self._write_lock is None:
                async with self.engine.begin() as conn:
                    yield conn
                return
            async with self._write_lock, self.engine.connect() as raw:
                conn = await raw.execution_options(sqlite_begin="IMMEDIATE")
                async with conn.begin():
                    yield conn
        finally:
            if self.on_transaction is not None:  # lock wait included: what a caller waits for
                self.on_transaction("write", time.perf_counter() - start)

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        async with self.engine.connect() as conn:
            await conn.run_sync(_upgrade)
            await conn.commit()

    async def close(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "heads")
