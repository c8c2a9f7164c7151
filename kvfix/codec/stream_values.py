"""Stream record values: entries, groups, consumers and PEL records.

Values are identical in both layouts, so a record's value decodes by its role alone
(entry, group, consumer or pel), and a migration never touches one.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import Reader, i64, u64, varint32
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream_keys import RecordKind, sized

GROUP_VALUE_LEN = 48
CONSUMER_VALUE_LEN = 24
PEL_VALUE_FIXED_LEN = 24
#: A group value: consumers, pending, last delivered id (ms, seq), entries read (signed), lag.
GROUP_VALUE_STRUCT = struct.Struct(">QQQQqQ")
#: Three u64: a whole consumer value, and the fixed head of a PEL value (time, count, owner length).
U64X3 = struct.Struct(">QQQ")


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
        return u64(self.last_delivery_time_ms) + u64(self.delivery_count) + sized(self.consumer)


StreamValue = EntryValue | GroupValue | ConsumerValue | PelValue


def decode_entry_value(data: bytes) -> EntryValue:
    r = Reader(data)
    items = []
    while not r.at_end():
        items.append(r.take(r.varint32("entry item length"), "entry item"))
    if not items or len(items) % 2:
        raise CodecError(f"entry value holds {len(items)} items, not field/value pairs")
    return EntryValue(tuple(items))


def decode_group_value(data: bytes) -> GroupValue:
    if len(data) != GROUP_VALUE_LEN:
        raise CodecError(f"group value is {len(data)} bytes, expected {GROUP_VALUE_LEN}")
    consumers, pending, ms, seq, entries_read, lag = GROUP_VALUE_STRUCT.unpack(data)
    return GroupValue(consumers, pending, StreamId(ms, seq), entries_read, lag)


def decode_consumer_value(data: bytes) -> ConsumerValue:
    if len(data) != CONSUMER_VALUE_LEN:
        raise CodecError(f"consumer value is {len(data)} bytes, expected {CONSUMER_VALUE_LEN}")
    return ConsumerValue(*U64X3.unpack(data))


def decode_pel_value(data: bytes) -> PelValue:
    if len(data) >= PEL_VALUE_FIXED_LEN:
        time_ms, count, owner_len = U64X3.unpack_from(data)
        if PEL_VALUE_FIXED_LEN + owner_len == len(data):
            return PelValue(time_ms, count, data[PEL_VALUE_FIXED_LEN:])
    r = Reader(data)  # the slow way, for its error message
    time_ms, count = r.u64("delivery time"), r.u64("delivery count")
    owner = r.take(r.u64("owner length"), "owner name")
    r.expect_end("PEL value")
    return PelValue(time_ms, count, owner)


_OWNER_LEN = struct.Struct(">Q").unpack_from


def count_pel_owners(values: Iterable[bytes], counts: dict[bytes, int]) -> None:
    """Count each PEL value's owner (``decode_pel_value(v).consumer``) into ``counts``: the
    name is what follows the fixed part when the length field says so, read without a decode."""
    fixed, owner_len = PEL_VALUE_FIXED_LEN, _OWNER_LEN
    get = counts.get
    for v in values:
        n = len(v)
        name = v[fixed:] if n >= fixed and owner_len(v, 16)[0] == n - fixed else decode_pel_value(v).consumer
        counts[name] = get(name, 0) + 1


_VALUE_DECODERS: dict[str, Callable[[bytes], StreamValue]] = {
    "entry": decode_entry_value,
    "group": decode_group_value,
    "consumer": decode_consumer_value,
    "pel": decode_pel_value,
}


def decode_value(kind: RecordKind, data: bytes) -> StreamValue:
    return _VALUE_DECODERS[kind.role](data)
