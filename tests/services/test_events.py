"""Event payloads: one struct per kind, stored as the JSON the ``events`` table has always held."""

from __future__ import annotations

import gc
import json
from typing import Any

import msgspec
import pytest

from thingport.domain.models import Organization
from thingport.services import events
from thingport.services.container import Services
from thingport.store.events import EventRow

KEYS = {"productKey": "pk", "deviceKey": "dk"}
LIVING = {"orgId": "o1", **KEYS}
LIVING_ARGS: dict[str, Any] = {"org_id": "o1", "product_key": "pk", "device_key": "dk"}

#: One payload of every kind, with the JSON object (keys in order) the dict payloads before the
#: structs were stored as: a deployment's outbox must read the same after an upgrade.
SAMPLES: list[tuple[events.EventPayload, dict[str, Any]]] = [
    (events.DeviceCreated(product_key="pk", device_key="dk"), KEYS),
    (events.DeviceUpdated(product_key="pk", device_key="dk"), KEYS),
    (events.DeviceEnabled(product_key="pk", device_key="dk"), KEYS),
    (events.DeviceDisabled(product_key="pk", device_key="dk"), KEYS),
    (events.DeviceConnected(product_key="pk", device_key="dk"), KEYS),
    (events.DeviceDisconnected(product_key="pk", device_key="dk"), KEYS),
    (events.DeviceReplaced(product_key="pk", device_key="dk", new_device_key="dk2"), {**KEYS, "newDeviceKey": "dk2"}),
    (events.DeviceDeleted(product_key="pk", device_key="dk", gateway_id=None), {**KEYS, "gatewayId": None}),
    (events.DeviceDetached(product_key="pk", device_key="dk", gateway_asset_id="g", gateway_product_key="gpk",
                           gateway_device_key="gdk"),
     {**KEYS, "gatewayAssetId": "g", "gatewayProductKey": "gpk", "gatewayDeviceKey": "gdk"}),
    (events.DeviceBound(product_key="pk", device_key="dk", node_id=None), {**KEYS, "nodeId": None}),
    (events.DeviceBindExpired(product_key="pk", device_key="dk", node_id="n", name="lamp", deleted=True),
     {**KEYS, "nodeId": "n", "name": "lamp", "deleted": True}),
    (events.DevicesImported(product_key="pk", count=2000), {"productKey": "pk", "count": 2000}),
    (events.TopologyChanged(added=["a1"], removed=[], origin="api"), {"added": ["a1"], "removed": [], "origin": "api"}),
    (events.SubDevicesFound(sub_devices=[events.SubDevice(asset_id="a1", product_key="pk", device_key="dk")]),
     {"subDevices": [{"assetId": "a1", "productKey": "pk", "deviceKey": "dk"}]}),
    (events.ProductCreated(product_key="pk"), {"productKey": "pk"}),
    (events.ProductUpdated(product_key="pk"), {"productKey": "pk"}),
    (events.ProductDeleted(product_key="pk"), {"productKey": "pk"}),
    (events.KeyringRotated(key_id="k2"), {"keyId": "k2"}),
    (events.CertificateRevoked(product_key="pk", device_key="dk", cert_sn="123"), {**KEYS, "certSn": "123"}),
    (events.DeviceCaAdded(ca_id="ca-1", authority="RSA", cert_pem="PEM"),
     {"caId": "ca-1", "authority": "RSA", "certPem": "PEM"}),
    (events.ApplicationChanged(app_key="k"), {"appKey": "k"}),
    (events.FeedLost(), {}),  # never stored: published on a node's own bus only
    (events.FeedResumed(), {}),
    (events.LivingBindNotify(**LIVING_ARGS, iot_id="a1", identity_id="u1", owned=1, operation="Bind"),
     {**LIVING, "iotId": "a1", "identityId": "u1", "owned": 1, "operation": "Bind"}),
    (events.LivingGatewayPermit(**LIVING_ARGS, permit=events.JoinPermit(product_key="", time=60)),
     {**LIVING, "permit": {"productKey": "", "time": 60}}),
    (events.LivingTopoChange(**LIVING_ARGS, status=1, sub_list=[events.DeviceName(product_key="s", device_name="s1")]),
     {**LIVING, "status": 1, "subList": [{"productKey": "s", "deviceName": "s1"}]}),
    (events.LivingEnrolleeCheckin(**LIVING_ARGS, enrollee=events.CheckinEnrollee(product_key="e", device_name="e1",
                                                                                 timeout=60), enrollee_iot_id="a2"),
     {**LIVING, "enrollee": {"productKey": "e", "deviceName": "e1", "timeout": 60}, "enrolleeIotId": "a2"}),
]

#: Shapes a kind also has, with its optional fields set.
VARIANTS: list[tuple[events.EventPayload, dict[str, Any]]] = [
    (events.DeviceDeleted(product_key="pk", device_key="dk", gateway_id="g"), {**KEYS, "gatewayId": "g"}),
    (events.TopologyChanged(added=[], removed=["a1"], origin="a9", product_key="gpk", device_key="gdk",
                            removed_devices=[events.SubDevice(asset_id="a1", product_key="pk", device_key="dk")]),
     {"added": [], "removed": ["a1"], "origin": "a9", "productKey": "gpk", "deviceKey": "gdk",
      "removedDevices": [{"assetId": "a1", "productKey": "pk", "deviceKey": "dk"}]}),
    (events.ProductUpdated(product_key="pk", living=True), {"productKey": "pk", "living": True}),
    (events.KeyringRotated(key_id="k2", wrapped="v1:k1:AAAA"), {"keyId": "k2", "wrapped": "v1:k1:AAAA"}),
]


def row(kind: str, payload: str, id: int = 7) -> EventRow:
    return EventRow(id, "o1", kind, "a1", payload, 1000)


def concrete(cls: type[events.EventPayload]) -> list[type[events.EventPayload]]:
    out = [cls] if "KIND" in cls.__dict__ else []
    for sub in cls.__subclasses__():
        out += concrete(sub)
    return out


def test_every_kind_has_exactly_one_struct() -> None:
    structs = concrete(events.EventPayload)
    assert sorted(s.KIND for s in structs) == sorted(events.KINDS)  # no kind twice, none unregistered
    assert all(events.KINDS[s.KIND] is s for s in structs)
    assert {type(p) for p, _ in SAMPLES} == set(structs)  # a new kind comes with its stored shape above


def test_a_second_struct_for_a_kind_is_refused() -> None:
    with pytest.raises(TypeError, match="two structs"):
        class Again(events.EventPayload):
            KIND = "device.created"
    gc.collect()  # the refused class is gone from EventPayload.__subclasses__()
    assert events.KINDS["device.created"] is events.DeviceCreated
    assert "Again" not in {c.__name__ for c in events.EventPayload.__subclasses__()}


@pytest.mark.parametrize(("payload", "stored"), SAMPLES + VARIANTS, ids=lambda v: getattr(v, "KIND", ""))
def test_payload_json_is_the_stored_shape(payload: events.EventPayload, stored: dict[str, Any]) -> None:
    text = msgspec.json.encode(payload).decode()
    assert json.loads(text) == stored and list(json.loads(text)) == list(stored)
    # a row as the dict payloads were written (json.dumps) reads into the same struct
    decoded = events.decode(row(payload.KIND, json.dumps(stored)))
    assert decoded is not None and decoded.payload == payload


async def test_every_struct_round_trips_through_the_store(services: Services, org: Organization) -> None:
    async with services.core.write(org.org_id) as tx:
        for payload, _ in SAMPLES + VARIANTS:
            await tx.emit(payload, "a1")
    emitted = tx.pending
    async with services.core.read() as conn:
        rows = await services.core.events.since(conn, 0)
    assert [r.kind for r in rows] == [p.KIND for p, _ in SAMPLES + VARIANTS]
    assert [json.loads(r.payload) for r in rows] == [stored for _, stored in SAMPLES + VARIANTS]
    assert [events.decode(r) for r in rows] == emitted
    assert all(ev.org_id == org.org_id and ev.asset_id == "a1" and ev.id and ev.time for ev in emitted)


def test_older_rows_read_with_the_fields_they_lack_at_their_defaults() -> None:
    deleted = events.decode(row("device.deleted", json.dumps(KEYS)))
    assert deleted is not None and deleted.payload == events.DeviceDeleted(product_key="pk", device_key="dk")
    topology = events.decode(row("topology.changed", '{"added": ["a1"], "removed": []}'))
    assert topology is not None and topology.payload == events.TopologyChanged(added=["a1"], removed=[])
    assert isinstance(topology.payload, events.TopologyChanged) and topology.payload.origin is None


def test_newer_fields_are_ignored() -> None:
    ev = events.decode(row("device.created", json.dumps({**KEYS, "since": "a later version"})))
    assert ev is not None and ev.payload == events.DeviceCreated(product_key="pk", device_key="dk")


def test_unknown_kinds_and_unreadable_payloads_are_skipped() -> None:
    assert events.decode(row("device.teleported", json.dumps(KEYS))) is None
    assert events.decode(row("device.replaced", json.dumps(KEYS))) is None  # newDeviceKey missing
    assert events.decode(row("device.created", "not json")) is None


def test_session_ending_kinds() -> None:
    assert {c.KIND for c in events.SESSION_ENDING} == {
        "device.replaced", "device.deleted", "device.disabled", "device.detached"}
