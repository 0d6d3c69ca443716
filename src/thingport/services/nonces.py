"""Single-use values (request signatures, nonces): the replay guard every signed call passes.

Two modes (``settings.nonce_store``):

* ``memory`` (the default on SQLite, a single node): an in-process set is the authority, so a
  signed request costs no database write of its own. A request that writes records its value in
  its own (first) write transaction (:data:`~thingport.services.context.REQUEST_NONCE`), so what it
  created, replaced or deleted commits with the proof that it was done; the values of the others
  (reads) are written to the ``used_nonces`` table in batches (every ``FLUSH_S``). Values are
  loaded back at start: a restarted node refuses every replay of a write, and of a read all but
  those of the last batch before a crash.
* ``database`` (the default on PostgreSQL, where several nodes may share one database): each
  value is inserted and committed before the request goes on, and the unique index decides, so a
  replay sent to another node fails. The values of concurrent requests share one statement and
  one transaction: while a batch is written, the values arriving meanwhile queue for the next one
  (no timer), so a burst of signed reads costs a few commits, not one write turn each.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging

from thingport.domain.models import now_ms
from thingport.services.context import REQUEST_NONCE, Core, RequestNonce
from thingport.store.driver import Driver

log = logging.getLogger(__name__)

FLUSH_S = 0.2
SWEEP_MS = 60_000
#: Most values one flush writes in one transaction. On SQLite the statements run on the event-loop
#: thread (``store/sqlite_inline.py``): one flush's 600 values (3,000 signed reads/s for 0.2 s) held
#: the loop 3-5 ms at once, which every request in flight then waited; written in chunks with the
#: loop free between them, no request waits for more than one chunk (about 1 ms).
FLUSH_CHUNK = 100


def _key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class NonceGuard:
    def __init__(self, core: Core) -> None:
        self.core = core
        mode = core.settings.nonce_store or ("memory" if core.db.is_sqlite else "database")
        if mode not in ("memory", "database"):
            raise ValueError(f"nonce_store: 'memory' or 'database', not '{mode}'")
        self.in_memory = mode == "memory"
        self._seen: dict[str, int] = {}
        self._pending: list[tuple[str, int]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._loaded = False
        self._next_sweep = 0
        self._queued: list[tuple[str, int, asyncio.Future[bool]]] = []  # database mode: the next batch
        self._writer: asyncio.Task[None] | None = None

    async def use(self, value: str, ttl_ms: int) -> bool:
        """Record ``value``; False when it was used before and has not expired (a replay)."""
        now = now_ms()
        key, expire = _key(value), now + ttl_ms
        if not self.in_memory:
            return await self._use_shared(key, expire)
        if not self._loaded:
            await self._load(now)
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_MS
            self._seen = {k: e for k, e in self._seen.items() if e > now}
        seen = self._seen.get(key)
        if seen is not None and seen > now:
            return False
        self._seen[key] = expire
        self._pending.append((key, expire))
        REQUEST_NONCE.set(RequestNonce(key, expire))
        if self._flusher is None or self._flusher.done():  # in a context of its own: it is no request's
            self._flusher = asyncio.create_task(self._flush_later(), context=contextvars.Context())
        return True

    async def _use_shared(self, key: str, expire: int) -> bool:
        """Database mode: queue the value for the next batch and wait until that batch commits."""
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queued.append((key, expire, answer))
        if self._writer is None or self._writer.done():  # in a context of its own: it is no request's
            self._writer = asyncio.create_task(self._write_batches(), context=contextvars.Context())
        return await answer

    async def _write_batches(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            first: dict[str, int] = {}  # a value twice in one batch: the second is a replay of the first
            for key, expire, _ in batch:
                first.setdefault(key, expire)
            try:
                accepted = await self._insert(list(first.items()))
            except Exception as exc:  # the requests fail as they would have alone (e.g. unavailable)
                for _, _, answer in batch:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for key, _, answer in batch:
                if not answer.done():
                    answer.set_result(key in accepted and first.pop(key, None) is not None)

    async def _insert(self, rows: list[tuple[str, int]]) -> set[str]:
        now = now_ms()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_MS
            async with self.core.write(audited=False) as tx:
                await self.core.accounts.sweep_nonces(tx.conn, now)
        if not self.core.db.is_sqlite:
            # one statement that commits by itself: no turn among the writers (docs/benchmarks.md)
            async with self.core.driver() as raw:
                return await self.core.accounts.use_nonces(raw, rows, now)
        async with self.core.write(audited=False) as tx:  # SQLite: its one writer's transaction
            return await self.core.accounts.use_nonces(await Driver.of(tx.conn), rows, now)

    async def _load(self, now: int) -> None:
        async with self.core.read() as conn:
            for key, expire in await self.core.accounts.live_nonces(conn, now):
                self._seen.setdefault(key, expire)
        self._loaded = True

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_S)
        await self.flush()

    async def flush(self) -> None:
        """Write the recorded values out (also called at shutdown), :data:`FLUSH_CHUNK` per transaction."""
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), FLUSH_CHUNK):
            if start:
                await asyncio.sleep(0)  # the requests waiting meanwhile run before the next chunk
            try:
                async with self.core.write(audited=False) as tx:
                    if not start:
                        await self.core.accounts.sweep_nonces(tx.conn, tx.now)
                    await self.core.accounts.store_nonces(tx.conn, batch[start:start + FLUSH_CHUNK])
            except Exception:  # the in-memory set still guards this node; retry with the next batch
                log.exception("could not persist %d used signatures", len(batch) - start)
                self._pending = batch[start:] + self._pending
                return
