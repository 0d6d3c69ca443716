"""Device login credentials in memory, so that a login is CPU only: a lookup and one signature.

Every device's login record (keys, secret, enabled, activated, the signature family it last used)
and its product's (secret, gateway or not, dynamic activation) are read when the broker starts, a
page at a time (:meth:`Credentials.load`); a device created since is read on its first login and
kept. Other schemes keep what they verify against here too (:meth:`Credentials.remember`).

Changes invalidate at once, driven by the typed events of the bus: a device's record goes with
``device.replaced`` (OceanConnect's key refresh included), ``.disabled``, ``.enabled``, ``.deleted``,
``.bound`` and ``.bind_expired``; a product's with ``product.updated`` and ``.deleted``, its
devices' with it; everything with ``keyring.rotated``, after which the records are read again. A
read that overlaps an invalidation of what it read does not keep its answer (it may predate the
change), so no login can be checked against a secret replaced before it was answered.

The bus carries every writer's events: this node's at commit, other nodes' and ``thingport``
commands' through the event feed (:mod:`thingport.cluster.feed`) within milliseconds on PostgreSQL
and ``event_poll_ms`` on SQLite. While the feed cannot read (``feed.lost``: the database is out of
reach, so another node may change a device unseen) nothing is kept and every login reads its
device, until the feed has caught up (``feed.resumed``).

A rotation with a grace period (``device.replaced`` with ``grace_until``) leaves the previous key
and secret on the device's row until then: a record carries them, and answers a login by the old
key too while no other device has taken it. Their end is checked at each login against the clock,
so no event is needed when it comes.

Plain secrets stay in this process's memory only, as the keyring's key does; at rest they are
ciphertexts, as ever.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

from thingport.crypto.device_sign import Family
from thingport.crypto.keyring import KeyringError
from thingport.domain.models import Device, Product, now_ms
from thingport.services import events
from thingport.services.context import Core
from thingport.store.logins import DeviceLoginRow, ProductLoginRow, device_logins, product_logins

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Devices read per query while loading.
PAGE = 5000

#: Events after which a device's login record must be read again.
DEVICE_CHANGES = (events.DeviceReplaced, events.DeviceDisabled, events.DeviceEnabled, events.DeviceDeleted,
                  events.DeviceBound, events.DeviceBindExpired, events.CertificateRevoked)


class ProductLogin:
    """What a login needs of a product; shared by every record of its devices."""

    __slots__ = ("bidirectional_auth", "dynamic_activate_enabled", "is_gateway", "org_id", "product_key", "secret")

    def __init__(self, row: ProductLoginRow) -> None:
        self.org_id = row.org_id
        self.product_key = row.product_key
        self.secret = _readable(row.secret)
        self.is_gateway = row.is_gateway
        self.dynamic_activate_enabled = row.dynamic_activate_enabled
        self.bidirectional_auth = row.bidirectional_auth

    @classmethod
    def of(cls, product: Product) -> ProductLogin:
        return cls(ProductLoginRow(product.org_id, product.product_key, product.secret, product.is_gateway,
                                   product.dynamic_activate_enabled, product.bidirectional_auth))


class LoginRecord:
    """What a device's login is checked against; ``family``: the signature family it last used."""

    __slots__ = ("active", "asset_id", "device_key", "enabled", "family", "previous", "product", "rotated", "secret")

    def __init__(self, row: DeviceLoginRow, product: ProductLogin) -> None:
        self.asset_id = row.asset_id
        self.device_key = row.device_key
        self.secret = _readable(row.secret)
        self.enabled = row.enabled
        self.active = row.active
        self.family: Family | None = None
        self.product = product
        #: The credential a rotation with a grace period replaced: (key, secret, end in ms).
        self.previous = row.previous
        #: It has a credential history (rotated once at least): a login notes its last use.
        self.rotated = row.rotated

    def previous_secret(self, device_key: str, now: int | None = None) -> tuple[str, int] | None:
        """The previous secret and its end, when ``device_key`` is its key and its grace period runs."""
        prev = self.previous
        if prev is None or prev[0] != device_key or (now_ms() if now is None else now) >= prev[2]:
            return None
        return prev[1], prev[2]

    @classmethod
    def of(cls, device: Device, product: Product) -> LoginRecord:
        """A record of a device read some other way (a gateway's sub-device)."""
        return cls(DeviceLoginRow(device.asset_id, device.org_id, device.product_key, device.device_key,
                                  device.secret, device.enabled, device.active_time is not None),
                   ProductLogin.of(product))

    @property
    def org_id(self) -> str:
        return self.product.org_id

    @property
    def product_key(self) -> str:
        return self.product.product_key


def _readable(secret: str | None) -> str:
    if secret is None:  # read with unreadable=True, and not left out
        raise KeyringError("a stored secret cannot be decrypted with the master key")
    return secret


class Credentials:
    def __init__(self, core: Core) -> None:
        self.core = core
        self._products: dict[str, ProductLogin] = {}
        #: productKey → deviceKey → record: a login names its device by these two.
        self._by_key: dict[str, dict[str, LoginRecord]] = {}
        self._by_id: dict[str, LoginRecord] = {}
        #: Other schemes' credentials: key → (asset id, value), and each device's keys.
        self._memo: dict[Hashable, tuple[str, object]] = {}
        self._memo_of: dict[str, list[Hashable]] = {}
        #: Reads under way, and the asset ids and product keys invalidated while any was.
        self._reads = 0
        self._touched: set[str] = set()
        self._loading: asyncio.Task[int] | None = None
        #: Whether :meth:`load` ran: only then is everything read again after a rotation.
        self._loaded = False
        #: Whether records are kept: not while other writers' changes cannot be seen (``feed.lost``).
        self.keeps = True
        self._unsubscribe = core.bus.subscribe(self._on_event)

    def close(self) -> None:
        self._unsubscribe()
        if self._loading is not None:
            self._loading.cancel()

    def stop(self) -> None:
        """The broker stopped: a reload under way is not needed any more."""
        if self._loading is not None:
            self._loading.cancel()
            self._loading = None

    def __len__(self) -> int:
        return len(self._by_id)

    # --- reading ------------------------------------------------------------------------------

    async def load(self) -> int:
        """Read every device's record, a page at a time (the loop keeps serving); returns how many.

        A secret the keyring cannot decrypt is left out (and logged): that device's login reads it
        and fails, as every login did before the cache, instead of the broker not starting.
        """
        if not self.keeps:
            return 0
        keyring = self.core.keyring
        self._loaded = True
        self._reads += 1
        unreadable = 0
        try:
            async with self.core.read() as conn:
                for p in await product_logins(conn, keyring, unreadable=True):
                    if p.secret is None:
                        unreadable += 1
                    elif p.product_key not in self._touched:
                        self._products[p.product_key] = ProductLogin(p)
            after, count = "", 0
            while True:
                async with self.core.read() as conn:
                    rows = await device_logins(conn, keyring, after=after, limit=PAGE, unreadable=True)
                for row in rows:
                    if row.secret is None:
                        unreadable += 1
                    elif self._keepable(row):
                        self._keep(row)
                        count += 1
                if len(rows) < PAGE:
                    return count
                after = rows[-1].asset_id
                await asyncio.sleep(0)
        finally:
            self._read_done()
            if unreadable:
                log.warning("%d stored secrets cannot be decrypted with the master key: those devices cannot log in",
                            unreadable)

    async def find(self, product_key: str, device_key: str) -> LoginRecord | None:
        """The device a login names, from memory; read (and kept) when not there."""
        return self.cached(product_key, device_key) or await self._read(login=(product_key, device_key))

    def cached(self, product_key: str, device_key: str) -> LoginRecord | None:
        """The device a login names if it is in memory (no read)."""
        hit = self._by_key.get(product_key)
        return hit.get(device_key) if hit is not None else None

    def by_id(self, asset_id: str) -> LoginRecord | None:
        """A device's record if it is in memory (no read)."""
        return self._by_id.get(asset_id)

    async def remember(self, key: Hashable, read: Callable[[], Awaitable[T | None]],
                       asset_id_of: Callable[[T], str], keep: Callable[[T], bool] = lambda _: True) -> T | None:
        """What ``read`` returns for ``key``, kept (when ``keep`` says so) until its device changes.

        For a login scheme with credentials of its own (OceanConnect's), under the same rules as
        the signed logins' records.
        """
        hit = self._memo.get(key)
        if hit is not None:
            return hit[1]  # type: ignore[return-value]
        self._reads += 1
        try:
            value = await read()
            if value is not None and self.keeps and keep(value):
                asset_id = asset_id_of(value)
                if asset_id not in self._touched:
                    self._memo[key] = (asset_id, value)
                    self._memo_of.setdefault(asset_id, []).append(key)
            return value
        finally:
            self._read_done()

    async def _read(self, *, login: tuple[str, str]) -> LoginRecord | None:
        self._reads += 1
        try:
            async with self.core.read() as conn:
                rows = await device_logins(conn, self.core.keyring, login=login)
                if not rows:
                    return None
                row = rows[0]
                product = self._products.get(row.product_key)
                if product is None:
                    found = await product_logins(conn, self.core.keyring, row.product_key)
                    if not found:
                        return None
                    product = ProductLogin(found[0])
                    if self.keeps and row.product_key not in self._touched:
                        self._products[row.product_key] = product
            if self._keepable(row):
                return self._keep(row)
            return LoginRecord(row, product)
        finally:
            self._read_done()

    def _keepable(self, row: DeviceLoginRow) -> bool:
        return (self.keeps and row.asset_id not in self._touched and row.product_key not in self._touched
                and row.product_key in self._products)

    def _keep(self, row: DeviceLoginRow) -> LoginRecord:
        product = self._products[row.product_key]
        record = LoginRecord(row, product)
        old = self._by_id.get(row.asset_id)
        if old is not None:
            self._drop(old)
        self._by_id[row.asset_id] = record
        keys = self._by_key.setdefault(product.product_key, {})
        keys[row.device_key] = record
        if row.previous is not None and row.previous[0] not in keys:  # its old key, in its grace period
            keys[row.previous[0]] = record
        return record

    def _read_done(self) -> None:
        self._reads -= 1
        if not self._reads:
            self._touched.clear()

    # --- invalidation -------------------------------------------------------------------------

    async def _on_event(self, ev: events.Event) -> None:
        self._apply(ev)

    def _apply(self, ev: events.Event) -> bool:
        """Forget what ``ev`` changes; whether it changed anything a login reads."""
        p = ev.payload
        if isinstance(p, DEVICE_CHANGES) and ev.asset_id is not None:
            self.forget_device(ev.asset_id)
        elif isinstance(p, events.ProductUpdated | events.ProductDeleted):
            self.forget_product(p.product_key)
        elif isinstance(p, events.KeyringRotated):
            self.forget_all()
            if self._loaded and (self._loading is None or self._loading.done()):
                self._loading = asyncio.get_running_loop().create_task(self.load(), context=contextvars.Context())
        elif isinstance(p, events.FeedLost):
            self.keeps = False
            self.forget_all()
        elif isinstance(p, events.FeedResumed):
            self.keeps = True
        else:
            return False
        return True

    def forget_device(self, asset_id: str) -> None:
        if self._reads:
            self._touched.add(asset_id)
        record = self._by_id.pop(asset_id, None)
        if record is not None:
            self._drop(record)
        for key in self._memo_of.pop(asset_id, ()):
            self._memo.pop(key, None)

    def forget_product(self, product_key: str) -> None:
        if self._reads:
            self._touched.add(product_key)
        self._products.pop(product_key, None)
        for record in self._by_key.pop(product_key, {}).values():
            self.forget_device(record.asset_id)

    def forget_all(self) -> None:
        if self._reads:
            self._touched.update(self._by_id)
            self._touched.update(self._products)
        self._products.clear()
        self._by_key.clear()
        self._by_id.clear()
        self._memo.clear()
        self._memo_of.clear()

    def _drop(self, record: LoginRecord) -> None:
        devices = self._by_key.get(record.product_key)
        if devices is None:
            return
        for key in (record.device_key, record.previous[0] if record.previous else None):
            if key is not None and devices.get(key) is record:
                del devices[key]
