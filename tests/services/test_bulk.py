"""Bulk import and export: validation by line, idempotence, nothing half-written, the limit, the
event per batch, secrets at rest and on the way out, on every backend."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import func, select, text

from tests.conftest import make_product
from tests.support.certs import rsa_keypair
from thingport.crypto import caller_secret
from thingport.domain.errors import InvalidArgument, ProductNotFound
from thingport.domain.models import Page
from thingport.services import bulk, events
from thingport.services.bulk import ImportRow, RowError, read_rows
from thingport.services.container import Services
from thingport.services.context import Caller
from thingport.services.devices import DeviceRef
from thingport.store.schema import device_labels, devices

CSV = """deviceKey,name,timezone,tags,attributes,secret
meter-1,Meter 1,+08:00,"{""site"": ""north""}","{""floor"": 3}",
meter-2,,Asia/Shanghai,,,Secret-12345
"""


def csv_lines(body: str) -> list[str]:
    return body.splitlines(keepends=True)


async def count_rows(services: Services) -> tuple[int, int]:
    async with services.core.read() as conn:
        d = (await conn.execute(select(func.count()).select_from(devices))).scalar_one()
        lab = (await conn.execute(select(func.count()).select_from(device_labels))).scalar_one()
    return int(d), int(lab)


async def test_csv_import_creates_devices_as_single_creates_do(services: Services, caller: Caller,
                                                                service_product: str) -> None:
    report = await services.bulk.import_devices(caller, service_product, read_rows(csv_lines(CSV), "csv"))
    assert (report.created, report.existing, report.failed) == (2, 0, 0)
    one = (await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="meter-1"))).device
    assert (one.name.default, one.timezone, one.tags, one.attributes) == ("Meter 1", "+08:00", {"site": "north"},
                                                                          {"floor": 3})
    assert len(one.secret) == 20 and one.secret.isalnum() and one.enabled and one.active_time is None
    two = (await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="meter-2"))).device
    assert (two.name.default, two.secret) == ("meter-2", "Secret-12345")  # the name defaults to the key
    found, total = await services.devices.search(caller, services_expr('deviceTags.site = "north"'), Page(1, 10))
    assert total == 1 and found[0].device.device_key == "meter-1"  # labels written: searchable at once
    stats = await services.devices.stats(caller, service_product)
    assert stats.total == 2


def services_expr(source: str):  # type: ignore[no-untyped-def]
    from thingport.domain import expression

    return expression.parse(source, expression.DEVICE_FIELDS)


async def test_rerun_is_idempotent(services: Services, caller: Caller, service_product: str) -> None:
    await services.bulk.import_devices(caller, service_product, read_rows(csv_lines(CSV), "csv"))
    before = (await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="meter-1"))).device
    changed = CSV.replace("Meter 1", "Renamed")
    report = await services.bulk.import_devices(caller, service_product, read_rows(csv_lines(changed), "csv"))
    assert (report.created, report.existing, report.failed) == (0, 2, 0)
    after = (await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="meter-1"))).device
    assert after == before  # existing devices are left as they are, secret included
    assert await count_rows(services) == (2, 4)


async def test_bad_rows_are_reported_by_line_and_field_and_nothing_of_them_is_written(
        services: Services, caller: Caller, service_product: str) -> None:
    body = ("deviceKey,name,timezone,tags,attributes\n"
            "good-1,G,+08:00,,\n"
            "bad key,B,+08:00,,\n"
            'good-2,"a name\nover two lines",+00:00,,\n'
            "good-3,G,Mars/Base,,\n"
            "good-4,G,,not json,\n"
            'good-5,G,,"{""k"": 1}",\n'
            "good-6,G,,,[1]\n"
            "too,many,cells,,,\n"
            "good-7,G,+01:00,,\n")
    report = await services.bulk.import_devices(caller, service_product, read_rows(csv_lines(body), "csv"))
    assert (report.created, report.failed) == (3, 6)
    assert [(e.line, e.field) for e in report.errors] == [
        (3, "deviceKey"), (6, "timezone"), (7, "tags"), (8, "tags.k"), (9, "attributes"), (10, "row")]
    assert "4-64 characters" in report.errors[0].message
    keys = {d.device.device_key for d in (await services.devices.search(caller, None, Page(1, 50)))[0]}
    assert keys == {"good-1", "good-2", "good-7"}
    assert await count_rows(services) == (3, 3)  # one name label each; nothing of a bad row


async def test_jsonl_rows_and_their_errors(services: Services, caller: Caller, service_product: str) -> None:
    lines = [json.dumps({"deviceKey": "j-0001", "name": "J", "nameI18n": {"zh_CN": "甲"}, "tags": {"a": "b"},
                         "description": "first"}),
             "",
             "not json",
             json.dumps({"deviceKey": "j-0002", "colour": "red"}),
             json.dumps(["j-0003"]),
             json.dumps({"deviceKey": "j-0004", "attributes": {"n": 2**70}}),
             json.dumps({"deviceKey": "j-0005", "secret": "short"}),
             json.dumps({"deviceKey": "j-0006", "name": {"defaultValue": "x"}}),
             '{"deviceKey": "j-0007", "description": "nul\\u0000"}',
             "[" * 5000 + "]" * 5000]
    report = await services.bulk.import_devices(caller, service_product, read_rows(lines, "jsonl"))
    assert report.created == 1
    assert [(e.line, e.field) for e in report.errors] == [
        (3, "line"), (4, "colour"), (5, "line"), (6, "attributes.n"), (7, "secret"), (8, "name"),
        (9, "description"), (10, "line")]
    d = (await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="j-0001"))).device
    assert (d.name.translations, d.description) == ({"zh_CN": "甲"}, "first")


def test_a_bad_header_refuses_the_whole_file() -> None:
    with pytest.raises(InvalidArgument, match="unknown column 'colour'"):
        list(read_rows(["deviceKey,colour\n", "k-0001,red\n"], "csv"))
    with pytest.raises(InvalidArgument, match="no deviceKey"):
        list(read_rows(["name\n", "x\n"], "csv"))
    with pytest.raises(InvalidArgument, match="twice"):
        list(read_rows(["deviceKey,name,name\n"], "csv"))
    assert list(read_rows([], "csv")) == []
    bom = list(read_rows(["\ufeffdeviceKey,name\n", "k-0001,x\n"], "csv"))  # as spreadsheets save CSV
    assert isinstance(bom[0], ImportRow) and bom[0].device_key == "k-0001"


def test_formats_by_name_and_media_type() -> None:
    assert [bulk.format_of(n) for n in ("a.CSV", "text/csv; charset=utf-8", "x.jsonl", "application/x-ndjson")] == [
        "csv", "csv", "jsonl", "jsonl"]
    with pytest.raises(InvalidArgument) as exc:
        bulk.format_of("application/json")
    assert exc.value.field == "format"


async def test_a_key_given_twice_is_created_once(services: Services, caller: Caller, service_product: str) -> None:
    body = "deviceKey,name\ntwin-1,first\ntwin-1,second\n"
    report = await services.bulk.import_devices(caller, service_product, read_rows(csv_lines(body), "csv"))
    assert (report.created, report.existing) == (1, 1)
    d = (await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="twin-1"))).device
    assert d.name.default == "first"


async def test_batches_commit_one_event_each_and_the_limit_holds(services: Services, caller: Caller,
                                                                 service_product: str) -> None:
    services.core.settings = replace(services.core.settings, product_device_limit=7)
    seen: list[events.Event] = []

    async def record(ev: events.Event) -> None:
        seen.append(ev)

    services.core.bus.subscribe(record)
    rows = ["deviceKey\n"] + [f"lim-{i:04d}\n" for i in range(10)]
    report = await services.bulk.import_devices(caller, service_product, read_rows(rows, "csv"), batch_size=3)
    assert (report.created, report.failed) == (7, 3)
    assert [(e.line, e.field) for e in report.errors] == [(9, "productKey"), (10, "productKey"), (11, "productKey")]
    imported = [e.payload for e in seen if isinstance(e.payload, events.DevicesImported)]
    assert [p.count for p in imported] == [3, 3, 1] and {p.product_key for p in imported} == {service_product}
    assert not any(isinstance(e.payload, events.DeviceCreated) for e in seen)
    assert (await services.devices.stats(caller, service_product)).total == 7


async def test_unknown_product_and_other_organizations(services: Services, caller: Caller,
                                                       service_product: str) -> None:
    with pytest.raises(ProductNotFound):
        await services.bulk.import_devices(caller, "nosuchpk", read_rows(csv_lines(CSV), "csv"))
    other = await services.accounts.create_org("Other", "o-other")
    with pytest.raises(ProductNotFound):  # a tenant never reaches another's product
        await services.bulk.import_devices(Caller.operator(other.org_id), service_product,
                                           read_rows(csv_lines(CSV), "csv"))
    assert await count_rows(services) == (0, 0)


async def test_a_batch_that_meets_a_conflict_is_written_again_whole(services: Services, caller: Caller,
                                                                    service_product: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A key created by another writer between the check and the insert (or two drawn asset ids
    alike) fails the batch's insert: its transaction is undone and the batch written again."""
    real = services.core.bulk.existing
    calls = []

    async def stale(conn, product_key, keys):  # type: ignore[no-untyped-def]
        calls.append(1)
        return set() if len(calls) == 1 else await real(conn, product_key, keys)

    await services.bulk.import_devices(caller, service_product, read_rows(csv_lines(CSV), "csv"))
    monkeypatch.setattr(services.core.bulk, "existing", stale)
    body = CSV + "meter-3,M3,,,,\n"
    report = await services.bulk.import_devices(caller, service_product, read_rows(csv_lines(body), "csv"))
    assert (report.created, report.existing, report.failed, len(calls)) == (1, 2, 0, 2)
    assert await count_rows(services) == (3, 5)


async def test_secrets_are_encrypted_at_rest(services: Services, caller: Caller, service_product: str) -> None:
    await services.bulk.import_devices(caller, service_product, read_rows(csv_lines(CSV), "csv"))
    async with services.core.read() as conn:
        stored = dict((await conn.execute(text("SELECT device_key, secret_enc FROM devices"))).all())
    assert stored["meter-2"].startswith("v1:") and "Secret-12345" not in stored["meter-2"]
    d = (await services.devices.get(caller, DeviceRef(product_key=service_product, device_key="meter-2"))).device
    assert services.core.keyring.decrypt(stored["meter-2"], context=f"device:{d.asset_id}") == "Secret-12345"




@pytest.mark.parametrize("fmt", bulk.FORMATS)
async def test_export_round_trip_into_another_product(services: Services, caller: Caller, service_product: str,
                                                      fmt: str) -> None:
    private, public = rsa_keypair()
    body = CSV + 'meter-3,"Quote "" and, comma",-05:00,,"{""list"": [1, 2]}",\n'
    await services.bulk.import_devices(caller, service_product, read_rows(csv_lines(body), "csv"))
    write = bulk.export_lines(fmt, True)
    exported = write(None) + "".join([write(bulk.export_record(d, public))
                                      async for d in services.bulk.export(caller, page_size=2)])
    assert "Secret-12345" not in exported
    target = await make_product(services, caller)
    report = await services.bulk.import_devices(caller, target, read_rows(csv_lines(exported), fmt,
                                                                          private_key=private))
    assert (report.created, report.failed) == (3, 0), report.errors
    for key in ("meter-1", "meter-2", "meter-3"):
        a = (await services.devices.get(caller, DeviceRef(product_key=service_product, device_key=key))).device
        b = (await services.devices.get(caller, DeviceRef(product_key=target, device_key=key))).device
        assert a.asset_id != b.asset_id
        assert replace(b, asset_id=a.asset_id, product_key=a.product_key, create_time=a.create_time,
                       update_time=a.update_time) == a  # the secret came along, decrypted with the private key
    without = await services.bulk.import_devices(caller, await make_product(services, caller),
                                                 read_rows(csv_lines(exported), fmt))
    assert without.failed == 3 and {e.field for e in without.errors} == {"secret"}


async def test_export_pages_by_key_across_products_and_only_the_callers(services: Services, caller: Caller,
                                                                        service_product: str) -> None:
    second = await make_product(services, caller)
    for pk in (service_product, second):
        await services.bulk.import_devices(caller, pk, read_rows(csv_lines(CSV + "meter-0,Z,,,,\n"), "csv"))
    other = await services.accounts.create_org("Other", "o-other")
    await services.accounts.create_model(other.org_id, "model1")
    theirs = await make_product(services, Caller.operator(other.org_id))
    await services.bulk.import_devices(Caller.operator(other.org_id), theirs, read_rows(csv_lines(CSV), "csv"))
    got = [(d.product_key, d.device_key) async for d in services.bulk.export(caller, page_size=2)]
    assert got == sorted((pk, k) for pk in (service_product, second) for k in ("meter-0", "meter-1", "meter-2"))
    only = [d.device_key async for d in services.bulk.export(caller, second, page_size=5)]
    assert only == ["meter-0", "meter-1", "meter-2"]


def test_exported_secret_decrypts_with_the_private_key() -> None:
    private, public = rsa_keypair()
    record = bulk.export_record(_device(), public)
    assert record["secret"] != "S3cret-value"
    assert caller_secret.decrypt(private, record["secret"], record["sessionKey"]) == "S3cret-value"
    assert "secret" not in bulk.export_record(_device(), None)


def _device():  # type: ignore[no-untyped-def]
    from thingport.domain.models import Device, I18nText

    return Device("a1", "o1", "pk", "dk-1", I18nText("n"), "S3cret-value", None, "+00:00", {}, {}, 1, True, False,
                  None, None, None, None, 1)


def test_rows_are_validated_as_single_creates_are() -> None:
    rows = list(read_rows(["deviceKey,name,tags\n", 'k-0001,' + "x" * 65 + ',\n',
                           'k-0002,n,"{""bad key!"": ""v""}"\n'], "csv"))
    assert all(isinstance(r, RowError) for r in rows)
    assert [(r.line, r.field) for r in rows if isinstance(r, RowError)] == [
        (2, "name.defaultValue"), (3, "tags.bad key!")]
    ok = list(read_rows(["deviceKey\n", "k-0003\n"], "csv"))
    assert isinstance(ok[0], ImportRow) and ok[0].timezone == "+00:00"
