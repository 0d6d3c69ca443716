"""The driver's own asyncpg connections (``store/driver.py`` ``ConnectionPool``), against fakes:
bounded, handed to waiters in order, a dead or interrupted one replaced, nothing leaked."""

from __future__ import annotations

import asyncio

import pytest

from thingport.store.driver import ConnectionPool


class Conn:
    def __init__(self, n: int) -> None:
        self.n = n
        self.dead = False
        self.closed_politely = False

    def is_closed(self) -> bool:
        return self.dead or self.closed_politely

    def terminate(self) -> None:
        self.dead = True

    async def close(self) -> None:
        self.closed_politely = True


def pool_of(size: int) -> tuple[ConnectionPool, list[Conn]]:
    made: list[Conn] = []

    async def connect() -> Conn:
        await asyncio.sleep(0)
        made.append(Conn(len(made)))
        return made[-1]

    return ConnectionPool(connect, size), made


async def test_at_most_size_connections_and_waiters_served_in_order() -> None:
    pool, made = pool_of(2)
    a, b = await pool.acquire(), await pool.acquire()
    order: list[int] = []

    async def user(i: int) -> None:
        conn = await pool.acquire()
        order.append(i)
        await asyncio.sleep(0)
        pool.release(conn)

    users = [asyncio.create_task(user(i)) for i in range(5)]
    await asyncio.sleep(0.01)
    assert order == [] and len(made) == 2  # all five wait
    pool.release(a)
    pool.release(b)
    await asyncio.gather(*users)
    assert order == [0, 1, 2, 3, 4] and len(made) == 2
    assert pool.opened == 2 and len(pool.idle) == 2


async def test_a_dead_or_interrupted_connection_is_replaced() -> None:
    pool, made = pool_of(1)
    conn = await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(conn, broken=True)  # its user was cancelled mid-statement
    fresh = await waiting
    assert conn.dead and fresh is made[1] and pool.opened == 1
    fresh.dead = True  # the server went away while it was idle
    pool.release(fresh)
    assert pool.opened == 0
    again = await pool.acquire()
    assert again is made[2]


async def test_a_cancelled_waiter_leaks_nothing() -> None:
    pool, made = pool_of(1)
    conn = await pool.acquire()
    first = asyncio.create_task(pool.acquire())
    second = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(conn)  # handed to the first waiter ...
    first.cancel()  # ... which is cancelled before it runs: the connection goes on to the second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second is conn and pool.opened == 1 and len(made) == 1


async def test_a_failed_connect_frees_its_place_for_a_waiter() -> None:
    attempts = 0

    async def connect() -> Conn:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0)
        if attempts == 1:
            raise OSError("refused")
        return Conn(attempts)

    pool = ConnectionPool(connect, 1)
    failing = asyncio.create_task(pool.acquire())
    waiting = asyncio.create_task(pool.acquire())
    with pytest.raises(OSError):
        await failing
    assert (await waiting).n == 2 and pool.opened == 1


async def test_close_closes_the_idle_and_refuses_the_rest() -> None:
    pool, made = pool_of(2)
    a, b = await pool.acquire(), await pool.acquire()
    waiting = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(a)  # to the waiter
    conn = await waiting
    pool.release(conn)
    await pool.close()
    assert made[0].closed_politely
    pool.release(b)  # in use at close: dropped when given back
    assert b.dead and pool.opened == 0
    with pytest.raises(ConnectionError):
        await pool.acquire()
