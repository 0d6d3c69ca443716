"""The hot path on the driver itself: the few statements every create makes, without SQLAlchemy.

A create is a handful of short statements; through SQLAlchemy's async layer each one costs more
Python (statement compilation and cache keys, result wrapping, the greenlet bridge) than SQLite
takes to run it (docs/benchmarks.md). The stores keep their interface (an ``AsyncConnection``) and
send these statements, written out once, straight to the connection's driver inside the same
transaction: ``sqlite3`` (the calls already run on the event-loop thread, ``sqlite_inline``) or
asyncpg (whose statement cache prepares each one once per connection). A constraint violation is
raised as SQLAlchemy's ``IntegrityError``, as the services expect. A write transaction is begun
on the server before any of these run (``Database.write``): SQLAlchemy's asyncpg adapter would
otherwise send BEGIN only with its own first statement.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

_NUMBERED: dict[str, str] = {}


def _numbered(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1``, ``$2`` … (statements here hold no literal ``?``)."""
    out = _NUMBERED.get(sql)
    if out is None:
        parts = sql.split("?")
        out = _NUMBERED[sql] = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
    return out


@dataclass(frozen=True, slots=True)
class Row:
    """One row for a table whose ``id`` is an autoincrement, given by the store that owns the table
    to whichever statement writes it: alone (:meth:`Driver.insert_row`), or on PostgreSQL inside
    another store's statement (a device's create carries its event row and audit record), one round
    trip instead of one each."""

    table: str
    columns: tuple[str, ...]
    values: tuple[Any, ...]

    @property
    def placeholders(self) -> str:
        return ", ".join("?" * len(self.columns))


_ROW_INSERTS: dict[tuple[str, tuple[str, ...]], str] = {}


def row_insert(row: Row) -> str:
    """The INSERT of one ``row`` (built once per table and columns)."""
    key = (row.table, row.columns)
    sql = _ROW_INSERTS.get(key)
    if sql is None:
        sql = _ROW_INSERTS[key] = f"INSERT INTO {row.table} ({', '.join(row.columns)}) VALUES ({row.placeholders})"
    return sql


class Driver:
    """The driver connection under one SQLAlchemy connection (and its transaction)."""

    __slots__ = ("pg", "sqlite")

    def __init__(self, driver_connection: Any) -> None:
        inner = driver_connection if isinstance(driver_connection, sqlite3.Connection) else \
            getattr(driver_connection, "_conn", None)  # aiosqlite's sqlite3 connection
        self.sqlite: sqlite3.Connection | None = inner if isinstance(inner, sqlite3.Connection) else None
        self.pg: Any = None if self.sqlite is not None else driver_connection

    @classmethod
    async def of(cls, conn: AsyncConnection) -> Driver:
        """The driver under ``conn``: made once per pooled connection and kept in its ``info``."""
        info = conn.info
        driver: Driver | None = info.get("thingport.driver")
        if driver is None:
            driver = info["thingport.driver"] = cls((await conn.get_raw_connection()).driver_connection)
        return driver

    @property
    def for_update(self) -> str:
        """The row-lock clause of a SELECT (SQLite's write transaction already excludes others)."""
        return "" if self.sqlite is not None else " FOR UPDATE"

    async def one(self, sql: str, *params: Any) -> Sequence[Any] | None:
        try:
            if self.sqlite is not None:
                row: Sequence[Any] | None = self.sqlite.execute(sql, params).fetchone()
                return row
            return await self.pg.fetchrow(_numbered(sql), *params)  # type: ignore[no-any-return]
        except Exception as exc:
            raise _translated(exc, sql, params) from exc

    async def execute(self, sql: str) -> None:
        """Statements without parameters or rows (transaction control), ``; ``-separated: on
        PostgreSQL sent together in one round trip."""
        try:
            if self.sqlite is not None:
                for one in sql.split("; "):
                    self.sqlite.execute(one)
            else:
                await self.pg.execute(sql)
        except Exception as exc:
            raise _translated(exc, sql, ()) from exc

    async def all(self, sql: str, *params: Any) -> list[Sequence[Any]]:
        try:
            if self.sqlite is not None:
                return self.sqlite.execute(sql, params).fetchall()
            return await self.pg.fetch(_numbered(sql), *params)  # type: ignore[no-any-return]
        except Exception as exc:
            raise _translated(exc, sql, params) from exc

    async def insert(self, sql: str, *params: Any) -> int:
        """An INSERT of one row with an autoincrement ``id``: the id it took."""
        if self.sqlite is not None:  # SQLite knows the id without a RETURNING clause
            try:
                return int(self.sqlite.execute(sql, params).lastrowid or 0)
            except Exception as exc:
                raise _translated(exc, sql, params) from exc
        row = await self.one(sql + " RETURNING id", *params)
        return int(row[0]) if row else 0

    async def insert_row(self, row: Row) -> int:
        """Write ``row`` alone: the id it took."""
        return await self.insert(row_insert(row), *row.values)

    async def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            if self.sqlite is not None:
                self.sqlite.executemany(sql, rows)
            else:
                await self.pg.executemany(_numbered(sql), rows)
        except Exception as exc:
            raise _translated(exc, sql, rows) from exc


#: asyncpg's errors of a connection that is lost or cannot be made (named by class, so this module
#: does not import asyncpg on SQLite): the database is out of reach, not a statement's fault.
_LOST = frozenset({"InterfaceError", "PostgresConnectionError", "CannotConnectNowError", "AdminShutdownError",
                   "CrashShutdownError", "ConnectionDoesNotExistError"})


def _translated(exc: Exception, sql: str, params: Any) -> Exception:
    """A driver's error as SQLAlchemy's, which the services know: a constraint violation as
    ``IntegrityError``, a lost connection as ``OperationalError`` (the answer "unavailable")."""
    names = {c.__name__ for c in type(exc).__mro__}
    if isinstance(exc, sqlite3.IntegrityError) or "IntegrityConstraintViolationError" in names:
        return IntegrityError(sql, params, exc)
    if isinstance(exc, sqlite3.OperationalError | OSError | TimeoutError) or names & _LOST:
        return OperationalError(sql, params, exc)
    return exc


class ConnectionPool:
    """asyncpg connections for ``Database.driver()``: a list of idle ones and a queue of waiters.

    asyncpg's own pool costs about 45 µs of CPU per acquire and release (a shielded task, timeout
    bookkeeping, its holder objects), more than the single statement a driver call makes (about
    37 µs), and it is paid on every get-device. Connections are opened on demand up to ``size``; a
    released one goes to the oldest waiter, else back to the list. One that is closed, or whose
    user was cancelled mid-statement (its state unknown), is dropped and its place freed.
    """

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        self.connect = connect
        self.size = size
        self.opened = 0
        self.idle: list[Any] = []
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.closed = False

    async def acquire(self) -> Any:
        while True:
            if self.closed:
                raise ConnectionError("the database is closing")
            while self.idle:
                conn = self.idle.pop()
                if not conn.is_closed():
                    return conn
                self.opened -= 1
            if self.opened < self.size:
                self.opened += 1
                try:
                    return await self.connect()
                except BaseException:
                    self.opened -= 1
                    self._hand(None)  # a waiter may try in its turn
                    raise
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # handed over just as it was cancelled
                    given = waiter.result()
                    if given is None:
                        self._hand(None)
                    else:
                        self.release(given)
                raise
            if conn is not None:
                return conn
            # None: a place was freed; try again

    def release(self, conn: Any, *, broken: bool = False) -> None:
        """Give ``conn`` back; ``broken``: its user was cancelled mid-statement, so it is closed and dropped."""
        if broken or self.closed or conn.is_closed():
            self.opened -= 1
            if not conn.is_closed():
                conn.terminate()
            self._hand(None)
            return
        if not self._hand(conn):
            self.idle.append(conn)

    def _hand(self, conn: Any) -> bool:
        """Give ``conn`` (None: a free place) to the oldest waiter still waiting; False if none is."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    async def close(self) -> None:
        self.closed = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError("the database is closing"))
        idle, self.idle = self.idle, []
        self.opened -= len(idle)
        await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)
