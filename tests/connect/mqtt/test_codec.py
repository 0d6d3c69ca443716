"""MQTT 3.1.1 packet encoding and strict decoding."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingport.connect.mqtt import codec
from thingport.connect.mqtt.codec import (
    Connack,
    Connect,
    Disconnect,
    MalformedPacket,
    PacketTooLarge,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
    UnsupportedProtocol,
    Will,
)


def roundtrip(packet: codec.Packet) -> codec.Packet:
    data = codec.encode(packet)
    parsed = codec.parse(data)
    assert parsed is not None
    decoded, used = parsed
    assert used == len(data)
    return decoded


@pytest.mark.parametrize("packet", [
    Connect("dev-1", True, 60),
    Connect("", False, 0, Will("w/t", b"gone", 1, True), "user", b"\x00pw\xff", "MQTT", 4),
    Connect("old", True, 30, None, "u", None, "MQIsdp", 3),
    Connack(0, True), Connack(5, False),
    Publish("a/b", b"x", 0), Publish("a/b", b"", 1, True, True, 7), Publish("a/b", b"y" * 300, 2, False, False, 65535),
    Puback(1), Pubrec(2), Pubrel(3), Pubcomp(4),
    Subscribe(9, (("a/+", 1), ("#", 2), ("$share/g/x", 0))), Suback(9, (0, 1, 2, 0x80)),
    Unsubscribe(10, ("a/+", "b")), Unsuback(10), Pingreq(), Pingresp(), Disconnect(),
])
def test_every_packet_type_roundtrips(packet: codec.Packet) -> None:
    assert roundtrip(packet) == packet


@given(st.integers(min_value=0, max_value=codec.MAX_REMAINING_LENGTH))
def test_remaining_length_roundtrips(n: int) -> None:
    data = codec.encode_remaining_length(n)
    assert 1 <= len(data) <= 4
    assert codec.decode_remaining_length(data) == (n, len(data))
    assert codec.decode_remaining_length(data[:-1]) is None


def test_remaining_length_rejects_five_bytes_and_padding() -> None:
    with pytest.raises(MalformedPacket):
        codec.decode_remaining_length(b"\xff\xff\xff\xff\x7f")
    with pytest.raises(MalformedPacket):
        codec.decode_remaining_length(b"\x80\x00")
    with pytest.raises(ValueError):
        codec.encode_remaining_length(codec.MAX_REMAINING_LENGTH + 1)


topic_levels = st.text(st.characters(blacklist_characters="+#/\x00", blacklist_categories=("Cs",)), max_size=8)
topics = st.lists(topic_levels, min_size=1, max_size=5).map("/".join).filter(bool)


@given(topics, st.binary(max_size=2000), st.integers(0, 2), st.booleans(), st.booleans(), st.integers(1, 65535))
def test_publish_roundtrips(topic: str, payload: bytes, qos: int, retain: bool, dup: bool, pid: int) -> None:
    packet = Publish(topic, payload, qos, retain, dup and qos > 0, pid if qos else None)
    assert roundtrip(packet) == packet


@given(st.integers(1, 65535), st.lists(st.tuples(topics, st.integers(0, 2)), min_size=1, max_size=10))
def test_subscribe_roundtrips(pid: int, filters: list[tuple[str, int]]) -> None:
    packet = Subscribe(pid, tuple(filters))
    assert roundtrip(packet) == packet


@pytest.mark.parametrize("data", [
    b"\x30\x03\x00\x01+",                       # wildcard in a PUBLISH topic
    b"\x36\x05\x00\x01a\x00\x01",               # QoS 3
    b"\x38\x03\x00\x01a",                       # DUP at QoS 0
    b"\x32\x05\x00\x01a\x00\x00",               # packet id 0
    b"\x30\x03\x00\x05a",                      # topic runs past the end
    b"\x30\x04\x00\x02\xc3\x28",                # invalid UTF-8
    b"\x30\x04\x00\x02a\x00",                   # U+0000 in a topic
    b"\x80\x06\x00\x01\x00\x01a\x00",           # SUBSCRIBE with wrong fixed-header flags
    b"\x82\x02\x00\x01",                        # SUBSCRIBE with no filters
    b"\x82\x06\x00\x01\x00\x01a\x03",           # SUBSCRIBE requested QoS 3
    b"\xa2\x02\x00\x01",                        # UNSUBSCRIBE with no filters
    b"\x60\x02\x00\x01",                        # PUBREL without the 0b0010 flags
    b"\x40\x03\x00\x01\x00",                    # PUBACK with trailing bytes
    b"\xc1\x00",                                # PINGREQ with flags
    b"\xf0\x00",                                # reserved type 15
    b"\x00\x00",                                # reserved type 0
    b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00",  # CONNECT reserved flag
    b"\x10\x0c\x00\x04MQTT\x04\x40\x00\x3c\x00\x00",  # password without user name
    b"\x10\x0c\x00\x04MQTT\x04\x12\x00\x3c\x00\x00",  # will QoS without will flag
    b"\x10\x0c\x00\x04HTTP\x04\x02\x00\x3c\x00\x00",  # unknown protocol name
])
def test_malformed_packets_are_rejected(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        codec.parse(data)


def test_unknown_protocol_level_is_unsupported_not_garbage() -> None:
    data = codec.encode(Connect("c", protocol_level=5))
    with pytest.raises(UnsupportedProtocol):
        codec.parse(data)
    with pytest.raises(UnsupportedProtocol):  # MQTT 3.1 is only level 3
        codec.parse(codec.encode(Connect("c", protocol_name="MQIsdp", protocol_level=4)))


def test_packet_size_limit_is_checked_before_the_body_arrives() -> None:
    head = b"\x30" + codec.encode_remaining_length(1000)
    with pytest.raises(PacketTooLarge):
        codec.parse(head, max_packet_size=999)
    assert codec.parse(head, max_packet_size=1000) is None  # incomplete, not too large


def test_default_limit_allows_a_512_kib_payload() -> None:
    data = codec.encode(Publish("t" * 100, b"x" * codec.DEFAULT_MAX_PAYLOAD, 1, packet_id=1))
    assert codec.parse(data) is not None


async def test_stream_reader_reads_packets_split_anywhere() -> None:
    packets: list[codec.Packet] = [Publish("a/b", b"x" * 200, 1, packet_id=3), Pingreq(), Subscribe(4, (("a", 0),))]
    data = b"".join(codec.encode(p) for p in packets)
    reader = asyncio.StreamReader()
    for i in range(len(data)):  # one byte at a time
        reader.feed_data(data[i:i + 1])
    reader.feed_eof()
    got = [await codec.read_packet(reader) for _ in packets]
    assert got == packets
    assert await codec.read_packet(reader) is None


async def test_stream_reader_rejects_truncated_and_oversized() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"\x30\x05\x00\x01a")
    reader.feed_eof()
    with pytest.raises(MalformedPacket):
        await codec.read_packet(reader)
    reader = asyncio.StreamReader()
    reader.feed_data(b"\x30\xff\xff\xff\x7f")
    with pytest.raises(PacketTooLarge):
        await codec.read_packet(reader)
    reader = asyncio.StreamReader()
    reader.feed_data(b"\x30\xff\xff\xff\xff\x01")
    with pytest.raises(MalformedPacket):
        await codec.read_packet(reader)
