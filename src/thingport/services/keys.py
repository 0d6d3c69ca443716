"""Master key rotation, online on every node.

Order matters for a crash at any point: first the key file gains the new primary key (old keys
kept), then every secret is re-encrypted in one transaction, then the old keys are dropped.

Other nodes sharing the database take the new key without a restart: the ``keyring.rotated`` event
carries it encrypted under the previous primary key, which every node holds (``wrapped``). A node
reading the event (:func:`adopt`) adds the key to its keyring and key file, makes it primary,
re-encrypts what it wrote under the old key meanwhile, and drops the old keys. Once every live node
has read the event (their heartbeats' event positions, ``cluster_nodes``), or after
:func:`scrub_wait_s`, the rotating node removes ``wrapped`` from the stored row, so the database and
an old key file together no longer reveal the new key. A node that was down during the rotation
needs the new key file copied to it (docs/operations.md, "Master key rotation").
"""

from __future__ import annotations

import asyncio
import base64
import logging

import msgspec
from sqlalchemy import update

from thingport.crypto.keyring import Keyring, KeyringError
from thingport.domain.models import now_ms
from thingport.services import events
from thingport.services.context import Core
from thingport.store.rekey import reencrypt_all
from thingport.store.schema import events as events_table

log = logging.getLogger(__name__)

#: Associated data of the wrapped key, bound to its id.
WRAP_CONTEXT = "keyring.rotated:"


async def rotate_master_key(core: Core) -> tuple[str, int]:
    """Returns the new key id and how many secrets were re-encrypted."""
    path = core.settings.key_file
    previous = core.keyring.primary
    rotated = core.keyring.rotated()
    rotated.save(path)
    core.keyring.keys, core.keyring.primary = rotated.keys, rotated.primary
    kid = core.keyring.primary
    wrapped = Keyring({previous: core.keyring.keys[previous]}, previous).encrypt(
        base64.b64encode(core.keyring.keys[kid]).decode(), context=WRAP_CONTEXT + kid)
    async with core.write() as tx:
        count = await reencrypt_all(tx.conn, core.keyring)
        await tx.emit(events.KeyringRotated(key_id=kid, wrapped=wrapped))
        event_id = tx.pending[-1].id
    _drop_old_keys(core)
    await scrub(core, event_id, kid)
    return kid, count


def scrub_wait_s(core: Core) -> float:
    """How long the rotating node waits for the live nodes to read the rotation: three heartbeats."""
    return 3 * core.settings.node_heartbeat_s + 1


async def scrub(core: Core, event_id: int, kid: str) -> None:
    """Remove the wrapped key from the stored event once every live node has read it (or the wait is over)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scrub_wait_s(core)
    behind: list[str] = []
    while True:
        async with core.read() as conn:
            behind = await core.cluster.behind(conn, event_id, core.node_id,
                                               alive_since=now_ms() - int(core.settings.node_dead_after_s * 1000))
        if not behind or loop.time() >= deadline:
            break
        await asyncio.sleep(min(0.2, core.settings.node_heartbeat_s))
    if behind:
        log.warning("node(s) %s did not take the new master key %s in time: copy the key file to them",
                    ", ".join(behind), kid)
    async with core.write() as tx:
        await tx.conn.execute(update(events_table).where(events_table.c.id == event_id).values(
            payload=msgspec.json.encode(events.KeyringRotated(key_id=kid)).decode()))


async def adopt(core: Core, ev: events.Event) -> None:
    """Take another node's rotation: the new key (from the key file if it is there, else unwrapped),
    primary at once, before any other subscriber reads a secret; then what this node wrote under the
    old key meanwhile is re-encrypted and the old keys dropped."""
    p = ev.payload
    if not (ev.foreign and isinstance(p, events.KeyringRotated)):
        return
    ring = core.keyring
    if p.key_id not in ring.keys:
        try:
            on_file = Keyring.load(core.settings.key_file)
        except KeyringError:
            on_file = None
        if on_file is not None and p.key_id in on_file.keys:
            ring.keys[p.key_id] = on_file.keys[p.key_id]
        elif p.wrapped is not None:
            try:
                ring.keys[p.key_id] = base64.b64decode(ring.decrypt(p.wrapped, context=WRAP_CONTEXT + p.key_id))
            except KeyringError:
                log.error("master key %s rotated on another node cannot be taken here (this node lacks the key it "
                          "was sent under): copy the key file from that node and restart", p.key_id)
                return
        else:
            log.error("master key %s rotated on another node is not in %s: copy the key file from that node and "
                      "restart", p.key_id, core.settings.key_file)
            return
    ring.primary = p.key_id
    ring.save(core.settings.key_file)
    async with core.write() as tx:
        count = await reencrypt_all(tx.conn, ring)
    _drop_old_keys(core)
    log.info("took master key %s rotated on another node (%d secrets written meanwhile re-encrypted)",
             p.key_id, count)


def _drop_old_keys(core: Core) -> None:
    for kid in [k for k in core.keyring.keys if k != core.keyring.primary]:
        core.keyring.keys.pop(kid)
    core.keyring.save(core.settings.key_file)
