"""Bulk import and export of a product's devices (docs/import.md).

An import reads CSV (a header row, then one device a row) or JSON Lines (one object a line) with
the same fields: ``deviceKey``, ``name``, ``nameI18n``, ``timezone``, ``tags``, ``attributes``,
``description``, ``secret`` (and ``sessionKey`` beside a secret an export encrypted). Every row is
validated as a single create is, by the same validators; then the good rows go in by batches, and
each bad one is reported with its line number and field. A row goes in whole or not at all:
a batch is one transaction (its devices, their labels, the product's counter, one event), and a
batch that cannot commit is written again from scratch.

Choices, and why (docs/import.md says the same to users):

* Good rows in, bad rows listed: an operator moving a fleet fixes the few bad lines and runs the
  same file again, which is idempotent — a device key the product already has is reported as
  existing and left as it is (a key given twice: the first line creates it).
* The per-product device limit holds: rows past it are reported, not created.
* One ``devices.imported`` event per batch instead of a ``device.created`` per device.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy.exc import IntegrityError

from thingport.crypto import caller_secret, ids
from thingport.domain import limits, validate
from thingport.domain.errors import InvalidArgument
from thingport.domain.models import Device, Permission
from thingport.services import events
from thingport.services.context import Caller, Core
from thingport.services.products import ProductService
from thingport.store.bulk import NewDevice

FORMATS = ("csv", "jsonl")
#: The fields of a row; an export writes them too (with ``assetId`` and ``productKey``, which an
#: import reads past: the devices go to the product it names, with identities of their own).
FIELDS = ("deviceKey", "name", "nameI18n", "timezone", "tags", "attributes", "description", "secret", "sessionKey")
EXPORT_FIELDS = ("assetId", "productKey", *FIELDS)
_IGNORED = frozenset(EXPORT_FIELDS) - frozenset(FIELDS)
_JSON_FIELDS = ("nameI18n", "tags", "attributes")
_TEXT_FIELDS = ("deviceKey", "name", "timezone", "description", "secret", "sessionKey")
DEFAULT_TIMEZONE = "+00:00"
#: Devices written per transaction in a server (the admin API): large enough that a batch's fixed
#: cost (the product lookup, the existing-key query, the commit) vanishes per device, small enough
#: that the event loop is never held for long by one.
BATCH = 2000
#: Devices written per transaction by the command, a process of its own. Random asset ids land all
#: over the indexes, so at a million devices nearly every row of a 2,000-row batch dirties index
#: pages of its own, written again at each commit; 20,000 rows share them, and the bare sqlite3
#: reference itself went from 9,100 to 25,700 rows/s at 400,000 devices (``./run bench import``).
COMMAND_BATCH = 20_000
#: Bad rows an import's report lists one by one; it counts the others.
MAX_LISTED = 1000
#: Writing a batch again after a conflict (another writer created one of its keys meanwhile, or
#: two of its drawn asset ids collided), before its rows are reported as failed.
ATTEMPTS = 3
EXPORT_PAGE = 1000
#: JSON as the dialect kit decodes bodies: numbers beyond a double kept for :func:`limits.check` to name.
_DECODER = msgspec.json.Decoder(float_hook=limits.json_float)


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    field: str
    message: str


@dataclass(slots=True)
class ImportRow(NewDevice):
    """A validated row and its line; an empty ``secret`` is generated when the row is written."""

    line: int = 0


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    existing: int = 0
    failed: int = 0
    #: The first :data:`MAX_LISTED` failures, in line order.
    errors: list[RowError] = field(default_factory=list)

    def fail(self, error: RowError) -> None:
        self.failed += 1
        if len(self.errors) < MAX_LISTED:
            self.errors.append(error)

    def as_json(self) -> dict[str, Any]:
        return {"created": self.created, "existing": self.existing, "failed": self.failed,
                "errors": [{"line": e.line, "field": e.field, "message": e.message} for e in self.errors],
                "errorsListed": len(self.errors)}


# --- reading ----------------------------------------------------------------------------------

def format_of(name: str) -> str:
    """The format a file name or media type names: ``csv`` or ``jsonl``."""
    lower = name.lower().split(";")[0].strip()
    if lower.endswith(("csv", "/csv")):
        return "csv"
    if lower.endswith(("jsonl", "ndjson", "jsonlines")):
        return "jsonl"
    raise InvalidArgument(f"format: '{name[:64]}' is neither CSV (.csv, text/csv) nor JSON Lines "
                          "(.jsonl, .ndjson, application/x-ndjson)", field="format")


def read_rows(lines: Iterable[str], fmt: str, *, private_key: str | None = None) -> Iterator[ImportRow | RowError]:
    """The rows of a file in ``fmt``, each validated (an :class:`ImportRow`) or not (a
    :class:`RowError` naming its line and field). A CSV header naming an unknown or repeated column
    is an InvalidArgument for the whole file, raised before any row. ``private_key``: the PEM that
    decrypts secrets an export encrypted for its public key."""
    numbered = enumerate(lines, 1)
    records = _csv_records(numbered) if fmt == "csv" else _jsonl_records(numbered)
    for line, record in records:
        if isinstance(record, RowError):
            yield record
            continue
        try:
            yield _validated(line, record, private_key)
        except InvalidArgument as exc:
            yield RowError(line, exc.field or "", exc.message)


def _csv_records(numbered: Iterator[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    reader = csv.reader((text for _, text in numbered), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InvalidArgument(f"line 1: the header row cannot be read ({exc})", field="header") from None
    columns = [c.strip() for c in header]
    if columns:  # a spreadsheet's "CSV UTF-8" starts with a byte-order mark
        columns[0] = columns[0].removeprefix("\ufeff")
    for c in columns:
        if c not in FIELDS and c not in _IGNORED:
            raise InvalidArgument(f"line 1: unknown column '{c[:64]}' (columns: {', '.join(EXPORT_FIELDS)})",
                                  field="header")
        if columns.count(c) > 1:
            raise InvalidArgument(f"line 1: column '{c}' appears twice", field="header")
    if "deviceKey" not in columns:
        raise InvalidArgument("line 1: the header names no deviceKey column", field="header")
    while True:
        line = reader.line_num + 1  # a record's first line: a quoted cell may hold line breaks
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, RowError(line, "row", f"row: cannot be read as CSV ({exc})")
            continue
        if not cells or cells == [""]:
            continue
        if len(cells) != len(columns):
            yield line, RowError(line, "row", f"row: {len(cells)} cells, the header has {len(columns)}")
            continue
        try:
            yield line, {name: _json(cell, name) if name in _JSON_FIELDS else cell
                         for name, cell in zip(columns, cells, strict=True) if cell != "" and name not in _IGNORED}
        except InvalidArgument as exc:
            yield line, RowError(line, exc.field or "row", exc.message)


def _jsonl_records(numbered: Iterator[tuple[int, str]]) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    for line, text in numbered:
        if not text.strip():
            continue
        try:
            record = _json(text, "")
        except InvalidArgument as exc:
            yield line, RowError(line, exc.field or "line", exc.message)
            continue
        if not isinstance(record, dict):
            yield line, RowError(line, "line", "line: must be a JSON object")
            continue
        unknown = [k for k in record if k not in FIELDS and k not in _IGNORED]
        if unknown:
            yield line, RowError(line, unknown[0][:64], f"{unknown[0][:64]}: unknown field "
                                                        f"(fields: {', '.join(EXPORT_FIELDS)})")
            continue
        yield line, {k: v for k, v in record.items() if k not in _IGNORED and v is not None}


def _json(text: str, name: str) -> Any:
    """A JSON value held to the limits every front door applies (domain/limits.py)."""
    try:
        value = _DECODER.decode(text)
        limits.check(value, name)
    except limits.Beyond as beyond:
        raise InvalidArgument(beyond.message(name or "line"), field=beyond.field or name or "line") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidArgument(f"{name or 'line'}: is not valid JSON ({str(exc)[:80]})", field=name or "line") from None
    return value


def _validated(line: int, r: dict[str, Any], private_key: str | None) -> ImportRow:
    for name in _TEXT_FIELDS:
        value = r.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidArgument(f"{name}: must be a string", field=name)
        if "\x00" in value or not value.isascii():  # what check_text looks for; the validators bound lengths
            try:
                limits.check_text(value, name)
            except limits.Beyond as beyond:
                raise InvalidArgument(beyond.message(name), field=name) from None
    key = validate.device_key(r.get("deviceKey"))
    try:
        label = validate.i18n({"defaultValue": r.get("name", key), "i18nValue": r.get("nameI18n")}, field="name")
    except InvalidArgument as exc:
        if exc.field != "name.i18nValue":
            raise
        raise InvalidArgument(f"nameI18n: must map locales to names of at most {validate.MAX_NAME} characters",
                              field="nameI18n") from None
    secret = r.get("secret")
    if secret is not None and "sessionKey" in r:
        if private_key is None:
            raise InvalidArgument("secret: is encrypted (a sessionKey is given); give the private key that "
                                  "decrypts it", field="secret")
        try:
            secret = caller_secret.decrypt(private_key, secret, r["sessionKey"])
        except Exception:  # any failure means the same: not encrypted for this key
            raise InvalidArgument("secret: cannot be decrypted with the private key given", field="secret") from None
    return ImportRow(key, label, validate.timezone(r.get("timezone", DEFAULT_TIMEZONE)),
                     validate.tags(r.get("tags")), validate.attributes(r.get("attributes"), field="attributes"),
                     validate.text(r.get("description"), field="description"),
                     "" if secret is None else validate.device_secret(secret), line=line)


# --- the service ------------------------------------------------------------------------------

class BulkService:
    def __init__(self, core: Core, products: ProductService) -> None:
        self.core = core
        self.products = products

    async def import_devices(self, caller: Caller, product_key: str, rows: Iterable[ImportRow | RowError], *,
                             progress: Callable[[ImportReport], None] | None = None,
                             batch_size: int = BATCH, big_cache: bool = False) -> ImportReport:
        """Create the devices of ``rows`` that the product does not have yet; see the module.
        ``big_cache``: a process of its own (the command) may give SQLite a large page cache
        (``store.bulk.IMPORT_CACHE_KIB``); a server's pooled connections keep theirs."""
        caller.require(Permission.DEVICE_FULL)
        async with self.core.read() as conn:  # an unknown product fails before a row is read
            await self.products.load(conn, caller, product_key)
        report = ImportReport()
        batch: list[ImportRow] = []
        for row in rows:
            if isinstance(row, RowError):
                report.fail(row)
                continue
            batch.append(row)
            if len(batch) >= batch_size:
                await self._write(caller, product_key, batch, report, big_cache)
                batch = []
                if progress is not None:
                    progress(report)
        if batch:
            await self._write(caller, product_key, batch, report, big_cache)
        if progress is not None:
            progress(report)
        report.errors.sort(key=lambda e: e.line)
        return report

    async def _write(self, caller: Caller, product_key: str, batch: list[ImportRow], report: ImportReport,
                     big_cache: bool) -> None:
        bulk, limit = self.core.bulk, self.core.settings.product_device_limit
        for _ in range(ATTEMPTS):
            try:
                async with self.core.write(caller.org_id) as tx:
                    tx.about(product_key)  # the audit record's target: the product the devices join
                    await self.products.load(tx.conn, caller, product_key, for_update=True)
                    taken = await bulk.existing(tx.conn, product_key, [r.device_key for r in batch])
                    room = limit - await bulk.count(tx.conn, product_key)
                    fresh: list[ImportRow] = []
                    over: list[ImportRow] = []
                    for r in batch:
                        if r.device_key in taken:
                            continue
                        taken.add(r.device_key)  # a key given twice: its first line creates it
                        (fresh if len(fresh) < room else over).append(r)
                    new = _drawn(fresh)
                    if new:
                        await bulk.insert_many(tx.conn, caller.org_id, product_key, new, tx.now, big_cache=big_cache)
                        await tx.emit(events.DevicesImported(product_key=product_key, count=len(new)))
            except IntegrityError:
                continue
            report.created += len(fresh)
            report.existing += len(batch) - len(fresh) - len(over)
            for r in over:
                report.fail(RowError(r.line, "productKey", f"productKey: product {product_key} already has the "
                                                           f"maximum of {limit} devices"))
            return
        for r in batch:
            report.fail(RowError(r.line, "row", "row: conflicting writes kept this batch from committing; "
                                                "run the import again (it skips what exists)"))

    async def export(self, caller: Caller, product_key: str | None = None, *,
                     page_size: int = EXPORT_PAGE) -> AsyncIterator[Device]:
        """The organization's devices (or one product's), a page per read transaction, so memory
        stays one page however large the registry and no transaction is held open for long."""
        caller.require(Permission.DEVICE_READ)
        if product_key is not None:
            async with self.core.read() as conn:
                await self.products.load(conn, caller, product_key)
        after: tuple[str, str] | None = None
        while True:
            async with self.core.read() as conn:
                page = await self.core.bulk.page(conn, caller.org_id, product_key, after, page_size)
            for d in page:
                yield d
            if len(page) < page_size:
                return
            after = (page[-1].product_key, page[-1].device_key)


def _drawn(rows: list[ImportRow]) -> list[ImportRow]:
    """The rows with fresh asset ids, and generated secrets where none was given (drawn in bulk)."""
    secrets = iter(ids.alnum_many(sum(not r.secret for r in rows), 20))
    for r, asset_id in zip(rows, ids.alnum_many(len(rows), 8), strict=True):
        r.asset_id = asset_id
        if not r.secret:
            r.secret = next(secrets)
    return rows


# --- writing an export --------------------------------------------------------------------------

def export_record(d: Device, public_key: str | None) -> dict[str, Any]:
    """A device as an export row: the import's fields, and the secret only encrypted for
    ``public_key`` (with its ``sessionKey``, as EnOS v2.4 returns secrets)."""
    record: dict[str, Any] = {"assetId": d.asset_id, "productKey": d.product_key, "deviceKey": d.device_key,
                              "name": d.name.default, "nameI18n": d.name.translations or None,
                              "timezone": d.timezone, "tags": d.tags or None, "attributes": d.attributes or None,
                              "description": d.description}
    if public_key is not None:
        record["secret"], record["sessionKey"] = caller_secret.encrypt(public_key, d.secret)
    return record


def export_lines(fmt: str, with_secrets: bool) -> Callable[[dict[str, Any] | None], str]:
    """A writer of export lines: the header first (CSV; called with None), then one per record."""
    columns = [f for f in EXPORT_FIELDS if with_secrets or f not in ("secret", "sessionKey")]
    if fmt == "jsonl":
        return lambda r: "" if r is None else json.dumps({k: v for k, v in r.items() if v is not None},
                                                         ensure_ascii=False) + "\n"

    class Line:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text = text

    line = Line()
    writer = csv.writer(line, lineterminator="\n")

    def write(r: dict[str, Any] | None) -> str:
        if r is None:
            writer.writerow(columns)
        else:
            writer.writerow(["" if r.get(c) is None else json.dumps(r[c], ensure_ascii=False)
                             if c in _JSON_FIELDS else r[c] for c in columns])
        return line.text

    return write


def check_public_key(pem: str) -> str:
    """The PEM of an RSA public key, or an InvalidArgument naming it."""
    try:
        caller_secret.load_public_key(pem)
    except caller_secret.CallerKeyError as exc:
        raise InvalidArgument(f"publicKey: is not an RSA public key in PEM ({str(exc)[:80]})",
                              field="publicKey") from None
    return pem
