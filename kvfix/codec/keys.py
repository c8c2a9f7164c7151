"""Metadata keys and internal (sub)keys: namespace, optional cluster slot, user key, version.

    metadata key: ns_len:u8 | ns | [slot:u16] | user_key
    internal key: ns_len:u8 | ns | [slot:u16] | key_len:u32 | user_key | version:u64 | subkey

Nothing in the database says whether slots are present, so every decoder takes
``cluster`` explicitly; :func:`slot_of` lets the caller detect the mode from data.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import Reader, u16, u32, u64

DEFAULT_NAMESPACE = b"__namespace"


def _crc16_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC16 = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC16/XMODEM, the checksum Redis Cluster and Kvrocks hash slots with."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ byte) & 0xFF]
    return crc


def slot_of(user_key: bytes) -> int:
    """Cluster slot of a key, honouring a non-empty ``{hash tag}``."""
    start = user_key.find(b"{")
    if start != -1:
        end = user_key.find(b"}", start + 1)
        if end > start + 1:
            user_key = user_key[start + 1 : end]
    return crc16(user_key) & 0x3FFF


@dataclass(frozen=True, slots=True)
class MetadataKey:
    namespace: bytes
    user_key: bytes
    slot: int | None = None

    def encode(self) -> bytes:
        return encode_metadata_key(self)


@dataclass(frozen=True, slots=True)
class InternalKey:
    namespace: bytes
    user_key: bytes
    version: int
    subkey: bytes
    slot: int | None = None

    def prefix(self) -> bytes:
        """Every subkey of this key incarnation starts with these bytes."""
        return internal_prefix(self.namespace, self.user_key, self.version, self.slot)

    def encode(self) -> bytes:
        return self.prefix() + self.subkey


def _ns_head(namespace: bytes, slot: int | None) -> bytes:
    if len(namespace) > 255:
        raise CodecError(f"namespace longer than 255 bytes ({len(namespace)})")
    head = bytes([len(namespace)]) + namespace
    if slot is not None:
        head += u16(slot)
    return head


def encode_metadata_key(key: MetadataKey) -> bytes:
    return _ns_head(key.namespace, key.slot) + key.user_key


def decode_metadata_key(data: bytes, cluster: bool) -> MetadataKey:
    r = Reader(data)
    ns = r.take(r.u8("namespace length"), "namespace")
    slot = r.u16("slot") if cluster else None
    return MetadataKey(ns, r.rest(), slot)


def key_prefix(namespace: bytes, user_key: bytes, slot: int | None) -> bytes:
    """Prefix shared by all incarnations (versions) of one user key's subkeys."""
    return _ns_head(namespace, slot) + u32(len(user_key)) + user_key


def internal_prefix(namespace: bytes, user_key: bytes, version: int, slot: int | None) -> bytes:
    return key_prefix(namespace, user_key, slot) + u64(version)


def decode_internal_key(data: bytes, cluster: bool) -> InternalKey:
    r = Reader(data)
    ns = r.take(r.u8("namespace length"), "namespace")
    slot = r.u16("slot") if cluster else None
    user_key = r.take(r.u32("key length"), "user key")
    version = r.u64("version")
    return InternalKey(ns, user_key, version, r.rest(), slot)


def key_prefix_len(data: bytes, cluster: bool) -> int | None:
    """The length of an internal key's :func:`key_prefix` (every version's), None when the key is
    too short for the lengths it states: decode_internal_key's offsets without building a key."""
    if not data:
        return None
    at = 1 + data[0] + (2 if cluster else 0)
    if len(data) < at + 4:
        return None
    end = at + 4 + int.from_bytes(data[at : at + 4], "big")
    return end if len(data) >= end + 8 else None


def namespace_prefix(namespace: bytes) -> bytes:
    return bytes([len(namespace)]) + namespace


def successor(prefix: bytes) -> bytes | None:
    """Smallest byte string greater than every string that starts with prefix."""
    buf = bytearray(prefix)
    while buf:
        if buf[-1] != 0xFF:
            buf[-1] += 1
            return bytes(buf)
        buf.pop()
    return None
