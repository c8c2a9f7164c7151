"""Metadata values (one per user key, in the ``metadata`` column family).

    flags:u8 | expire | [version:u64 | size] | type-specific tail

Bit 7 of flags selects the 64-bit encoding (expire in ms, size u64) over the 32-bit
one (expire in seconds, size u32); one database can hold both.  Tails we cannot
decode are kept verbatim in ``tail`` so encode(decode(b)) == b always holds.

Type ids past TimeSeries (src/storage/redis_metadata.h: ``kRedisTopK = 14``) are newer
than the releases kvfix was first written for: a record of such a type counts as that
type only when its bytes fit the type's layout (see kvfix.codec.topk); otherwise it stays
``unknown(<id>)`` with everything after expire kept verbatim, never mis-decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import Reader, u32, u64
from kvfix.codec.topk import TOPK_TYPE_ID, TOPK_TYPE_NAME, decode_topk_tail

FLAG_64BIT = 0x80
TYPE_MASK = 0x0F


class KeyType(IntEnum):
    STRING = 1
    HASH = 2
    LIST = 3
    SET = 4
    ZSET = 5
    BITMAP = 6
    SORTEDINT = 7
    STREAM = 8
    BLOOM = 9
    JSON = 10
    HYPERLOGLOG = 11
    TDIGEST = 12
    TIMESERIES = 13


#: Names as Kvrocks' TYPE command prints them (RedisTypeNames).
TYPE_NAMES: dict[int, str] = {
    1: "string",
    2: "hash",
    3: "list",
    4: "set",
    5: "zset",
    6: "bitmap",
    7: "sortedint",
    8: "stream",
    9: "MBbloom--",
    10: "ReJSON-RL",
    11: "hyperloglog",
    12: "TDIS-TYPE",
    13: "timeseries",
}

#: Types newer Kvrocks defines whose records are recognised only when they fit the layout.
NEWER_TYPE_NAMES: dict[int, str] = {TOPK_TYPE_ID: TOPK_TYPE_NAME}
#: Every TYPE name kvfix can report (for --type choices).
ALL_TYPE_NAMES: dict[int, str] = {**TYPE_NAMES, **NEWER_TYPE_NAMES}

SINGLE_KV_TYPES = frozenset({KeyType.STRING, KeyType.JSON})
EMPTYABLE_TYPES = SINGLE_KV_TYPES | {
    KeyType.STREAM,
    KeyType.BLOOM,
    KeyType.HYPERLOGLOG,
    KeyType.TDIGEST,
    KeyType.TIMESERIES,
    TOPK_TYPE_ID,
}


def type_name(type_id: int) -> str:
    return TYPE_NAMES.get(type_id, f"unknown({type_id})")


@dataclass(frozen=True, slots=True, order=True)
class StreamId:
    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    def encode(self) -> bytes:
        return u64(self.ms) + u64(self.seq)

    @classmethod
    def parse(cls, text: str) -> StreamId:
        ms, _, seq = text.partition("-")
        return cls(int(ms), int(seq or 0))


ZERO_ID = StreamId(0, 0)


@dataclass(frozen=True, slots=True)
class StreamTail:
    last_generated_id: StreamId = ZERO_ID
    recorded_first_entry_id: StreamId = ZERO_ID
    max_deleted_entry_id: StreamId = ZERO_ID
    first_entry_id: StreamId = ZERO_ID
    last_entry_id: StreamId = ZERO_ID
    entries_added: int = 0
    #: None when the record predates consumer groups (value ends after entries_added).
    group_number: int | None = 0

    def encode(self) -> bytes:
        out = b"".join(
            i.encode()
            for i in (
                self.last_generated_id,
                self.recorded_first_entry_id,
                self.max_deleted_entry_id,
                self.first_entry_id,
                self.last_entry_id,
            )
        )
        out += u64(self.entries_added)
        if self.group_number is not None:
            out += u64(self.group_number)
        return out


@dataclass(frozen=True, slots=True)
class ListTail:
    head: int
    tail: int

    def encode(self) -> bytes:
        return u64(self.head) + u64(self.tail)


@dataclass(frozen=True, slots=True)
class Metadata:
    """A decoded metadata value. ``expire_ms`` is normalised to milliseconds."""

    type_id: int
    is_64bit: bool = True
    expire_ms: int = 0
    version: int | None = 0
    size: int | None = 0
    stream: StreamTail | None = None
    list: ListTail | None = None
    #: Undecoded remainder (string payload, JSON format+payload, other type tails).
    tail: bytes = b""
    #: Raw expire as stored (seconds in 32-bit records), kept for exact re-encoding.
    raw_expire: int | None = field(default=None, compare=False)
    #: Flag bits 4-6, unused by the releases kvfix knows; newer encodings may set them.
    extra_flags: int = 0

    @property
    def type_name(self) -> str:
        return NEWER_TYPE_NAMES[self.type_id] if self.newer_type else type_name(self.type_id)

    @property
    def newer_type(self) -> bool:
        """A type past TimeSeries whose record fitted its layout (decode gave it version and size)."""
        return self.type_id in NEWER_TYPE_NAMES and self.version is not None

    @property
    def known_type(self) -> bool:
        return self.type_id in TYPE_NAMES or self.newer_type

    @property
    def creation_us(self) -> int | None:
        """Microsecond timestamp the version was generated at (Kvrocks: us << 11 | counter)."""
        return None if self.version is None else self.version >> 11

    def is_dead(self) -> bool:
        """Size 0 where the type cannot be empty: Kvrocks treats the key as gone."""
        return self.known_type and self.type_id not in EMPTYABLE_TYPES and self.size == 0

    def is_expired(self, now_ms: int) -> bool:
        return self.expire_ms != 0 and self.expire_ms < now_ms

    def encode(self) -> bytes:
        return encode_metadata(self)


def _flags(meta: Metadata) -> int:
    return (FLAG_64BIT if meta.is_64bit else 0) | (meta.extra_flags & 0x70) | (meta.type_id & TYPE_MASK)


def encode_metadata(meta: Metadata) -> bytes:
    if meta.is_64bit:
        out = bytes([_flags(meta)]) + u64(meta.expire_ms)
    else:
        raw = meta.raw_expire if meta.raw_expire is not None else _ms_to_s(meta.expire_ms)
        out = bytes([_flags(meta)]) + u32(raw)
    if (meta.type_id in TYPE_NAMES and meta.type_id not in SINGLE_KV_TYPES) or meta.newer_type:
        if meta.version is None or meta.size is None:
            raise CodecError("metadata of a non-string type needs version and size")
        out += u64(meta.version) + (u64(meta.size) if meta.is_64bit else u32(meta.size))
    if meta.stream is not None:
        out += meta.stream.encode()
    if meta.list is not None:
        out += meta.list.encode()
    return out + meta.tail


def _ms_to_s(ms: int) -> int:
    """Kvrocks' ExpireMsToS: round, and never turn a sub-second expiry into 0."""
    if ms == 0:
        return 0
    return 1 if ms < 1000 else (ms + 499) // 1000


def stream_version(data: bytes) -> int | None:
    """The version of a stream's metadata value without decoding the rest; None for other types.

    The walk reads it for every metadata record, most of which are not streams.
    """
    if not data or data[0] & TYPE_MASK != KeyType.STREAM:
        return None
    at = 9 if data[0] & FLAG_64BIT else 5
    if len(data) < at + 8:
        return None
    return int.from_bytes(data[at : at + 8], "big")


#: flags | expire | version | size | the stream tail (11 u64) | group_number: a 64-bit
#: stream's metadata as Kvrocks writes it, with and without the group number.
_STREAM_64 = struct.Struct(">BQQQ11Q")
_STREAM_64_FLAGS = FLAG_64BIT | KeyType.STREAM


def decode_metadata(data: bytes) -> Metadata:
    if data and data[0] == _STREAM_64_FLAGS and len(data) in (113, 121):
        return _stream_64(data)  # the one layout a walk meets per stream: one unpack
    return decode_metadata_slowly(data)


def decode_metadata_slowly(data: bytes) -> Metadata:
    """decode_metadata field by field, every layout (the reference the fast path is tested against)."""
    r = Reader(data)
    flags = r.u8("metadata flags")
    is_64 = bool(flags & FLAG_64BIT)
    type_id = flags & TYPE_MASK
    extra = flags & 0x70
    if type_id == 0:
        raise CodecError("metadata type 0 (none)")
    raw_expire = r.u64("expire") if is_64 else r.u32("expire")
    expire_ms = raw_expire if is_64 else raw_expire * 1000
    if type_id in NEWER_TYPE_NAMES:
        newer = _decode_newer(type_id, is_64, expire_ms, raw_expire, extra, r.data[r.pos :])
        if newer is not None:
            return newer
    if type_id in SINGLE_KV_TYPES or type_id not in TYPE_NAMES:
        # Unknown types: the layout past expire is not ours to guess; keep it verbatim.
        return Metadata(type_id, is_64, expire_ms, None, None, tail=r.rest(), raw_expire=raw_expire, extra_flags=extra)
    version = r.u64("version")
    size = r.u64("size") if is_64 else r.u32("size")
    stream = lst = None
    if type_id == KeyType.STREAM:
        stream = _decode_stream_tail(r)
    elif type_id == KeyType.LIST:
        lst = ListTail(r.u64("list head"), r.u64("list tail"))
    return Metadata(type_id, is_64, expire_ms, version, size, stream, lst, r.rest(), raw_expire, extra)


_TAIL_11 = struct.Struct(">11Q")


def _stream_64(data: bytes) -> Metadata:
    """decode_metadata of a 64-bit stream record of 113 or 121 bytes (tested against the reader)."""
    v = _STREAM_64.unpack_from(data)
    group_number = int.from_bytes(data[113:], "big") if len(data) == 121 else None
    ids = [StreamId(v[i], v[i + 1]) for i in range(4, 14, 2)]
    tail = StreamTail(ids[0], ids[1], ids[2], ids[3], ids[4], v[14], group_number)
    return Metadata(KeyType.STREAM, True, v[1], v[2], v[3], tail, None, b"", v[1], 0)


def _decode_stream_tail(r: Reader) -> StreamTail:
    if r.remaining in (88, 96):  # the two layouts Kvrocks writes: one unpack, not twelve reads
        v = _TAIL_11.unpack_from(r.data, r.pos)
        r.pos += 88
        group_number = None if r.at_end() else r.u64("group_number")
        ids = [StreamId(v[i], v[i + 1]) for i in range(0, 10, 2)]
        return StreamTail(ids[0], ids[1], ids[2], ids[3], ids[4], v[10], group_number)
    ids = [StreamId(r.u64("stream id ms"), r.u64("stream id seq")) for _ in range(5)]
    entries_added = r.u64("entries_added")
    group_number = None if r.at_end() else r.u64("group_number")
    return StreamTail(ids[0], ids[1], ids[2], ids[3], ids[4], entries_added, group_number)


def _decode_newer(
    type_id: int, is_64: bool, expire_ms: int, raw_expire: int, extra: int, rest: bytes
) -> Metadata | None:
    """version | size | tail of a newer type, or None when the bytes do not fit its layout."""
    r = Reader(rest)
    try:
        version = r.u64("version")
        size = r.u64("size") if is_64 else r.u32("size")
        tail = r.rest()
        if type_id == TOPK_TYPE_ID:
            decode_topk_tail(tail)
    except CodecError:
        return None
    return Metadata(type_id, is_64, expire_ms, version, size, tail=tail, raw_expire=raw_expire, extra_flags=extra)
