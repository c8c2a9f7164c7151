"""Stream column family records: entries and consumer-group records in both layouts.

Subkeys (after the internal-key prefix of one stream incarnation):

    entry                 id.ms:u64 | id.seq:u64                          (16 bytes)
    legacy group          len(g):u64 | g | "METADATA"
    legacy consumer       len(g):u64 | g | len(c):u64 | c | "METADATA"
    legacy PEL            len(g):u64 | g | id.ms:u64 | id.seq:u64
    prefixed group        0xFF*8 | 0x01 | len(g):u64 | g
    prefixed consumer     0xFF*8 | 0x02 | len(g):u64 | g | len(c):u64 | c
    prefixed PEL          0xFF*8 | 0x03 | len(g):u64 | g | id.ms:u64 | id.seq:u64

Values are identical in both layouts.  Some byte strings fit two readings (a 16-byte
legacy group with an empty name is also a valid entry id; a legacy consumer with an
empty name has the shape of a PEL record), so :func:`classify` decides from the
whole key and the value, and says when the record stays ambiguous.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import U64_MAX, Reader, i64, read_u64, u64, varint32
from kvfix.codec.metadata import StreamId

Layout = Literal["legacy", "prefixed"]
LEGACY: Layout = "legacy"
PREFIXED: Layout = "prefixed"

PREFIX_MARK = b"\xff" * 8
LEGACY_SUFFIX = b"METADATA"
ENTRY_KEY_LEN = 16
GROUP_VALUE_LEN = 48
CONSUMER_VALUE_LEN = 24
PEL_VALUE_FIXED_LEN = 24
MAX_ID = StreamId(U64_MAX, U64_MAX)


class RecordKind(StrEnum):
    ENTRY = "entry"
    LEGACY_GROUP = "legacy_group"
    LEGACY_CONSUMER = "legacy_consumer"
    LEGACY_PEL = "legacy_pel"
    PREFIXED_GROUP = "prefixed_group"
    PREFIXED_CONSUMER = "prefixed_consumer"
    PREFIXED_PEL = "prefixed_pel"

    @property
    def layout(self) -> Layout | None:
        return _KIND_LAYOUT[self]

    @property
    def role(self) -> str:
        """entry, group, consumer or pel, whatever the layout."""
        return _KIND_ROLE[self]


_KIND_LAYOUT: dict[RecordKind, Layout | None] = {
    k: None if k is RecordKind.ENTRY else LEGACY if k.value.startswith("legacy") else PREFIXED for k in RecordKind
}
_KIND_ROLE: dict[RecordKind, str] = {k: k.value.rsplit("_", 1)[-1] for k in RecordKind}
#: (layout, role) -> kind, so key classes name their kind without building an enum from text.
_KIND_OF: dict[tuple[str, str], RecordKind] = {(str(_KIND_LAYOUT[k]), _KIND_ROLE[k]): k for k in RecordKind}


_PREFIX_TYPE = {"group": 1, "consumer": 2, "pel": 3}


# --- subkeys -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryKey:
    id: StreamId

    @property
    def kind(self) -> RecordKind:
        return RecordKind.ENTRY


@dataclass(frozen=True, slots=True)
class GroupKey:
    layout: Layout
    group: bytes

    @property
    def kind(self) -> RecordKind:
        return _KIND_OF[(self.layout, "group")]


@dataclass(frozen=True, slots=True)
class ConsumerKey:
    layout: Layout
    group: bytes
    consumer: bytes

    @property
    def kind(self) -> RecordKind:
        return _KIND_OF[(self.layout, "consumer")]


@dataclass(frozen=True, slots=True)
class PelKey:
    layout: Layout
    group: bytes
    entry_id: StreamId

    @property
    def kind(self) -> RecordKind:
        return _KIND_OF[(self.layout, "pel")]


StreamSubkey = EntryKey | GroupKey | ConsumerKey | PelKey
GroupRecordKey = GroupKey | ConsumerKey | PelKey


def _sized(data: bytes) -> bytes:
    return u64(len(data)) + data


def encode_subkey(key: StreamSubkey) -> bytes:
    if isinstance(key, EntryKey):
        return key.id.encode()
    if key.layout == LEGACY:
        head = _sized(key.group)
        if isinstance(key, GroupKey):
            return head + LEGACY_SUFFIX
        if isinstance(key, ConsumerKey):
            return head + _sized(key.consumer) + LEGACY_SUFFIX
        return head + key.entry_id.encode()
    if key.layout != PREFIXED:
        raise CodecError(f"unknown layout {key.layout!r}")
    if isinstance(key, GroupKey):
        return PREFIX_MARK + b"\x01" + _sized(key.group)
    if isinstance(key, ConsumerKey):
        return PREFIX_MARK + b"\x02" + _sized(key.group) + _sized(key.consumer)
    return PREFIX_MARK + b"\x03" + _sized(key.group) + key.entry_id.encode()


def with_layout(key: GroupRecordKey, layout: Layout) -> GroupRecordKey:
    """The same record in the other layout (the heart of a migration)."""
    if isinstance(key, GroupKey):
        return GroupKey(layout, key.group)
    if isinstance(key, ConsumerKey):
        return ConsumerKey(layout, key.group, key.consumer)
    return PelKey(layout, key.group, key.entry_id)


_TYPE_BYTE = {"group": b"\x01", "consumer": b"\x02", "pel": b"\x03"}


def relocated_subkey(sub: bytes, kind: RecordKind) -> bytes:
    """encode_subkey(with_layout(key, other layout)) for the subkey ``sub`` of a ``kind`` record.

    Both layouts share the sized group name and what follows it; only the head
    (0xFF*8 + type byte) and the "METADATA" tail of legacy groups and consumers differ,
    so moving a record is slicing and concatenation, without decoding it.
    """
    role = _KIND_ROLE[kind]
    layout = _KIND_LAYOUT[kind]
    if layout == LEGACY:
        body = sub if role == "pel" else sub[:-8]
        return PREFIX_MARK + _TYPE_BYTE[role] + body
    if layout == PREFIXED:
        body = sub[9:]
        return body if role == "pel" else body + LEGACY_SUFFIX
    raise CodecError(f"{kind.value} records have no other layout")


def _legacy_readings(sub: bytes) -> list[StreamSubkey]:
    n = len(sub)
    if n < 16:
        return []
    glen = read_u64(sub)
    if 8 + glen > n:
        return []
    group = sub[8 : 8 + glen]
    rest = sub[8 + glen :]
    out: list[StreamSubkey] = []
    if rest == LEGACY_SUFFIX:
        out.append(GroupKey(LEGACY, group))
    if len(rest) >= 16 and rest.endswith(LEGACY_SUFFIX) and read_u64(rest) == len(rest) - 16:
        out.append(ConsumerKey(LEGACY, group, rest[8:-8]))
    if len(rest) == 16:
        out.append(PelKey(LEGACY, group, StreamId(read_u64(rest), read_u64(rest, 8))))
    return out


def _prefixed_reading(sub: bytes) -> StreamSubkey | None:
    if len(sub) < 17 or not sub.startswith(PREFIX_MARK):
        return None
    kind = sub[8]
    try:
        r = Reader(sub, 9)
        group = r.take(r.u64("group length"), "group name")
        if kind == 1:
            r.expect_end("prefixed group key")
            return GroupKey(PREFIXED, group)
        if kind == 2:
            consumer = r.take(r.u64("consumer length"), "consumer name")
            r.expect_end("prefixed consumer key")
            return ConsumerKey(PREFIXED, group, consumer)
        if kind == 3:
            entry_id = StreamId(r.u64("pel id ms"), r.u64("pel id seq"))
            r.expect_end("prefixed PEL key")
            return PelKey(PREFIXED, group, entry_id)
    except CodecError:
        return None
    return None


def subkey_readings(sub: bytes) -> tuple[StreamSubkey, ...]:
    """Every structural reading of a stream subkey: full length prefix, name, exact tail."""
    readings: list[StreamSubkey] = []
    pre = _prefixed_reading(sub)
    if pre is not None:
        readings.append(pre)
    readings.extend(_legacy_readings(sub))
    if len(sub) == ENTRY_KEY_LEN:
        readings.append(EntryKey(StreamId(read_u64(sub), read_u64(sub, 8))))
    return tuple(readings)


def alias_id(sub: bytes) -> StreamId:
    """The entry id an entry reader takes this subkey for (first 16 bytes, zero-padded)."""
    return StreamId(read_u64(sub), read_u64(sub, 8))


def read_id(data: bytes, at: int) -> StreamId:
    """The 16-byte id (ms:u64 | seq:u64) at ``at``; the bytes must be there."""
    return StreamId(*_ID.unpack_from(data, at))


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryValue:
    """Flat field, value, field, value ... as XADD stored them."""

    items: tuple[bytes, ...]

    def encode(self) -> bytes:
        return b"".join(varint32(len(x)) + x for x in self.items)


@dataclass(frozen=True, slots=True)
class GroupValue:
    consumer_number: int
    pending_number: int
    last_delivered_id: StreamId
    entries_read: int  # signed; -1 = unknown
    lag: int

    def encode(self) -> bytes:
        return (
            u64(self.consumer_number)
            + u64(self.pending_number)
            + self.last_delivered_id.encode()
            + i64(self.entries_read)
            + u64(self.lag)
        )


@dataclass(frozen=True, slots=True)
class ConsumerValue:
    pending_number: int
    last_attempted_interaction_ms: int
    last_successful_interaction_ms: int

    def encode(self) -> bytes:
        return (
            u64(self.pending_number)
            + u64(self.last_attempted_interaction_ms)
            + u64(self.last_successful_interaction_ms)
        )


@dataclass(frozen=True, slots=True)
class PelValue:
    last_delivery_time_ms: int
    delivery_count: int
    consumer: bytes

    def encode(self) -> bytes:
        return u64(self.last_delivery_time_ms) + u64(self.delivery_count) + _sized(self.consumer)


StreamValue = EntryValue | GroupValue | ConsumerValue | PelValue


def decode_entry_value(data: bytes) -> EntryValue:
    r = Reader(data)
    items = []
    while not r.at_end():
        items.append(r.take(r.varint32("entry item length"), "entry item"))
    if not items or len(items) % 2:
        raise CodecError(f"entry value holds {len(items)} items, not field/value pairs")
    return EntryValue(tuple(items))


_GROUP_VALUE = struct.Struct(">QQQQqQ")
_CONSUMER_VALUE = struct.Struct(">QQQ")
_ID = struct.Struct(">QQ")


def decode_group_value(data: bytes) -> GroupValue:
    if len(data) != GROUP_VALUE_LEN:
        raise CodecError(f"group value is {len(data)} bytes, expected {GROUP_VALUE_LEN}")
    consumers, pending, ms, seq, entries_read, lag = _GROUP_VALUE.unpack(data)
    return GroupValue(consumers, pending, StreamId(ms, seq), entries_read, lag)


def decode_consumer_value(data: bytes) -> ConsumerValue:
    if len(data) != CONSUMER_VALUE_LEN:
        raise CodecError(f"consumer value is {len(data)} bytes, expected {CONSUMER_VALUE_LEN}")
    return ConsumerValue(*_CONSUMER_VALUE.unpack(data))


def decode_pel_value(data: bytes) -> PelValue:
    if len(data) >= PEL_VALUE_FIXED_LEN:
        time_ms, count, owner_len = _CONSUMER_VALUE.unpack_from(data)
        if PEL_VALUE_FIXED_LEN + owner_len == len(data):
            return PelValue(time_ms, count, data[PEL_VALUE_FIXED_LEN:])
    r = Reader(data)  # the slow way, for its error message
    time_ms, count = r.u64("delivery time"), r.u64("delivery count")
    owner = r.take(r.u64("owner length"), "owner name")
    r.expect_end("PEL value")
    return PelValue(time_ms, count, owner)


_VALUE_DECODERS: dict[str, Callable[[bytes], StreamValue]] = {
    "entry": decode_entry_value,
    "group": decode_group_value,
    "consumer": decode_consumer_value,
    "pel": decode_pel_value,
}


def decode_value(kind: RecordKind, data: bytes) -> StreamValue:
    return _VALUE_DECODERS[kind.role](data)


# --- classification ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Classified:
    """What a stream subkey and its value are.

    ``key``/``value`` hold the chosen reading (None when nothing fits).  ``readings``
    lists every kind whose key *and* value fit; more than one means ambiguous.
    ``error`` explains a key whose structure fits but whose value does not.
    """

    key: StreamSubkey | None
    value: StreamValue | None
    readings: tuple[RecordKind, ...] = ()
    error: str | None = None

    @property
    def kind(self) -> RecordKind | None:
        return None if self.key is None else self.key.kind

    @property
    def ambiguous(self) -> bool:
        return len(self.readings) > 1


# When two readings fit key and value, prefer group metadata over an entry with id
# 0-0x4d45544144415441, and a consumer over a PEL record whose owner name is empty:
# both alternatives need ids or names nobody writes on purpose.
_PREFERENCE = {k: i for i, k in enumerate(("group", "consumer", "pel", "entry"))}


_U64_AT = struct.Struct(">Q").unpack_from


def group_record_shape(sub: bytes, value: bytes) -> tuple[RecordKind, int] | None:
    """(kind, end of the group name) of a well-formed group record with one reading, else None.

    The group name is ``sub[8:end]`` (legacy) or ``sub[17:end]`` (prefixed).  Answers only
    when the subkey has exactly one structural reading and the value decodes:

    - legacy, 24+ bytes (never an entry, which is 16; a legacy length can't be 2^64-1,
      so no prefixed reading fits): "METADATA" alone after the name (group); a sized,
      non-empty consumer name + "METADATA" (an empty one is also a PEL shape); or 16
      bytes whose first 8 are not zero (a zero ms could be an empty consumer name);
    - prefixed, type 1/2/3: the type byte decides, and no legacy or entry reading fits
      (a legacy length of 2^64-1 overruns any key).

    Everything else goes through classify's full path, which tests compare this with.
    The check costs no object, so a migration can sort records without decoding them.
    """
    n = len(sub)
    if n < 17:
        return None
    m = len(value)
    if sub.startswith(PREFIX_MARK):
        glen = _U64_AT(sub, 9)[0]
        rest = n - 17 - glen
        if rest < 0:
            return None
        end = 17 + glen
        kind = sub[8]
        if kind == 1:
            return (RecordKind.PREFIXED_GROUP, end) if rest == 0 and m == GROUP_VALUE_LEN else None
        if kind == 2:
            if rest >= 8 and _U64_AT(sub, end)[0] == rest - 8 and m == CONSUMER_VALUE_LEN:
                return RecordKind.PREFIXED_CONSUMER, end
            return None
        if kind == 3 and rest == 16 and _pel_value_fits(value, m):
            return RecordKind.PREFIXED_PEL, end
        return None
    if n < 24:
        return None
    glen = _U64_AT(sub)[0]
    rest = n - 8 - glen
    if rest < 8:
        return None
    end = 8 + glen
    if rest == 16:
        if sub.startswith(ZERO8, end) or not _pel_value_fits(value, m):
            return None
        return RecordKind.LEGACY_PEL, end
    if not sub.endswith(LEGACY_SUFFIX):
        return None
    if rest == 8:
        return (RecordKind.LEGACY_GROUP, end) if m == GROUP_VALUE_LEN else None
    if rest > 16 and _U64_AT(sub, end)[0] == rest - 16 and m == CONSUMER_VALUE_LEN:
        return RecordKind.LEGACY_CONSUMER, end
    return None


def _pel_value_fits(value: bytes, m: int) -> bool:
    return m >= PEL_VALUE_FIXED_LEN and PEL_VALUE_FIXED_LEN + _U64_AT(value, 16)[0] == m


def fast_group_record(sub: bytes, value: bytes) -> tuple[GroupRecordKey, StreamValue] | None:
    """(key, value) as classify() reads a record group_record_shape() answers for, else None."""
    shape = group_record_shape(sub, value)
    if shape is None:
        return None
    kind, end = shape
    role = _KIND_ROLE[kind]
    layout = _KIND_LAYOUT[kind]
    group = sub[8 if layout == LEGACY else 17 : end]
    if role == "pel":
        ms, seq = _ID.unpack_from(sub, end)
        time_ms, count, _ = _CONSUMER_VALUE.unpack_from(value)
        return PelKey(layout, group, StreamId(ms, seq)), PelValue(time_ms, count, value[PEL_VALUE_FIXED_LEN:])  # type: ignore[arg-type]
    if role == "group":
        consumers, pending, ms, seq, entries_read, lag = _GROUP_VALUE.unpack(value)
        return GroupKey(layout, group), GroupValue(consumers, pending, StreamId(ms, seq), entries_read, lag)  # type: ignore[arg-type]
    consumer = sub[end + 8 : len(sub) - 8] if layout == LEGACY else sub[end + 8 :]
    return ConsumerKey(layout, group, consumer), ConsumerValue(*_CONSUMER_VALUE.unpack(value))  # type: ignore[arg-type]


def classify(sub: bytes, value: bytes) -> Classified:
    fast = fast_group_record(sub, value)
    if fast is not None:
        key, val = fast
        return Classified(key, val, _ONLY[key.kind])
    return classify_slowly(sub, value)


_ONLY = {k: (k,) for k in RecordKind}


def classify_slowly(sub: bytes, value: bytes) -> Classified:
    """classify() by trying every reading of the subkey (the reference the fast path must match)."""
    readings = subkey_readings(sub)
    if not readings:
        return Classified(None, None, error="subkey fits no stream record layout")
    fits: list[tuple[StreamSubkey, StreamValue]] = []
    errors: list[str] = []
    for key in readings:
        try:
            fits.append((key, decode_value(key.kind, value)))
        except CodecError as exc:
            errors.append(f"as {key.kind.value}: {exc}")
    if not fits:
        return Classified(readings[0], None, error="; ".join(errors))
    if len(fits) > 1:
        fits.sort(key=lambda kv: _PREFERENCE[kv[0].kind.role])
    key, val = fits[0]
    return Classified(key, val, tuple(k.kind for k, _ in fits))


ZERO8 = b"\0" * 8


def is_plain_entry(sub: bytes, value: bytes) -> bool:
    """True only when classify(sub, value) is an entry reading alone, with a valid value.

    A 16-byte subkey whose first u64 is neither 0 nor 2^64-1 fits no group layout (a
    legacy record needs len(group) + 8 bytes after its length, so a 16-byte one has an
    empty name; a prefixed one starts with 0xFF*8 and is longer), so only the value needs
    checking: varint32 lengths that tile it exactly into a non-zero even number of items.
    Single-byte lengths are checked here; anything else answers False (the caller falls
    back to classify), so True never disagrees with classify.  StreamAnalyzer.add_chunk
    inlines this same test.
    """
    if len(sub) != ENTRY_KEY_LEN or sub.startswith(ZERO8) or sub.startswith(PREFIX_MARK):
        return False
    m = len(value)
    p = 0
    while p < m:
        b = value[p]
        if b > 127:
            return False
        p += b + 1
        if p >= m:
            return False
        b = value[p]
        if b > 127:
            return False
        p += b + 1
    return m > 0 and p == m


def encode_record(key: StreamSubkey, value: StreamValue) -> tuple[bytes, bytes]:
    return encode_subkey(key), value.encode()
