"""Devices' online state, activation and login events, written in batches.

A login storm would otherwise be a storm of write transactions queueing on SQLite's one writer.
Changes are queued in the order they happen and written together, one transaction per batch
(a batch is whatever queued while the previous one was written, and at least ``presence_batch_ms``
after it started), so per device they land in the order they happened, and a device that connects
and disconnects within one batch ends offline with both events written.

What a crash (``kill -9``) can lose, on purpose (docs/mqtt.md, "Durability"):

* **Activation is never lost once the device was told.** :meth:`Presence.activate` returns when the
  batch carrying it has committed, and a login that activates its device waits for it before its
  CONNACK (or a gateway's sub-device login before its reply). Such a login usually writes the
  device online in the same change (``online=True``), so a first login is one change, not two.
* **Online/offline, ``lastOnlineTime``/``lastOfflineTime`` and the ``device.connected`` /
  ``device.disconnected`` events** of the last batch (a few milliseconds) may be lost. Online state
  does not outlive the process anyway: at start every device is set offline.

The database lags the connections by at most one batch; what is written is exactly what
``DeviceService.mark_connected`` / ``mark_disconnected`` would write, one device at a time.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Final

from thingport.domain.models import now_ms
from thingport.services import events
from thingport.services.context import Core
from thingport.store import presence as store

log = logging.getLogger(__name__)

_ACTIVATE: Final = 0
_ONLINE: Final = 1
_OFFLINE: Final = 2
_FLUSH: Final = 3
_ACTIVATE_ONLINE: Final = 4
_USED: Final = 5


class _Change:
    __slots__ = ("asset_id", "at", "done", "kind")

    def __init__(self, asset_id: str, kind: int, done: asyncio.Future[bool] | None = None) -> None:
        self.asset_id = asset_id
        self.kind = kind
        self.at = now_ms()
        self.done = done


class Presence:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.batch_s = core.settings.presence_batch_ms / 1000
        self._queue: list[_Change] = []
        self._runner: asyncio.Task[None] | None = None
        self._started = 0.0
        #: The node whose broker holds the sessions, recorded with each device online (None: an
        #: external broker's, which no node's death ends; docs/operations.md, "Several nodes").
        self.owner = core.node_id
        #: Batches and changes written, for the benchmarks and the logs.
        self.batches = 0
        self.written = 0
        #: Successful logins since the last batch, for the credential history's ``last_used``:
        #: (asset id, with the previous credential) → when.
        self._used: dict[tuple[str, bool], int] = {}

    def connected(self, asset_id: str) -> None:
        """The device logged in (online, activated if it was not): written with the next batch."""
        self._put(_Change(asset_id, _ONLINE))

    def disconnected(self, asset_id: str) -> None:
        self._put(_Change(asset_id, _OFFLINE))

    def used(self, asset_id: str, previous: bool) -> None:
        """A login succeeded with the device's current secret (or, ``previous``, the one a rotation
        replaced): the history's ``last_used``, written with the next batch, once per device."""
        fresh = not self._used
        self._used[(asset_id, previous)] = now_ms()
        if fresh:
            self._put(_Change("", _USED))

    async def activate(self, asset_id: str, *, online: bool = False) -> bool:
        """Record the device's activation, returning once it is committed (batched with the others);
        ``online``: and its login, as :meth:`connected` would, in the same write.

        False when the device is gone or disabled by then.
        """
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._put(_Change(asset_id, _ACTIVATE_ONLINE if online else _ACTIVATE, done))
        return await done

    async def flush(self) -> None:
        """Return once everything queued so far is written."""
        if self._queue or self._runner is not None:
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._put(_Change("", _FLUSH, done))
            await done

    def _put(self, change: _Change) -> None:
        self._queue.append(change)
        if self._runner is None:
            # a context of its own: not the one of whatever request queued the first change
            self._runner = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                wait = self._started + self.batch_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._started = loop.time()
                batch, self._queue = self._queue, []
                await self._write(batch)
        finally:
            self._runner = None

    async def _write(self, batch: list[_Change]) -> None:
        try:
            await self._apply(batch)
        except Exception as exc:
            log.exception("writing the online state of %d changes failed; they are lost", len(batch))
            for change in batch:
                if change.done is not None and not change.done.done():
                    change.done.set_exception(exc)
            return
        self.batches += 1
        self.written += len(batch)

    async def _apply(self, batch: list[_Change]) -> None:
        ids = list(dict.fromkeys(c.asset_id for c in batch if c.kind not in (_FLUSH, _USED)))
        used, self._used = self._used, {}
        results: list[tuple[asyncio.Future[bool], bool]] = []
        async with self.core.write(audited=False) as tx:
            rows = await store.load(tx.conn, ids, for_update=True) if ids else {}
            changed: dict[str, store.PresenceRow] = {}
            emitted: list[tuple[store.PresenceRow, events.PlainDeviceEvent, int]] = []
            for change in batch:
                row = rows.get(change.asset_id)
                kind = change.kind
                if kind in (_ACTIVATE, _ACTIVATE_ONLINE):
                    ok = row is not None and row.enabled
                    if row is not None and ok and row.active_time is None:
                        row.active_time = change.at
                        changed[row.asset_id] = row
                    assert change.done is not None
                    results.append((change.done, ok))
                    if not ok or kind == _ACTIVATE:
                        continue
                    kind = _ONLINE  # and go on as a login
                if kind == _USED:
                    continue
                if kind == _FLUSH:
                    assert change.done is not None
                    results.append((change.done, True))
                elif row is None:
                    continue
                elif kind == _ONLINE:
                    if not row.enabled or (row.online and row.active_time is not None):
                        continue
                    row.online = True
                    row.active_time = row.active_time or change.at
                    row.last_online_time = change.at
                    changed[row.asset_id] = row
                    emitted.append((row, events.DeviceConnected(product_key=row.product_key,
                                                                device_key=row.device_key), change.at))
                elif row.online:
                    row.online = False
                    row.last_offline_time = change.at
                    changed[row.asset_id] = row
                    emitted.append((row, events.DeviceDisconnected(product_key=row.product_key,
                                                                   device_key=row.device_key), change.at))
            await store.save(tx.conn, list(changed.values()), self.owner)
            if used:
                await self.core.credentials.used(tx.conn, used)
            ids_written = await self.core.events.append_many(
                tx.conn, [(row.org_id, payload.KIND, row.asset_id, payload, at) for row, payload, at in emitted])
            tx.pending.extend(events.Event(payload, row.org_id, row.asset_id, eid, at, self.core.node_id)
                              for (row, payload, at), eid in zip(emitted, ids_written, strict=True))
        for done, ok in results:
            if not done.done():
                done.set_result(ok)
