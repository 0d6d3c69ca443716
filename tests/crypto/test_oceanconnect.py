from datetime import UTC, datetime

from thingport.crypto.oceanconnect import (
    ClientId,
    mqtt_password,
    parse_client_id,
    timestamp_is_current,
    verify_mqtt_password,
)

VECTOR = "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a"


def test_published_test_vector() -> None:
    assert mqtt_password("12345678", "2025041401") == VECTOR
    assert verify_mqtt_password("12345678", "2025041401", VECTOR)
    assert verify_mqtt_password("12345678", "2025041401", VECTOR.upper())
    assert not verify_mqtt_password("12345679", "2025041401", VECTOR)
    assert not verify_mqtt_password("12345678", "2025041402", VECTOR)


def test_client_id() -> None:
    assert parse_client_id("D39564861q3gDa_0_0_2018072417") == ClientId("D39564861q3gDa", 0, 0, "2018072417")
    assert parse_client_id("urn:imei:8612_3_2_1_2018072417") == ClientId("urn:imei:8612_3", 2, 1, "2018072417")
    for bad in ("abc_1_0_2018072417", "abc_0_2_2018072417", "abc_0_0_201807241", "_0_0_2018072417", "abc"):
        assert parse_client_id(bad) is None, bad


def test_timestamp_window() -> None:
    now = datetime(2025, 4, 14, 1, 30, tzinfo=UTC)
    assert timestamp_is_current("2025041401", now)
    assert timestamp_is_current("2025041400", now)
    assert timestamp_is_current("2025041402", now)
    assert not timestamp_is_current("2025041404", now)
    assert not timestamp_is_current("2025139901", now)
