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

import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

_NUMBERED: dict[str, str] = {}


def _numbered(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$1``, ``$2`` … (statements here hold no literal ``?``)."""
    out = _NUMBERED.get(sql)
    if out is None:
        parts = sql.split("?")
        out = _NUMBERED[sql] = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
    return out


class Driver:
    """The driver connection under one SQLAlchemy connection (and its transaction)."""

    __slots__ = ("pg", "sqlite")

    def __init__(self, driver_connection: Any) -> None:
        inner = getattr(driver_connection, "_conn", None)  # aiosqlite's sqlite3 connection
        self.sqlite: sqlite3.Connection | None = inner if isinstance(inner, sqlite3.Connection) else None
        self.pg: Any = None if self.sqlite is not None else driver_connection

    @classmethod
    async def of(cls, conn: AsyncConnection) -> Driver:
        return cls((await conn.get_raw_connection()).driver_connection)

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

    async def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            if self.sqlite is not None:
                self.sqlite.executemany(sql, rows)
            else:
                await self.pg.executemany(_numbered(sql), rows)
        except Exception as exc:
            raise _translated(exc, sql, rows) from exc


def _translated(exc: Exception, sql: str, params: Any) -> Exception:
    """A constraint violation of either driver as SQLAlchemy's (asyncpg's named by its base class,
    so this module does not import asyncpg on SQLite)."""
    if isinstance(exc, sqlite3.IntegrityError) or any(
            c.__name__ == "IntegrityConstraintViolationError" for c in type(exc).__mro__):
        return IntegrityError(sql, params, exc)
    return exc
