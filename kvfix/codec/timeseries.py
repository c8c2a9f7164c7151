"""TimeSeries subkeys, chunks, downstream rules and the label index (pure, sans-I/O).

Read off Kvrocks' src/types/redis_timeseries.{h,cc} (TSSubkeyType, internalKeyFrom*,
TSDownStreamMeta, TSRevLabelKey) and src/types/timeseries.{h,cc} (TSChunk):

    default CF  subkey = 0x00 | first_ts:u64     value = chunk
                subkey = 0x01 | label            value = label value
                subkey = 0x02 | destination key  value = downstream rule (TS.CREATERULE)
    chunk       flags:u32 (bit 0 compressed) | count:u32 | count x (ts:u64, value:double)
    rule        aggregator:u8 | bucket_duration:u64 | alignment:u64 | latest_bucket:u64 |
                n_u64:u8 | n_f64:u8 | n_u64 x u64 | n_f64 x double (order-preserving)
    index CF    ns_len:u8 | ns | 0x00 (TS_LABEL) | len:u32 | label | len:u32 | value | user key
                value = b""

Header integers are big-endian like all of Kvrocks' fixed ints, but an uncompressed chunk's
samples are the in-memory TSSample structs copied as they are: little-endian on every
platform Kvrocks builds for (x86-64, arm64).  Kvrocks has no compressed-chunk writer yet;
such a chunk is recognised and kept raw.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import pairwise

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import Reader, u32, u64
from kvfix.codec.types import decode_double, encode_double

CHUNK, LABEL, DOWNSTREAM = 0, 1, 2
#: Leading byte of an index-CF key after the namespace (IndexKeyType::TS_LABEL).
INDEX_TS_LABEL = 0
CHUNK_COMPRESSED = 1
_SAMPLE = struct.Struct("<Qd")

CHUNK_TYPES = {0: "uncompressed", 1: "compressed"}
DUPLICATE_POLICIES = {0: "block", 1: "first", 2: "last", 3: "min", 4: "max", 5: "sum"}
AGGREGATORS = {
    0: "none",
    1: "sum",
    2: "min",
    3: "max",
    4: "count",
    5: "first",
    6: "last",
    7: "avg",
    8: "range",
    9: "std.p",
    10: "std.s",
    11: "var.p",
    12: "var.s",
}


def enum_name(names: dict[int, str], value: int) -> str:
    return names.get(value, f"unknown({value})")


# --- subkeys -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TSChunkKey:
    first_ts: int

    def encode(self) -> bytes:
        return bytes([CHUNK]) + u64(self.first_ts)


@dataclass(frozen=True, slots=True)
class TSLabelKey:
    label: bytes

    def encode(self) -> bytes:
        return bytes([LABEL]) + self.label


@dataclass(frozen=True, slots=True)
class TSDownstreamKey:
    destination: bytes

    def encode(self) -> bytes:
        return bytes([DOWNSTREAM]) + self.destination


TSSubkey = TSChunkKey | TSLabelKey | TSDownstreamKey


def decode_ts_subkey(sub: bytes) -> TSSubkey:
    if not sub:
        raise CodecError("timeseries subkey is empty")
    kind, rest = sub[0], sub[1:]
    if kind == CHUNK:
        if len(rest) != 8:
            raise CodecError(f"timeseries chunk subkey has {len(rest)} id bytes, expected 8")
        return TSChunkKey(int.from_bytes(rest, "big"))
    if kind == LABEL:
        return TSLabelKey(rest)
    if kind == DOWNSTREAM:
        return TSDownstreamKey(rest)
    raise CodecError(f"timeseries subkey type {kind} is not one Kvrocks defines")


# --- chunks --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TSChunk:
    """A chunk: ``samples`` decoded when uncompressed; a compressed one keeps ``payload`` raw."""

    flags: int
    count: int
    samples: tuple[tuple[int, float], ...] = ()
    payload: bytes = b""

    @property
    def compressed(self) -> bool:
        return bool(self.flags & CHUNK_COMPRESSED)

    def encode(self) -> bytes:
        body = self.payload if self.compressed else b"".join(_SAMPLE.pack(ts, v) for ts, v in self.samples)
        return u32(self.flags) + u32(self.count) + body


def chunk_count(raw: bytes) -> int:
    """The sample count of a chunk from its header alone (stats reads no samples)."""
    if len(raw) < 8:
        raise CodecError(f"timeseries chunk is {len(raw)} bytes, shorter than its header")
    return int.from_bytes(raw[4:8], "big")


def decode_chunk(raw: bytes) -> TSChunk:
    r = Reader(raw)
    flags, count = r.u32("chunk flags"), r.u32("chunk count")
    if flags & CHUNK_COMPRESSED:
        return TSChunk(flags, count, payload=r.rest())
    body = r.rest()
    if len(body) != count * _SAMPLE.size:
        raise CodecError(f"chunk of {count} samples has {len(body)} sample bytes, expected {count * _SAMPLE.size}")
    samples = tuple(_SAMPLE.iter_unpack(body))
    if any(a[0] >= b[0] for a, b in pairwise(samples)):
        raise CodecError("chunk sample timestamps are not strictly increasing")
    return TSChunk(flags, count, samples)


def make_chunk(samples: list[tuple[int, float]]) -> TSChunk:
    return TSChunk(0, len(samples), tuple(samples))


# --- downstream rules ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TSDownstreamRule:
    aggregator: int
    bucket_duration: int
    alignment: int
    latest_bucket: int
    u64_auxs: tuple[int, ...] = ()
    f64_auxs: tuple[float, ...] = ()

    @property
    def aggregator_name(self) -> str:
        return enum_name(AGGREGATORS, self.aggregator)

    def encode(self) -> bytes:
        out = bytes([self.aggregator]) + u64(self.bucket_duration) + u64(self.alignment) + u64(self.latest_bucket)
        out += bytes([len(self.u64_auxs), len(self.f64_auxs)])
        return out + b"".join(u64(x) for x in self.u64_auxs) + b"".join(encode_double(x) for x in self.f64_auxs)


def decode_downstream_rule(raw: bytes) -> TSDownstreamRule:
    r = Reader(raw)
    head = (r.u8("aggregator"), r.u64("bucket_duration"), r.u64("alignment"), r.u64("latest_bucket"))
    n_u64, n_f64 = r.u8("u64 aux count"), r.u8("f64 aux count")
    if r.remaining != 8 * (n_u64 + n_f64):
        raise CodecError(f"downstream rule: {r.remaining} aux bytes for {n_u64} + {n_f64} values")
    u64s = tuple(r.u64("u64 aux") for _ in range(n_u64))
    f64s = tuple(decode_double(r.take(8, "f64 aux")) for _ in range(n_f64))
    return TSDownstreamRule(*head, u64s, f64s)


# --- the label index (index column family) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class TSLabelIndexKey:
    """A reverse-index entry: series ``user_key`` in ``namespace`` carries ``label=value``."""

    namespace: bytes
    label: bytes
    value: bytes
    user_key: bytes

    def encode(self) -> bytes:
        if len(self.namespace) > 255:
            raise CodecError(f"namespace longer than 255 bytes ({len(self.namespace)})")
        head = bytes([len(self.namespace)]) + self.namespace + bytes([INDEX_TS_LABEL])
        return head + u32(len(self.label)) + self.label + u32(len(self.value)) + self.value + self.user_key


def decode_label_index_key(data: bytes) -> TSLabelIndexKey:
    r = Reader(data)
    ns = r.take(r.u8("namespace length"), "namespace")
    kind = r.u8("index key type")
    if kind != INDEX_TS_LABEL:
        raise CodecError(f"index key type {kind} is not one Kvrocks defines")
    label = r.take(r.u32("label length"), "label")
    value = r.take(r.u32("label value length"), "label value")
    return TSLabelIndexKey(ns, label, value, r.rest())
