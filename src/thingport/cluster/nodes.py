"""This node among those sharing the database: its name, heartbeat, online state and readiness.

Online state is owned per node: the embedded broker records the devices it holds with its node id
(``devices.online_node``), so a node starting again sets only its own devices offline (and those of
no node, when no other node is alive), never those another live node holds. A node records that it
is alive every ``node_heartbeat_s`` (with how far it has read the events, :mod:`thingport.cluster.feed`);
one silent for ``node_dead_after_s`` is dead, and the first live node to notice sets the devices it
held offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from alembic.script import ScriptDirectory
from sqlalchemy import text

from thingport.cluster.feed import EventFeed, brief
from thingport.services import events, keys
from thingport.services.context import Core
from thingport.settings import Settings
from thingport.store.db import alembic_config

log = logging.getLogger(__name__)

#: How long /ready waits for the database, seconds.
READY_TIMEOUT_S = 2.0


def node_name(settings: Settings) -> str:
    """``node_id``, or ``<host name>:<http_port>``: stable across restarts, distinct per node."""
    return settings.node_id or f"{socket.gethostname()}:{settings.http_port}"


class Node:
    def __init__(self, core: Core) -> None:
        if core.node_id is None:
            raise ValueError("a node needs a node id (Core(node_id=...))")
        self.core = core
        self.node_id: str = core.node_id
        self.feed = EventFeed(core)
        # another node's master-key rotation: the new key before any other subscriber reads a secret
        self._unsubscribe = core.bus.subscribe(self._adopt, first=True)
        self._beating: asyncio.Task[None] | None = None
        #: Dead nodes whose devices this node has set offline already.
        self._swept: set[str] = set()

    async def start(self) -> int:
        """Take this node's place: its devices (of an earlier run) offline, the feed reading from
        where it stopped, the heartbeat running. Returns how many devices were set offline."""
        core = self.core
        async with core.write() as tx:
            cursor = await core.cluster.cursor(tx.conn, self.node_id)
            alive, _ = await core.cluster.others(tx.conn, self.node_id, alive_since=tx.now - self._dead_after_ms)
            # devices no node owns: an older version's, or an external broker's; nobody else to ask
            offline = await core.cluster.mark_offline(tx.conn, [self.node_id], tx.now, unowned=not alive)
            if cursor is None:
                cursor = await core.events.last_id(tx.conn)
            await core.cluster.beat(tx.conn, self.node_id, tx.now, cursor, start=True)
        if alive:
            log.info("node %s joins %d live node(s): %s", self.node_id, len(alive), ", ".join(sorted(alive)))
        await self.feed.start(cursor)
        self._beating = asyncio.get_running_loop().create_task(self._heartbeat(), name="node-heartbeat",
                                                               context=contextvars.Context())
        return offline

    async def _adopt(self, ev: events.Event) -> None:
        await keys.adopt(self.core, ev)

    async def stop(self) -> None:
        self._unsubscribe()
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        await self.feed.stop()
        with contextlib.suppress(Exception):  # the database may be gone: the next start catches up anyway
            await self.beat()

    @property
    def _dead_after_ms(self) -> int:
        return int(self.core.settings.node_dead_after_s * 1000)

    async def beat(self) -> list[str]:
        """Record this node alive and its position; set offline the devices of nodes newly found
        dead. Returns those nodes."""
        async with self.core.write() as tx:
            await self.core.cluster.beat(tx.conn, self.node_id, tx.now, self.feed.cursor)
            alive, dead = await self.core.cluster.others(tx.conn, self.node_id,
                                                         alive_since=tx.now - self._dead_after_ms)
            self._swept.difference_update(alive)
            newly = [n for n in dead if n not in self._swept]
            if newly:
                count = await self.core.cluster.mark_offline(tx.conn, newly, tx.now)
                log.warning("node(s) %s silent for %g s: their %d device(s) set offline", ", ".join(newly),
                            self.core.settings.node_dead_after_s, count)
        self._swept.update(newly)
        return newly

    async def _heartbeat(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.core.settings.node_heartbeat_s)
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("cannot record this node's heartbeat (%s): trying again", brief(exc))
                failing = True
                continue
            failing = False


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str]


async def readiness(core: Core, broker_listening: Callable[[], bool | None]) -> Readiness:
    """Whether this node should be sent traffic: the database answers, its schema is this version's
    (every migration applied), and the broker listens (``broker_listening``: None for no broker)."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), core.read() as conn:
            applied = {r[0] for r in await conn.execute(text("SELECT version_num FROM alembic_version"))}
        checks["database"] = "ok"
        checks["migrations"] = "ok" if applied == _heads() else "behind"
    except Exception as exc:
        checks["database"] = f"unreachable: {brief(exc)}" if not isinstance(exc, TimeoutError) else "unreachable"
        checks["migrations"] = "unknown"
    listening = broker_listening()
    if listening is not None:
        checks["broker"] = "ok" if listening else "not listening"
    return Readiness(all(v == "ok" for v in checks.values()), checks)


_HEADS: set[str] = set()


def _heads() -> set[str]:
    """The migration heads this version ships (read once)."""
    if not _HEADS:
        _HEADS.update(ScriptDirectory.from_config(alembic_config()).get_heads())
    return _HEADS
