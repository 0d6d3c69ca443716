"""The database handle: engine, transactions and migrations for SQLite and PostgreSQL.

Writes are **group-committed**: this process's writers take turns on one transaction, and a writer
that arrives while another one holds the turn joins the transaction that one opened. Each writer's
work runs in a savepoint of its own (one writer's failure rolls back only its own work), the
transaction commits when no writer is queued (or when it holds :data:`GROUP_MAX` writers), and a
writer returns only once the commit that holds its work is done: what a client is told succeeded is
on disk, yet 32 concurrent requests cost one commit instead of 32 (docs/benchmarks.md).

SQLite allows one writer; write transactions start with ``BEGIN IMMEDIATE`` so two writers
(the server and an operator command) queue on the lock instead of failing half-way.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction, create_async_engine

from thingport.store import sqlite_inline
from thingport.store.driver import ConnectionPool, Driver

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"

#: Each writer's savepoint in a shared transaction (SQLAlchemy's own, ``sa_savepoint_N``, nest inside).
#: Opening the next one releases the previous writer's in the same round trip.
_SAVEPOINT = "SAVEPOINT tp_writer"
_NEXT_SAVEPOINT = f"RELEASE SAVEPOINT tp_writer; {_SAVEPOINT}"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT tp_writer"

#: Writers one transaction holds at most: bounds how long the first of them waits for its commit.
GROUP_MAX = 256
#: On PostgreSQL at most 64: each writer after the first is a subtransaction, and a backend caches
#: 64 of them; past that every snapshot of every session looks them up in ``pg_subtrans``.
PG_GROUP_MAX = 64


class _Group:
    """One open write transaction and the writers whose work it holds."""

    __slots__ = ("broken", "conn", "done", "driver", "members", "raw", "savepoint", "tx")

    def __init__(self, raw: AsyncConnection, conn: AsyncConnection, tx: AsyncTransaction, driver: Driver) -> None:
        self.raw, self.conn, self.tx = raw, conn, tx
        #: Sends each writer's savepoint statements itself: SQLAlchemy's nested transaction objects
        #: cost more than the statements (a millisecond per create, docs/benchmarks.md).
        self.driver = driver
        #: A writer's savepoint is still open: the next writer releases it with the same round trip
        #: that opens its own (COMMIT releases the last one).
        self.savepoint = False
        self.members = 0  # writers whose work succeeded and waits for the commit
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.broken: BaseException | None = None  # a savepoint could not be undone: roll all back


class Database:
    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL", pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.group_max = GROUP_MAX if self.is_sqlite else PG_GROUP_MAX
        # Every transaction ends in an explicit commit or rollback, so the pool need not reset.
        kwargs: dict[str, Any] = {"pool_reset_on_return": None}
        if self.is_sqlite:
            kwargs["async_creator"] = sqlite_inline.creator(make_url(url).database or ":memory:")
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._busy = False  # a writer holds the turn (or a commit is under way)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._group: _Group | None = None
        self._holder: asyncio.Task[Any] | None = None  # the task whose work runs in the turn now
        self._commits: set[asyncio.Task[None]] = set()
        #: PostgreSQL: the last group's connection, kept for the next one (:meth:`_keep`).
        self._kept: AsyncConnection | None = None
        self._closing = False  # close() began: a transaction ending after it keeps no connection
        self.pool_size = pool_size
        database = make_url(url).database if self.is_sqlite else None
        self._file = database if database and database != ":memory:" and "mode=memory" not in url else None
        self._readers: list[sqlite3.Connection] = []  # driver's idle SQLite connections
        self._pg_pool: ConnectionPool | None = None  # the driver's asyncpg connections, made on first use
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
    async def driver(self) -> AsyncIterator[Driver]:
        """A driver connection for hot single statements (get-device's read; on PostgreSQL the
        used-nonce batches), without SQLAlchemy's connection, transaction and pool bookkeeping,
        which cost more than the one statement they would wrap.

        No transaction: each statement sees a consistent snapshot and commits by itself. SQLite:
        connections of their own, used on the event-loop thread like the engine's
        (``sqlite_inline``); reads only there, as a write would wait for the group's transaction
        while blocking the loop that would commit it. PostgreSQL: an asyncpg pool of its own.
        """
        start = time.perf_counter()
        try:
            if self.is_sqlite and self._file is None:  # in memory: only the engine's connection sees it
                async with self.read() as conn:
                    yield await Driver.of(conn)
            elif self.is_sqlite:
                reader = self._readers.pop() if self._readers else self._open_reader()
                try:
                    yield Driver(reader)
                finally:
                    self._readers.append(reader)
            else:
                pool = self._pg_pool or self._open_pg_pool()
                try:
                    conn = await pool.acquire()
                except Exception as exc:  # the pool could not connect: the database is out of reach
                    raise OperationalError("connect", None, exc) from exc
                try:
                    yield Driver(conn)
                except BaseException as exc:  # cancelled mid-statement: its state is unknown, so dropped
                    pool.release(conn, broken=not isinstance(exc, Exception))
                    raise
                pool.release(conn)
        finally:
            if self.on_transaction is not None:
                self.on_transaction("read", time.perf_counter() - start)

    def _open_reader(self) -> sqlite3.Connection:
        assert self._file is not None
        conn = sqlite3.connect(self._file, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _open_pg_pool(self) -> ConnectionPool:
        import asyncpg  # type: ignore[import-untyped]  # only on PostgreSQL

        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        # No floor of idle connections: a pool that kept one would keep reconnecting it while the
        # database is lost (the node's /ready already says so). No reset on release either: these
        # connections only run single statements and keep no session state.
        self._pg_pool = ConnectionPool(lambda: asyncpg.connect(dsn), self.pool_size)
        return self._pg_pool

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction of its own for the caller's work: rolled back alone on any exception, and
        committed (with the work of the writers around it) before this returns."""
        start = time.perf_counter()
        try:
            async with self._write() as conn:
                yield conn
        finally:
            if self.on_transaction is not None:  # the wait for the turn and the commit included
                self.on_transaction("write", time.perf_counter() - start)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        task = asyncio.current_task()
        if task is not None and task is self._holder:
            # it would wait for the turn its own outer write holds: fail loudly instead of hanging
            raise RuntimeError("a write nested in another write of the same Database")
        await self._take_turn()
        try:
            group = self._group or await self._open()
        except BaseException:
            self._pass_turn()
            raise
        alone = group.members == 0  # nobody else's work to keep: no savepoint needed
        if not alone:
            try:
                await group.driver.execute(_NEXT_SAVEPOINT if group.savepoint else _SAVEPOINT)
            except BaseException as exc:  # the connection is lost: nobody's work in it can commit
                group.broken = group.broken or exc
                self._pass_turn()  # which commits nothing, and lets the writers queued go on
                raise
            group.savepoint = True
        self._holder = task
        try:
            yield group.conn
            self._holder = None
        except BaseException as exc:
            self._holder = None
            await self._undo(group, alone, exc)
            self._pass_turn()
            raise
        group.members += 1
        done = group.done
        self._pass_turn()
        await asyncio.shield(done)

    async def _take_turn(self) -> None:
        if not self._busy and not self._waiters:
            self._busy = True
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._pass_turn()  # handed the turn as it was cancelled: hand it on
            else:
                self._waiters.remove(turn)
            raise

    async def _open(self) -> _Group:
        kept, self._kept = self._kept, None
        if kept is None:
            return await self._begin(await self.engine.connect())
        try:
            return await self._begin(kept)
        except OperationalError:  # the kept connection was lost (a restarted server, say): a fresh
            return await self._begin(await self.engine.connect())  # one, which the pool pings first

    async def _begin(self, raw: AsyncConnection) -> _Group:
        try:
            conn = await raw.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else raw
            tx = await conn.begin()
            if not self.is_sqlite:
                await _begin_now(conn)
            self._group = _Group(raw, conn, tx, await Driver.of(conn))
        except BaseException:
            await raw.close()
            raise
        return self._group

    def _keep(self, raw: AsyncConnection) -> bool:
        """Keep a write connection whose transaction ended for the next group (PostgreSQL): taking
        one from the pool costs the pool's liveness check, three round trips, each time."""
        if self.is_sqlite or self._closing or self._kept is not None or raw.closed or raw.invalidated:
            return False
        self._kept = raw
        return True

    async def _undo(self, group: _Group, alone: bool, exc: BaseException) -> None:
        """Take back one writer's work after it failed, leaving the others' in the transaction."""
        try:
            if not alone:  # the savepoint stays open, empty, for the next writer to release
                await group.driver.execute(_ROLLBACK_TO)
                return
            self._group = None  # the writer was alone in it: drop the whole transaction
            kept = False
            try:
                await group.tx.rollback()
                kept = self._keep(group.raw)
            finally:
                if not kept:
                    await group.raw.close()
        except BaseException as undo_failed:  # the connection is gone: nobody's work can commit
            group.broken = undo_failed
            log.warning("write transaction lost after %s: %s", type(exc).__name__, undo_failed)

    def _pass_turn(self) -> None:
        """Let the next writer join the open transaction, or commit it when nobody is queued (the
        commit holds the turn, so writers arriving meanwhile start the next transaction)."""
        group = self._group
        if group is not None and (not self._waiters or group.members >= self.group_max or group.broken):
            self._group = None
            task = asyncio.get_running_loop().create_task(self._commit(group))
            self._commits.add(task)
            task.add_done_callback(self._commits.discard)
            return
        self._next()

    def _next(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._busy = False

    async def _commit(self, group: _Group) -> None:
        kept = False
        try:
            if group.broken is not None:
                raise group.broken
            await group.tx.commit()
        except BaseException as exc:
            if group.members:
                group.done.set_exception(exc)
            else:
                log.warning("write transaction lost: %s", exc)
            with suppress(Exception):  # the connection is closed below either way
                await group.tx.rollback()
        else:
            group.done.set_result(None)
            kept = self._keep(group.raw)
        finally:
            try:
                if not kept:
                    await group.raw.close()
            finally:
                self._next()

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        async with self.engine.connect() as conn:
            await conn.run_sync(_upgrade)
            await conn.commit()

    async def close(self) -> None:
        self._closing = True
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)
        if self._kept is not None:
            kept, self._kept = self._kept, None
            await kept.close()
        while self._readers:
            self._readers.pop().close()
        if self._pg_pool is not None:
            pool, self._pg_pool = self._pg_pool, None
            await pool.close()
        await self.engine.dispose()


async def _begin_now(conn: AsyncConnection) -> None:
    """Send BEGIN now, alone. SQLAlchemy's asyncpg adapter sends it only with its own first
    statement, and the driver hot path (store/driver.py) may come first and must not run outside the
    transaction; a statement to carry it (``SELECT 1``) cost a round trip more per transaction. So
    the adapter's own start of its transaction, which the statements after it then see as begun."""
    adapted: Any = (await conn.get_raw_connection()).dbapi_connection
    try:
        await adapted._start_transaction()
    except Exception as exc:  # the adapter's error, not yet SQLAlchemy's: the connection is unusable
        await conn.invalidate()
        raise OperationalError("BEGIN", None, exc) from exc


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "heads")
