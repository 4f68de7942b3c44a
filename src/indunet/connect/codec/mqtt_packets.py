"""The few MQTT 3.1.1 / 5 control packets a subscribing ingest needs (pure: bytes in and out).

Only what `indunet.connect.mqtt` uses is here: CONNECT, (UN)SUBSCRIBE, PUBLISH (QoS 0/1), PUBACK,
PINGREQ, DISCONNECT to send; CONNACK, SUBACK, PUBLISH, PUBACK, PINGRESP, DISCONNECT to read.
`PacketReader` splits a byte stream into packets; `parse_publish` reads one PUBLISH body.
"""

from __future__ import annotations

from dataclasses import dataclass

from indunet.errors import DataError

__all__ = [
    "CONNACK",
    "DISCONNECT",
    "PINGREQ",
    "PINGRESP",
    "PUBACK",
    "PUBLISH",
    "SUBACK",
    "PacketReader",
    "Will",
    "encode_connect",
    "encode_disconnect",
    "encode_pubacks",
    "encode_publish",
    "encode_subscribe",
    "encode_unsubscribe",
    "parse_connack",
    "parse_publish",
    "parse_suback",
]

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14
MAX_PACKET = 268_435_455  # the largest remaining length MQTT can express
_PINGREQ = b"\xc0\x00"


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes when the connection drops without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(s: str | bytes) -> bytes:
    raw = s.encode("utf-8") if isinstance(s, str) else s
    if len(raw) > 65535:
        raise DataError(f"MQTT string of {len(raw)} bytes is over 65535")
    return len(raw).to_bytes(2, "big") + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def _props(pairs: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(bytes([ident]) + value for ident, value in pairs)
    return _varint(len(body)) + body


def encode_connect(
    client_id: str,
    *,
    version: int = 5,
    keepalive: int = 30,
    clean_start: bool = False,
    username: str | None = None,
    password: str | None = None,
    will: Will | None = None,
    session_expiry_s: int = 0,
    receive_maximum: int = 65535,
) -> bytes:
    """Return a CONNECT packet (``version`` 5, or 4 for 3.1.1)."""
    flags = 0x02 if clean_start else 0
    if will:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = _text("MQTT") + bytes([version, flags]) + keepalive.to_bytes(2, "big")
    if version == 5:
        body += _props(
            [
                (0x11, session_expiry_s.to_bytes(4, "big")),
                (0x21, receive_maximum.to_bytes(2, "big")),
            ]
        )
    body += _text(client_id)
    if will:
        if version == 5:
            body += _props([])
        body += _text(will.topic) + _text(will.payload)
    if username is not None:
        body += _text(username)
    if password is not None:
        body += _text(password)
    return _packet(CONNECT << 4, body)


def encode_subscribe(mid: int, topics: list[tuple[str, int]], *, version: int = 5) -> bytes:
    """Return a SUBSCRIBE packet asking for each topic filter at its maximum QoS."""
    body = mid.to_bytes(2, "big") + (_props([]) if version == 5 else b"")
    body += b"".join(_text(topic) + bytes([qos]) for topic, qos in topics)
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def encode_unsubscribe(mid: int, topics: list[str], *, version: int = 5) -> bytes:
    """Return an UNSUBSCRIBE packet for ``topics`` (the broker answers with an UNSUBACK)."""
    body = mid.to_bytes(2, "big") + (_props([]) if version == 5 else b"")
    body += b"".join(_text(topic) for topic in topics)
    return _packet(UNSUBSCRIBE << 4 | 0x02, body)


def encode_publish(
    topic: str,
    payload: bytes,
    *,
    qos: int = 0,
    retain: bool = False,
    mid: int = 0,
    version: int = 5,
) -> bytes:
    """Return a PUBLISH packet (QoS 0 or 1)."""
    body = _text(topic) + (mid.to_bytes(2, "big") if qos else b"")
    body += (_props([]) if version == 5 else b"") + payload
    return _packet(PUBLISH << 4 | qos << 1 | (1 if retain else 0), body)


def encode_pubacks(mids: list[int]) -> bytes:
    """Return PUBACKs (success) for ``mids``, back to back; the same bytes in 3.1.1 and 5."""
    return b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)


def encode_disconnect() -> bytes:
    """Return a normal DISCONNECT (3.1.1 and 5: the broker then drops the will)."""
    return b"\xe0\x00"


def encode_pingreq() -> bytes:
    """Return a PINGREQ."""
    return _PINGREQ


def _read_varint(data: bytes | memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise DataError("MQTT packet ends inside a variable-length integer")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 21:
            raise DataError("MQTT variable-length integer is longer than 4 bytes")


class PacketReader:
    """Split a byte stream into ``(first byte, body)`` packets; keeps the incomplete tail.

    A packet bigger than one read is collected in parts and joined once, so a large message
    costs linear time.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._parts: list[bytes] = []
        self._have = 0
        self._need = 0  # bytes the packet at the head needs in all, when known

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes and return the packets now complete."""
        if self._need:
            self._parts.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            buf = b"".join(self._parts)
            self._parts, self._have, self._need = [], 0, 0
        else:
            buf = self._buf + data if self._buf else data
        out: list[tuple[int, bytes]] = []
        i, n = 0, len(buf)
        while n - i >= 2:
            first = buf[i]
            length = buf[i + 1]
            j = i + 2
            if length & 0x80:
                length &= 0x7F
                shift = 7
                while True:
                    if j >= n:
                        self._buf = buf[i:]
                        return out
                    byte = buf[j]
                    j += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise DataError("MQTT remaining length is longer than 4 bytes")
            end = j + length
            if end > n:
                if end - i > 4 * len(data):  # a big packet: gather its parts, join once
                    self._parts, self._have, self._need = [buf[i:]], n - i, end - i
                    self._buf = b""
                    return out
                break
            out.append((first, buf[j:end]))
            i = end
        self._buf = buf[i:]
        return out

    @property
    def pending(self) -> int:
        """Return how many bytes wait for the rest of their packet."""
        return len(self._buf) + self._have


def parse_publish(first: int, body: bytes, version: int = 5) -> tuple[str, bytes, int, int]:
    """Return topic, payload, QoS and packet id (0 at QoS 0) of a PUBLISH body.

    Topic bytes that are not UTF-8 become lone surrogates, which namespace checks refuse.
    """
    qos = (first >> 1) & 3
    if len(body) < 2:
        raise DataError("PUBLISH packet is too short")
    tlen = (body[0] << 8) | body[1]
    i = 2 + tlen
    topic = body[2:i].decode("utf-8", "surrogateescape")
    mid = 0
    if qos:
        if i + 2 > len(body):
            raise DataError("PUBLISH packet is shorter than its headers say")
        mid = (body[i] << 8) | body[i + 1]
        i += 2
    if version == 5:
        plen, i = _read_varint(body, i)
        i += plen
    if i > len(body):
        raise DataError("PUBLISH packet is shorter than its headers say")
    return topic, body[i:], qos, mid


def parse_connack(body: bytes, version: int = 5) -> tuple[bool, int]:
    """Return (session present, reason code) of a CONNACK; 0 means accepted."""
    if len(body) < 2:
        raise DataError("CONNACK packet is too short")
    return bool(body[0] & 1), body[1]


def parse_suback(body: bytes, version: int = 5) -> tuple[int, list[int]]:
    """Return the packet id and the per-filter reason codes (≥ 0x80: refused) of a SUBACK."""
    if len(body) < 3:
        raise DataError("SUBACK packet is too short")
    mid = (body[0] << 8) | body[1]
    i = 2
    if version == 5:
        plen, i = _read_varint(body, i)
        i += plen
    return mid, list(body[i:])
