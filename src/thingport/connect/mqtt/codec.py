"""MQTT 3.1.1 packets: encode, decode, and read them off an asyncio stream.

Decoding is strict on purpose: a device that sends a malformed packet gets its connection closed
(the spec's answer to every protocol violation) rather than a half-understood message routed to
others. Protocol level 3 (``MQIsdp``, MQTT 3.1) is accepted as well as 4 because old device
firmware still speaks it; any other level is refused with CONNACK return code 1.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import Final

CONNECT: Final = 1
CONNACK: Final = 2
PUBLISH: Final = 3
PUBACK: Final = 4
PUBREC: Final = 5
PUBREL: Final = 6
PUBCOMP: Final = 7
SUBSCRIBE: Final = 8
SUBACK: Final = 9
UNSUBSCRIBE: Final = 10
UNSUBACK: Final = 11
PINGREQ: Final = 12
PINGRESP: Final = 13
DISCONNECT: Final = 14

# CONNACK return codes.
ACCEPTED: Final = 0
REFUSED_PROTOCOL_VERSION: Final = 1
REFUSED_IDENTIFIER_REJECTED: Final = 2
REFUSED_SERVER_UNAVAILABLE: Final = 3
REFUSED_BAD_USERNAME_PASSWORD: Final = 4
REFUSED_NOT_AUTHORIZED: Final = 5

SUBACK_FAILURE: Final = 0x80

#: Largest payload EnOS accepts; packets are allowed that plus room for a topic and packet id.
DEFAULT_MAX_PAYLOAD: Final = 512 * 1024
DEFAULT_MAX_PACKET_SIZE: Final = DEFAULT_MAX_PAYLOAD + 65_535 + 4
MAX_REMAINING_LENGTH: Final = 268_435_455

_PROTOCOLS: Final = {"MQTT": 4, "MQIsdp": 3}


class MalformedPacket(Exception):
    """The bytes are not a valid MQTT 3.1.1 packet; the connection must be closed."""


class PacketTooLarge(MalformedPacket):
    """The remaining length exceeds the configured maximum packet size."""


class UnsupportedProtocol(MalformedPacket):
    """A CONNECT with a protocol level we do not speak: answer CONNACK 1, then close."""


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Connect:
    client_id: str
    clean_session: bool = True
    keep_alive: int = 60
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    protocol_name: str = "MQTT"
    protocol_level: int = 4


@dataclass(frozen=True, slots=True)
class Connack:
    return_code: int = ACCEPTED
    session_present: bool = False


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@dataclass(frozen=True, slots=True)
class Puback:
    packet_id: int


@dataclass(frozen=True, slots=True)
class Pubrec:
    packet_id: int


@dataclass(frozen=True, slots=True)
class Pubrel:
    packet_id: int


@dataclass(frozen=True, slots=True)
class Pubcomp:
    packet_id: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    topics: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Suback:
    packet_id: int
    return_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsuback:
    packet_id: int


@dataclass(frozen=True, slots=True)
class Pingreq:
    pass


@dataclass(frozen=True, slots=True)
class Pingresp:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    pass


Packet = (Connect | Connack | Publish | Puback | Pubrec | Pubrel | Pubcomp | Subscribe | Suback | Unsubscribe
          | Unsuback | Pingreq | Pingresp | Disconnect)

_ACK_TYPES: Final[dict[int, type[Puback | Pubrec | Pubrel | Pubcomp | Unsuback]]] = {
    PUBACK: Puback, PUBREC: Pubrec, PUBREL: Pubrel, PUBCOMP: Pubcomp, UNSUBACK: Unsuback}
_EMPTY_TYPES: Final[dict[int, Pingreq | Pingresp | Disconnect]] = {
    PINGREQ: Pingreq(), PINGRESP: Pingresp(), DISCONNECT: Disconnect()}
#: Fixed-header flags that 3.1.1 prescribes for every type except PUBLISH.
_REQUIRED_FLAGS: Final = {PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}


# --- remaining length -------------------------------------------------------------------------

def encode_remaining_length(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {n} out of range")
    out = bytearray()
    while True:
        digit = n & 0x7F
        n >>= 7
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def decode_remaining_length(data: bytes | bytearray, offset: int = 0) -> tuple[int, int] | None:
    """Return ``(value, bytes used)``, or None when ``data`` ends before the varint does."""
    value = 0
    for i in range(4):
        if offset + i >= len(data):
            return None
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i and byte == 0:
                raise MalformedPacket("remaining length is not minimally encoded")
            return value, i + 1
    raise MalformedPacket("remaining length longer than 4 bytes")


# --- encoding ---------------------------------------------------------------------------------

def _str(s: str) -> bytes:
    b = s.encode()
    if len(b) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return struct.pack("!H", len(b)) + b


def _bin(b: bytes) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError("binary field longer than 65535 bytes")
    return struct.pack("!H", len(b)) + b


def _frame(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_remaining_length(len(body)) + body


def publish_head(topic: str, payload_length: int, qos: int = 0, retain: bool = False, dup: bool = False) -> bytes:
    """A PUBLISH up to its packet id: the same for every subscriber a message goes to, so the
    broker builds it once per message and adds each subscriber's packet id (:func:`encode_publish`)."""
    t = topic.encode()
    length = 2 + len(t) + payload_length + (2 if qos else 0)
    rl = bytes((length,)) if length < 0x80 else encode_remaining_length(length)
    return bytes((0x30 | (dup << 3) | (qos << 1) | retain,)) + rl + len(t).to_bytes(2, "big") + t


def encode_publish(topic: str, payload: bytes, qos: int = 0, retain: bool = False, dup: bool = False,
                   packet_id: int | None = None, head: bytes | None = None) -> bytes:
    """The hot path of the broker, so it takes fields instead of building a ``Publish`` first;
    ``head``: :func:`publish_head` of these fields, made once for many subscribers."""
    if head is None:
        head = publish_head(topic, len(payload), qos, retain, dup)
    if not qos:
        return head + payload
    if not packet_id:
        raise ValueError("QoS 1 and 2 publishes need a packet id")
    return head + packet_id.to_bytes(2, "big") + payload


def encode_ack(kind: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK."""
    return bytes((kind << 4 | _REQUIRED_FLAGS.get(kind, 0), 2, packet_id >> 8, packet_id & 0xFF))


def encode(packet: Packet) -> bytes:
    if isinstance(packet, Publish):
        return encode_publish(packet.topic, packet.payload, packet.qos, packet.retain, packet.dup, packet.packet_id)
    if isinstance(packet, Connect):
        flags = 0
        payload = _str(packet.client_id)
        if packet.will is not None:
            w = packet.will
            flags |= 0x04 | (w.qos << 3) | (w.retain << 5)
            payload += _str(w.topic) + _bin(w.payload)
        if packet.username is not None:
            flags |= 0x80
            payload += _str(packet.username)
        if packet.password is not None:
            flags |= 0x40
            payload += _bin(packet.password)
        if packet.clean_session:
            flags |= 0x02
        var = _str(packet.protocol_name) + struct.pack("!BBH", packet.protocol_level, flags, packet.keep_alive)
        return _frame(CONNECT << 4, var + payload)
    if isinstance(packet, Connack):
        return bytes((CONNACK << 4, 2, int(packet.session_present), packet.return_code))
    if isinstance(packet, Puback | Pubrec | Pubrel | Pubcomp | Unsuback):
        kind = {Puback: PUBACK, Pubrec: PUBREC, Pubrel: PUBREL, Pubcomp: PUBCOMP, Unsuback: UNSUBACK}[type(packet)]
        return encode_ack(kind, packet.packet_id)
    if isinstance(packet, Subscribe):
        body = struct.pack("!H", packet.packet_id) + b"".join(_str(f) + bytes((q,)) for f, q in packet.topics)
        return _frame(SUBSCRIBE << 4 | 2, body)
    if isinstance(packet, Suback):
        return _frame(SUBACK << 4, struct.pack("!H", packet.packet_id) + bytes(packet.return_codes))
    if isinstance(packet, Unsubscribe):
        body = struct.pack("!H", packet.packet_id) + b"".join(_str(f) for f in packet.topics)
        return _frame(UNSUBSCRIBE << 4 | 2, body)
    if isinstance(packet, Pingreq):
        return b"\xc0\x00"
    if isinstance(packet, Pingresp):
        return b"\xd0\x00"
    if isinstance(packet, Disconnect):
        return b"\xe0\x00"
    raise TypeError(f"not an MQTT packet: {packet!r}")


# --- decoding ---------------------------------------------------------------------------------

class _Body:
    """A cursor over one packet's variable header and payload."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def u8(self) -> int:
        if self.pos + 1 > len(self.data):
            raise MalformedPacket("packet ends early")
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise MalformedPacket("packet ends early")
        (v,) = struct.unpack_from("!H", self.data, self.pos)
        self.pos += 2
        return int(v)

    def binary(self) -> bytes:
        n = self.u16()
        if self.pos + n > len(self.data):
            raise MalformedPacket("field runs past the end of the packet")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def string(self) -> str:
        raw = self.binary()
        try:
            s = raw.decode()
        except UnicodeDecodeError:
            raise MalformedPacket("string is not valid UTF-8") from None
        if "\x00" in s:
            raise MalformedPacket("string contains U+0000")
        return s

    def packet_id(self) -> int:
        pid = self.u16()
        if pid == 0:
            raise MalformedPacket("packet id 0")
        return pid

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out

    def end(self) -> None:
        if self.pos != len(self.data):
            raise MalformedPacket("trailing bytes after the packet")


def parse_publish(first: int, data: bytes, start: int, end: int) -> tuple[str, bytes, int, bool, bool, int | None]:
    """The fields of the PUBLISH whose body is ``data[start:end]`` (topic, payload, qos, retain, dup,
    packet id), read in place: the broker's hot path, which needs no ``Publish`` built."""
    qos = (first >> 1) & 3
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    dup = bool(first & 8)
    if dup and qos == 0:
        raise MalformedPacket("PUBLISH with DUP set at QoS 0")
    if end - start < 2:
        raise MalformedPacket("packet ends early")
    pos = start + 2 + (data[start] << 8 | data[start + 1])
    if pos > end:
        raise MalformedPacket("field runs past the end of the packet")
    try:
        topic = data[start + 2:pos].decode()
    except UnicodeDecodeError:
        raise MalformedPacket("string is not valid UTF-8") from None
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        raise MalformedPacket("PUBLISH topic is empty, has a wildcard or U+0000")
    pid = None
    if qos:
        if pos + 2 > end:
            raise MalformedPacket("packet ends early")
        pid = data[pos] << 8 | data[pos + 1]
        if not pid:
            raise MalformedPacket("packet id 0")
        pos += 2
    return topic, bytes(data[pos:end]), qos, bool(first & 1), dup, pid


def parse_ack(first: int, data: bytes, start: int, end: int) -> int:
    """The packet id of a PUBACK, PUBREC, PUBREL or PUBCOMP whose body is ``data[start:end]``."""
    kind = first >> 4
    if first & 0x0F != _REQUIRED_FLAGS.get(kind, 0):
        raise MalformedPacket(f"bad fixed-header flags {first & 0x0F:#x} for packet type {kind}")
    if end - start != 2:
        raise MalformedPacket("packet ends early" if end - start < 2 else "trailing bytes after the packet")
    pid = data[start] << 8 | data[start + 1]
    if not pid:
        raise MalformedPacket("packet id 0")
    return pid


def decode(first: int, body: bytes) -> Packet:
    """Decode one packet from its first byte and its body (everything after the remaining length)."""
    kind, flags = first >> 4, first & 0x0F
    if kind == PUBLISH:
        return Publish(*parse_publish(first, body, 0, len(body)))
    if kind in _ACK_TYPES and kind != UNSUBACK:
        return _ACK_TYPES[kind](parse_ack(first, body, 0, len(body)))
    b = _Body(body)
    if flags != _REQUIRED_FLAGS.get(kind, 0):
        raise MalformedPacket(f"bad fixed-header flags {flags:#x} for packet type {kind}")
    packet: Packet
    if kind in _ACK_TYPES:
        packet = _ACK_TYPES[kind](b.packet_id())
    elif kind in _EMPTY_TYPES:
        packet = _EMPTY_TYPES[kind]
    elif kind == CONNECT:
        packet = _decode_connect(b)
    elif kind == CONNACK:
        ack_flags, code = b.u8(), b.u8()
        if ack_flags & 0xFE:
            raise MalformedPacket("CONNACK reserved flags set")
        packet = Connack(code, bool(ack_flags & 1))
    elif kind == SUBSCRIBE:
        pid = b.packet_id()
        topics: list[tuple[str, int]] = []
        while b.remaining():
            f = b.string()
            q = b.u8()
            if q > 2:
                raise MalformedPacket("SUBSCRIBE requested QoS above 2 or reserved bits set")
            topics.append((f, q))
        if not topics:
            raise MalformedPacket("SUBSCRIBE without topic filters")
        packet = Subscribe(pid, tuple(topics))
    elif kind == SUBACK:
        pid = b.packet_id()
        codes = tuple(b.rest())
        if not codes or any(c not in (0, 1, 2, SUBACK_FAILURE) for c in codes):
            raise MalformedPacket("SUBACK return codes invalid")
        packet = Suback(pid, codes)
    elif kind == UNSUBSCRIBE:
        pid = b.packet_id()
        filters: list[str] = []
        while b.remaining():
            filters.append(b.string())
        if not filters:
            raise MalformedPacket("UNSUBSCRIBE without topic filters")
        packet = Unsubscribe(pid, tuple(filters))
    else:
        raise MalformedPacket(f"reserved packet type {kind}")
    b.end()
    return packet


def _decode_connect(b: _Body) -> Connect:
    name = b.string()
    level = b.u8()
    if name not in _PROTOCOLS:
        raise MalformedPacket(f"unknown protocol name {name[:16]!r}")
    if level != _PROTOCOLS[name]:
        raise UnsupportedProtocol(f"protocol {name} level {level} not supported")
    flags = b.u8()
    keep_alive = b.u16()
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")
    will_flag, will_qos, will_retain = flags & 0x04, (flags >> 3) & 3, bool(flags & 0x20)
    if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
        raise MalformedPacket("CONNECT will QoS/retain inconsistent")
    if flags & 0x40 and not flags & 0x80:
        raise MalformedPacket("CONNECT password without user name")
    client_id = b.string()
    will = None
    if will_flag:
        topic = b.string()
        if not topic or "+" in topic or "#" in topic:
            raise MalformedPacket("will topic is empty or has a wildcard")
        will = Will(topic, b.binary(), will_qos, will_retain)
    username = b.string() if flags & 0x80 else None
    password = b.binary() if flags & 0x40 else None
    return Connect(client_id, bool(flags & 0x02), keep_alive, will, username, password, name, level)


def parse(buffer: bytes | bytearray, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE) -> tuple[Packet, int] | None:
    """Decode the first packet in ``buffer``: ``(packet, bytes used)``, or None if it is incomplete."""
    if len(buffer) < 2:
        return None
    rl = decode_remaining_length(buffer, 1)
    if rl is None:
        return None
    length, used = rl
    if length > max_packet_size:
        raise PacketTooLarge(f"packet of {length} bytes exceeds the limit of {max_packet_size}")
    start = 1 + used
    if len(buffer) < start + length:
        return None
    return decode(buffer[0], bytes(buffer[start:start + length])), start + length


async def read_packet(reader: asyncio.StreamReader, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
                      expect: int | None = None) -> Packet | None:
    """Read one packet; None when the peer closed the stream cleanly between packets.

    The size is checked before the body is read, so an oversized packet never gets buffered;
    with ``expect`` (a packet type) anything else is refused before its body is waited for, so
    a stray HTTP request on the MQTT port is closed at once instead of at the connect timeout.
    """
    try:
        head = await reader.readexactly(2)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise MalformedPacket("stream ended inside a fixed header") from None
    first, length = head[0], head[1] & 0x7F
    if expect is not None and first >> 4 != expect:
        raise MalformedPacket(f"expected packet type {expect}, got {first >> 4}")
    try:
        if head[1] & 0x80:
            shift, byte = 7, head[1]
            while byte & 0x80:
                if shift > 21:
                    raise MalformedPacket("remaining length longer than 4 bytes")
                byte = (await reader.readexactly(1))[0]
                if byte == 0:
                    raise MalformedPacket("remaining length is not minimally encoded")
                length |= (byte & 0x7F) << shift
                shift += 7
        if length > max_packet_size:
            raise PacketTooLarge(f"packet of {length} bytes exceeds the limit of {max_packet_size}")
        body = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError:
        raise MalformedPacket("stream ended inside a packet") from None
    return decode(first, body)
