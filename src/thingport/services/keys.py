"""Master key rotation.

Order matters for a crash at any point: first the key file gains the new primary key (old keys
kept), then every secret is re-encrypted in one transaction, then the old keys are dropped.
"""

from __future__ import annotations

from thingport.services import events
from thingport.services.context import Core
from thingport.store.rekey import reencrypt_all


async def rotate_master_key(core: Core) -> tuple[str, int]:
    """Returns the new key id and how many secrets were re-encrypted."""
    path = core.settings.key_file
    rotated = core.keyring.rotated()
    rotated.save(path)
    core.keyring.keys, core.keyring.primary = rotated.keys, rotated.primary
    async with core.write() as tx:
        count = await reencrypt_all(tx.conn, core.keyring)
        await tx.emit(events.KeyringRotated(key_id=core.keyring.primary))
    old = [k for k in core.keyring.keys if k != core.keyring.primary]
    for kid in old:
        core.keyring.keys.pop(kid)
    core.keyring.save(path)
    return core.keyring.primary, count
