"""Every error table names every ErrorKind: a kind added without its codes fails here, not on the wire."""

from __future__ import annotations

import pytest

from thingport.connect import messages
from thingport.dialects.admin import routes as admin
from thingport.dialects.enos import errors as enos
from thingport.dialects.living import errors as living
from thingport.dialects.oceanconnect import errors as oceanconnect
from thingport.domain.errors import DomainError, ErrorKind

TABLES: dict[str, dict[ErrorKind, object]] = {
    "enos": dict(enos.CODES),
    "oceanconnect": dict(oceanconnect.TABLE),
    "living": dict(living.CODES),
    "admin": dict(admin.STATUS),
    "mqtt-enos": dict(messages._CODES["enos"]),
    "mqtt-alink": dict(messages._CODES["alink"]),
}

#: The reply codes each MQTT family documents for devices (docs/mqtt.md).
MQTT_DOCUMENTED = {"enos": {401, 402, 460, 400}, "alink": {460, 6100, 6204, 6250, 400}}


@pytest.mark.parametrize("kind", list(ErrorKind), ids=lambda k: k.value)
@pytest.mark.parametrize("table", list(TABLES))
def test_every_kind_has_an_entry(table: str, kind: ErrorKind) -> None:
    assert kind in TABLES[table], f"{table} has no entry for ErrorKind.{kind.name}"


@pytest.mark.parametrize("family", ["enos", "alink"])
def test_mqtt_codes_are_the_documented_ones(family: str) -> None:
    for kind in ErrorKind:
        err = DomainError("x")
        err.kind = kind
        assert messages.error_code(family, err) in MQTT_DOCUMENTED[family], kind


def test_mqtt_codes_sent_before_the_tables_were_complete_are_unchanged() -> None:
    """The kinds that had codes keep them; only the kinds that fell back to 400 got one."""
    before = {
        ErrorKind.INVALID_ARGUMENT: (460, 460), ErrorKind.UNAUTHENTICATED: (401, 460),
        ErrorKind.PERMISSION_DENIED: (401, 460), ErrorKind.DEVICE_NOT_FOUND: (402, 6100),
        ErrorKind.PRODUCT_NOT_FOUND: (402, 6250), ErrorKind.NOT_FOUND: (402, 6100),
        ErrorKind.DEVICE_STATUS_INVALID: (401, 6204), ErrorKind.LIMIT_EXCEEDED: (460, 460),
        ErrorKind.TOPOLOGY_CONFLICT: (460, 460), ErrorKind.NOT_GATEWAY: (460, 460),
        ErrorKind.DEVICE_KEY_EXISTS: (460, 460), ErrorKind.MODEL_NOT_FOUND: (460, 460),
        ErrorKind.PERMIT_JOIN_CLOSED: (460, 460), ErrorKind.INTERNAL: (400, 400),
    }
    for kind, (enos_code, alink_code) in before.items():
        assert (TABLES["mqtt-enos"][kind], TABLES["mqtt-alink"][kind]) == (enos_code, alink_code), kind


def test_every_oceanconnect_code_has_its_description() -> None:
    """``errors.respond`` looks the description up by code; a code without one would fail while answering."""
    codes = {code for _, code in oceanconnect.TABLE.values()} | {code for _, code in oceanconnect.BY_FIELD.values()}
    codes |= {code for table in oceanconnect.OVERRIDES.values() for _, code in table.values()}
    assert codes <= set(oceanconnect.DESC)
