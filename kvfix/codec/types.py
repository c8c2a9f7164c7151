"""Subkeys, values and metadata tails of the non-stream types (pure, sans-I/O).

Layouts (read off Kvrocks' sources: redis_metadata.{h,cc}, common/encoding.cc,
types/redis_{hash,set,list,zset,bitmap,sortedint}.cc), after the internal-key prefix
``ns | [slot] | key_len | key | version``:

    hash       default     subkey = field                 value = value
    set        default     subkey = member                value = b""
    list       default     subkey = index:u64             value = item   (head <= index < tail)
    zset       default     subkey = member                value = score:double
               zset_score  subkey = score:double | member value = b""
    bitmap     default     subkey = decimal byte offset   value = fragment (<= 1024 bytes, bit 0 = LSB)
    sortedint  default     subkey = id:u64                value = b""

``double`` is Kvrocks' order-preserving encoding (EncodeDoubleToUInt64): the IEEE bits
big-endian, with the sign bit set for positive numbers and every bit inverted for
negative ones, so byte order equals numeric order.

Metadata tails (after ``flags | expire | version | size``):

    bloom      n_filters:u16 | expansion:u16 | base_capacity:u32 | error_rate:double | bloom_bytes:u32
    json       format:u8 (0 JSON, 1 CBOR) | payload      (no version/size: a single-KV type)
    hyperloglog encode_type:u8 (0 dense)
    tdigest    compression:u32 | capacity:u32 | unmerged:u64 | merged:u64 | total_weight:u64 |
               merged_weight:u64 | minimum:double | maximum:double | total_observations:u64 | merge_times:u64
    timeseries retention:u64 | chunk_size:u64 | chunk_type:u8 | duplicate_policy:u8 |
               source_key_len:u32 | source_key | last_timestamp:u64
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import Reader, u16, u32, u64

_F64 = struct.Struct(">d")
_U64 = struct.Struct(">Q")
_SIGN = 1 << 63
_ALL = (1 << 64) - 1

#: Bytes per bitmap fragment (kBitmapSegmentBytes).
BITMAP_FRAGMENT_BYTES = 1024
#: Metadata flag bit the unreleased hash field expiration of Kvrocks PR #2402 set on a hash whose
#: field values carry an expire prefix.  The released encoding has no flag bit: it appends the
#: field-expiration fields to the hash metadata instead (kvfix.codec.hash_ttl).
HASH_FIELD_EXPIRE_FLAG = 0x40


# --- doubles -------------------------------------------------------------------------------


def encode_double(value: float) -> bytes:
    bits = _U64.unpack(_F64.pack(value))[0]
    bits = bits ^ _ALL if bits & _SIGN else bits | _SIGN
    return _U64.pack(bits)


def decode_double(data: bytes) -> float:
    if len(data) != 8:
        raise CodecError(f"encoded double is {len(data)} bytes, expected 8")
    bits = _U64.unpack(data)[0]
    bits = bits & ~_SIGN & _ALL if bits & _SIGN else bits ^ _ALL
    return _F64.unpack(_U64.pack(bits))[0]


# --- subkeys and values ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZsetScoreKey:
    """A zset_score subkey: the score first, so members sort by score."""

    score: float
    member: bytes

    def encode(self) -> bytes:
        return encode_double(self.score) + self.member


def decode_zset_score_key(sub: bytes) -> ZsetScoreKey:
    if len(sub) < 8:
        raise CodecError(f"zset_score subkey is {len(sub)} bytes, shorter than a score")
    return ZsetScoreKey(decode_double(sub[:8]), sub[8:])


def encode_zset_member_value(score: float) -> bytes:
    return encode_double(score)


def decode_zset_member_value(value: bytes) -> float:
    return decode_double(value)


def encode_list_index(index: int) -> bytes:
    return u64(index)


def decode_list_index(sub: bytes) -> int:
    if len(sub) != 8:
        raise CodecError(f"list subkey is {len(sub)} bytes, expected an 8-byte index")
    return _U64.unpack(sub)[0]


def encode_sortedint_id(value: int) -> bytes:
    return u64(value)


def decode_sortedint_id(sub: bytes) -> int:
    if len(sub) != 8:
        raise CodecError(f"sortedint subkey is {len(sub)} bytes, expected an 8-byte id")
    return _U64.unpack(sub)[0]


def encode_bitmap_index(offset: int) -> bytes:
    return str(offset).encode("ascii")


def decode_bitmap_index(sub: bytes) -> int:
    """The byte offset a fragment starts at, stored as decimal text (std::to_string)."""
    if not sub or not sub.isdigit() or (len(sub) > 1 and sub[0:1] == b"0"):
        raise CodecError(f"bitmap subkey {sub!r} is not a decimal byte offset")
    return int(sub)


def bitmap_bit_positions(offset: int, fragment: bytes) -> list[int]:
    """Redis bit offsets (GETBIT numbering) set in a fragment; Kvrocks stores bit 0 as the LSB."""
    out: list[int] = []
    for i, byte in enumerate(fragment):
        if byte:
            out.extend((offset + i) * 8 + b for b in range(8) if byte >> b & 1)
    return out


def bitmap_redis_bytes(fragment: bytes) -> bytes:
    """The fragment as Redis' GET would return it (each byte's bits reversed)."""
    return bytes(int(f"{b:08b}"[::-1], 2) for b in fragment)


def popcount(data: bytes) -> int:
    return int.from_bytes(data, "big").bit_count() if data else 0


# --- metadata tails --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BloomTail:
    n_filters: int
    expansion: int
    base_capacity: int
    error_rate: float
    bloom_bytes: int

    def encode(self) -> bytes:
        return (
            u16(self.n_filters)
            + u16(self.expansion)
            + u32(self.base_capacity)
            + encode_double(self.error_rate)
            + u32(self.bloom_bytes)
        )

    @property
    def capacity(self) -> int:
        if self.expansion == 0:
            return self.base_capacity
        if self.expansion == 1:
            return self.base_capacity * self.n_filters
        return int(self.base_capacity * (1 - self.expansion**self.n_filters) / (1 - self.expansion))


def decode_bloom_tail(tail: bytes) -> BloomTail:
    r = Reader(tail)
    out = BloomTail(
        r.u16("n_filters"),
        r.u16("expansion"),
        r.u32("base_capacity"),
        decode_double(r.take(8, "error_rate")),
        r.u32("bloom_bytes"),
    )
    r.expect_end("bloom metadata")
    return out


JSON_FORMATS = {0: "json", 1: "cbor"}


@dataclass(frozen=True, slots=True)
class JsonTail:
    format: int
    payload: bytes

    @property
    def format_name(self) -> str:
        return JSON_FORMATS.get(self.format, f"unknown({self.format})")

    def encode(self) -> bytes:
        return bytes([self.format]) + self.payload


def decode_json_tail(tail: bytes) -> JsonTail:
    if not tail:
        raise CodecError("JSON metadata has no format byte")
    return JsonTail(tail[0], tail[1:])


HLL_ENCODINGS = {0: "dense"}


@dataclass(frozen=True, slots=True)
class HyperLogLogTail:
    encode_type: int

    @property
    def encoding_name(self) -> str:
        return HLL_ENCODINGS.get(self.encode_type, f"unknown({self.encode_type})")

    def encode(self) -> bytes:
        return bytes([self.encode_type])


def decode_hll_tail(tail: bytes) -> HyperLogLogTail:
    r = Reader(tail)
    out = HyperLogLogTail(r.u8("hyperloglog encode type"))
    r.expect_end("hyperloglog metadata")
    if out.encode_type not in HLL_ENCODINGS:
        raise CodecError(f"hyperloglog encode type {out.encode_type} is not one Kvrocks knows")
    return out


@dataclass(frozen=True, slots=True)
class TDigestTail:
    compression: int
    capacity: int
    unmerged_nodes: int
    merged_nodes: int
    total_weight: int
    merged_weight: int
    minimum: float
    maximum: float
    total_observations: int
    merge_times: int

    def encode(self) -> bytes:
        return (
            u32(self.compression)
            + u32(self.capacity)
            + u64(self.unmerged_nodes)
            + u64(self.merged_nodes)
            + u64(self.total_weight)
            + u64(self.merged_weight)
            + encode_double(self.minimum)
            + encode_double(self.maximum)
            + u64(self.total_observations)
            + u64(self.merge_times)
        )


def decode_tdigest_tail(tail: bytes) -> TDigestTail:
    r = Reader(tail)
    out = TDigestTail(
        r.u32("compression"),
        r.u32("capacity"),
        r.u64("unmerged_nodes"),
        r.u64("merged_nodes"),
        r.u64("total_weight"),
        r.u64("merged_weight"),
        decode_double(r.take(8, "minimum")),
        decode_double(r.take(8, "maximum")),
        r.u64("total_observations"),
        r.u64("merge_times"),
    )
    r.expect_end("tdigest metadata")
    return out


@dataclass(frozen=True, slots=True)
class TimeSeriesTail:
    retention_time: int
    chunk_size: int
    chunk_type: int
    duplicate_policy: int
    source_key: bytes
    last_timestamp: int

    def encode(self) -> bytes:
        return (
            u64(self.retention_time)
            + u64(self.chunk_size)
            + bytes([self.chunk_type, self.duplicate_policy])
            + u32(len(self.source_key))
            + self.source_key
            + u64(self.last_timestamp)
        )


def decode_timeseries_tail(tail: bytes) -> TimeSeriesTail:
    r = Reader(tail)
    out = TimeSeriesTail(
        r.u64("retention_time"),
        r.u64("chunk_size"),
        r.u8("chunk_type"),
        r.u8("duplicate_policy"),
        r.take(r.u32("source key length"), "source key"),
        r.u64("last_timestamp"),
    )
    r.expect_end("timeseries metadata")
    return out


TypeTail = BloomTail | JsonTail | HyperLogLogTail | TDigestTail | TimeSeriesTail

#: type id -> decoder of Metadata.tail, for the types whose tail the base codec keeps verbatim.
TAIL_DECODERS: dict[int, Callable[[bytes], TypeTail]] = {
    9: decode_bloom_tail,
    10: decode_json_tail,
    11: decode_hll_tail,
    12: decode_tdigest_tail,
    13: decode_timeseries_tail,
}


def decode_type_tail(type_id: int, tail: bytes) -> TypeTail | None:
    """The decoded tail of a bloom/JSON/HLL/TDigest/TimeSeries key; None for other types."""
    decoder = TAIL_DECODERS.get(type_id)
    return None if decoder is None else decoder(tail)
