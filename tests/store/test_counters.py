"""The shared counters: atomic windowed counts, and slots that count only while there is room."""

from __future__ import annotations

from thingport.services.container import Services
from thingport.store.counters import CounterStore


async def test_a_count_grows_in_its_window_starts_again_after_it_and_clears(services: Services) -> None:
    core, store = services.core, CounterStore()
    async with core.write(audited=False) as tx:
        assert await store.add(tx.conn, "t", "10.0.0.1\ndk&pk", 1_000, 60_000) == (1, 1_000)
        assert await store.add(tx.conn, "t", "10.0.0.1\ndk&pk", 30_000, 60_000) == (2, 1_000)
        assert await store.add(tx.conn, "u", "10.0.0.1\ndk&pk", 30_000, 60_000) == (1, 30_000)  # scopes apart
        assert await store.read(tx.conn, "t", "10.0.0.1\ndk&pk") == (2, 1_000)
        assert await store.add(tx.conn, "t", "10.0.0.1\ndk&pk", 61_000, 60_000) == (1, 61_000)  # window over
        await store.clear(tx.conn, "t", "10.0.0.1\ndk&pk")
        assert await store.read(tx.conn, "t", "10.0.0.1\ndk&pk") is None
        assert await store.read(tx.conn, "u", "10.0.0.1\ndk&pk") == (1, 30_000)


async def test_a_slot_counts_only_while_it_has_room_and_old_slots_are_swept(services: Services) -> None:
    core, store = services.core, CounterStore()
    async with core.write(audited=False) as tx:
        assert [await store.take(tx.conn, "s", "app", 7, 700, 2) for _ in range(3)] == [True, True, False]
        assert await store.take(tx.conn, "s", "app", 8, 800, 1)
        assert await store.take(tx.conn, "s", "other", 8, 800, 1)
        assert await store.counted(tx.conn, "s", "app", 0, 8) == 2  # slot 8 not included
        assert await store.counted(tx.conn, "s", "app", 0, 9) == 3
        await store.sweep(tx.conn, "s", 800)
        assert await store.counted(tx.conn, "s", "app", 0, 9) == 1
