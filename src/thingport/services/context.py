"""What every service shares: the database, the stores, the bus, the settings; and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from thingport.crypto.keyring import Keyring
from thingport.domain.errors import PermissionDenied, Unavailable
from thingport.domain.models import Permission, now_ms
from thingport.services.audit import ATTEMPT, Attempt
from thingport.services.events import Event, EventBus, EventPayload
from thingport.settings import Settings
from thingport.store.accounts import AccountStore
from thingport.store.audit import AuditStore
from thingport.store.bulk import BulkStore
from thingport.store.certificates import CertificateStore
from thingport.store.cluster import ClusterStore
from thingport.store.counters import CounterStore
from thingport.store.credentials import CredentialStore
from thingport.store.db import Database
from thingport.store.devices import DeviceStore
from thingport.store.driver import Driver, Row
from thingport.store.events import EventStore
from thingport.store.living_accounts import LivingAccountStore
from thingport.store.oceanconnect import OceanConnectStore
from thingport.store.products import ProductStore
from thingport.store.provisioning import ProvisioningStore


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: an application of one organization with its permissions."""

    org_id: str
    app_key: str | None
    permissions: frozenset[Permission]

    def require(self, permission: Permission) -> None:
        if not permission.satisfied_by(self.permissions):
            raise PermissionDenied(
                f"Denied resource: application {self.app_key} lacks the '{permission.value}' permission"
            )

    @classmethod
    def operator(cls, org_id: str) -> Caller:
        return cls(org_id, None, Permission.all())


@dataclass(slots=True)
class RequestNonce:
    """The single-use value (hashed) of the signed request being answered, until a write records it."""

    key: str
    expire: int
    recorded: bool = False


#: Set by the replay guard for the request it let through when it keeps used values in memory
#: (:mod:`thingport.services.nonces`); the request's first write transaction records the value with
#: what it writes, so no write of a signed request commits without the proof that it was made. A
#: context variable rather than an argument: the signed requests of every dialect reach the services
#: through many paths, and the guard and :meth:`Core.write` are the two ends that know of it.
REQUEST_NONCE: ContextVar[RequestNonce | None] = ContextVar("request_nonce", default=None)


@dataclass(slots=True)
class Tx:
    """A write transaction plus the events it will publish once committed."""

    conn: AsyncConnection
    outbox: EventStore
    org_id: str
    now: int
    pending: list[Event] = field(default_factory=list)
    #: What the audit record names as the change's target when no event names a device.
    target: str = ""
    #: The attempt whose audit record this transaction owes (``Core.write`` appends it at the end,
    #: unless a statement of the work wrote it: :meth:`audit_row`).
    attempt: Attempt | None = None
    #: The audit record's id once a statement of the work wrote it.
    audit_id: int = 0

    def about(self, target: str, *, org_id: str = "") -> None:
        """Name what this transaction changes (an org, an application) for the audit trail."""
        self.target = target
        if org_id and not self.org_id:
            self.org_id = org_id

    async def emit(self, payload: EventPayload, asset_id: str | None = None, *, org_id: str | None = None) -> None:
        """Record ``payload`` about ``asset_id`` (None: not about a device) in the transaction's
        organization, or ``org_id`` for a transaction not opened for one."""
        org = org_id or self.org_id
        self.emitted(payload, asset_id, await self.outbox.append(self.conn, org, payload.KIND, asset_id, payload,
                                                                 self.now), org_id=org)

    def event_row(self, payload: EventPayload, asset_id: str | None = None) -> Row:
        """``payload``'s events row, for a store that writes it in the statement of the change itself
        (a round trip fewer than :meth:`emit` on PostgreSQL); :meth:`emitted` once written."""
        return self.outbox.row(self.org_id, payload.KIND, asset_id, payload, self.now)

    def emitted(self, payload: EventPayload, asset_id: str | None, event_id: int, *, org_id: str | None = None) -> None:
        """``payload``'s row was written with this id: publish it once the transaction commits."""
        self.pending.append(Event(payload, org_id or self.org_id, asset_id, event_id, self.now, self.outbox.node_id))

    def audit_row(self, target: str) -> Row | None:
        """The audit record this transaction owes (None: it owes none), for a store that writes it in
        the statement of the change itself, which must be the work's last (``Core.write`` would
        otherwise append it after the work, naming ``target`` the same way); :meth:`audited` once
        written."""
        if self.attempt is None or self.audit_id:
            return None
        return AuditStore.row(self.attempt.record(self.now, self.org_id, self.target or target))

    def audited(self, record_id: int) -> None:
        self.audit_id = record_id


class Core:
    """The composed core: one per running service, built from settings and the master key.

    It holds every store (``store/__init__.py``), so a service reaches any table through
    ``core.<store>`` and no service builds a store of its own.
    """

    def __init__(self, settings: Settings, keyring: Keyring, db: Database, bus: EventBus | None = None,
                 node_id: str | None = None) -> None:
        self.settings = settings
        #: This node's name among those sharing the database; None for a process that serves nothing
        #: (a ``thingport`` command), whose events every node reads from the table.
        self.node_id = node_id
        self.keyring = keyring
        self.db = db
        self.bus = bus or EventBus()
        self.accounts = AccountStore(keyring)
        self.products = ProductStore(keyring)
        self.devices = DeviceStore(keyring)
        self.bulk = BulkStore(keyring)
        self.events = EventStore(node_id)
        self.cluster = ClusterStore()
        self.counters = CounterStore()
        self.oceanconnect = OceanConnectStore(keyring)
        self.living_accounts = LivingAccountStore()
        self.provisioning = ProvisioningStore()
        self.certificates = CertificateStore(keyring)
        self.credentials = CredentialStore()
        self.audit = AuditStore()

    @asynccontextmanager
    async def write(self, org_id: str = "", *, audited: bool = True, now: int | None = None) -> AsyncIterator[Tx]:
        """One write transaction; its events are published after it commits, never before.

        The first one a signed request makes also records the request's single-use value
        (:data:`REQUEST_NONCE`): replayed after a crash, the request is refused, whatever it wrote.
        The first one of an audited attempt (:mod:`thingport.services.audit`) appends its record,
        so a change and its audit record commit together; ``audited=False`` for bookkeeping that
        is nobody's change (used nonces, presence batches, the trail itself). ``now``: the
        transaction's time (``Tx.now``) when the caller read it already, to make rows before it.
        """
        nonce = REQUEST_NONCE.get()
        if nonce is not None and nonce.recorded:
            nonce = None
        attempt = ATTEMPT.get() if audited else None
        if attempt is not None and not attempt.records_now:
            attempt = None
        record_id = 0
        try:
            async with self.db.write() as conn:
                tx = Tx(conn, self.events, org_id, now_ms() if now is None else now, attempt=attempt)
                yield tx
                if nonce is not None:
                    await self.accounts.store_nonces(conn, [(nonce.key, nonce.expire)])
                record_id = tx.audit_id
                if attempt is not None and attempt.record_id == 0 and not record_id:
                    first = tx.pending[0] if tx.pending else None
                    record = attempt.record(tx.now, tx.org_id or (first.org_id if first else ""),
                                            tx.target or ((first.asset_id or "") if first else ""))
                    record_id = await self.audit.append(conn, record)
        except LOST_DATABASE as exc:
            raise unavailable(exc) from exc
        if nonce is not None:
            nonce.recorded = True
        if record_id:
            assert attempt is not None
            attempt.record_id = record_id
        if tx.pending:
            await self.bus.publish(tx.pending)

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Driver]:
        """A driver connection outside any transaction, for hot single statements (``Database.driver``)."""
        try:
            async with self.db.driver() as raw:
                yield raw
        except LOST_DATABASE as exc:
            raise unavailable(exc) from exc

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.db.read() as conn:
                yield conn
        except LOST_DATABASE as exc:
            raise unavailable(exc) from exc


#: What a database out of reach raises (a refused or cut connection, a pool that cannot connect).
#: Never a constraint's violation (``IntegrityError``), which services handle themselves, nor any
#: other ``OSError`` (a full disk is no reason to try another node).
LOST_DATABASE = (OperationalError, InterfaceError, PoolTimeout, ConnectionError)


def unavailable(exc: BaseException) -> Unavailable:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return Unavailable(f"the database cannot be reached ({type(exc).__name__}); nothing was changed, try again")
