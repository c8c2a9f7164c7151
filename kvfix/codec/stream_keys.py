"""Stream subkeys: the two layouts, record kinds, and encoding and reading of subkeys.

Subkeys (after the internal-key prefix of one stream incarnation):

    entry                 id.ms:u64 | id.seq:u64                          (16 bytes)
    legacy group          len(g):u64 | g | "METADATA"
    legacy consumer       len(g):u64 | g | len(c):u64 | c | "METADATA"
    legacy PEL            len(g):u64 | g | id.ms:u64 | id.seq:u64
    prefixed group        0xFF*8 | 0x01 | len(g):u64 | g
    prefixed consumer     0xFF*8 | 0x02 | len(g):u64 | g | len(c):u64 | c
    prefixed PEL          0xFF*8 | 0x03 | len(g):u64 | g | id.ms:u64 | id.seq:u64

A subkey alone may fit several of these (:func:`subkey_readings` lists them all); which
one a record is takes its value too (:mod:`kvfix.codec.stream_classifier`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import U64_MAX, Reader, read_u64, u64
from kvfix.codec.metadata import StreamId

Layout = Literal["legacy", "prefixed"]
LEGACY: Layout = "legacy"
PREFIXED: Layout = "prefixed"

PREFIX_MARK = b"\xff" * 8
LEGACY_SUFFIX = b"METADATA"

#: Where a group record's group name starts in its subkey: after the name's u64 length
#: (legacy), or after 0xFF*8, the record type byte and that length (prefixed).
GROUP_NAME_AT: dict[str, int] = {LEGACY: 8, PREFIXED: 17}


def consumer_name(sub: bytes, layout: Layout, group: bytes) -> bytes:
    """The consumer name in a consumer record's subkey (a legacy one ends with "METADATA")."""
    start = GROUP_NAME_AT[layout] + len(group) + 8
    return sub[start : len(sub) - len(LEGACY_SUFFIX)] if layout == LEGACY else sub[start:]


ENTRY_KEY_LEN = 16
MAX_ID = StreamId(U64_MAX, U64_MAX)
#: A zero u64: an empty legacy group name's length, or an entry id's ms of 0.
ZERO8 = b"\0" * 8
#: An entry id (ms:u64 | seq:u64), as entry subkeys and PEL subkeys end.
ID_STRUCT = struct.Struct(">QQ")


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


#: Per record kind, looked up in hot loops (a dict lookup, not a property call per record).
KIND_VALUE: dict[RecordKind, str] = {k: k.value for k in RecordKind}
KIND_LAYOUT: dict[RecordKind, Layout | None] = {
    k: None if k is RecordKind.ENTRY else LEGACY if k.value.startswith("legacy") else PREFIXED for k in RecordKind
}
KIND_ROLE: dict[RecordKind, str] = {k: k.value.rsplit("_", 1)[-1] for k in RecordKind}
_KIND_LAYOUT, _KIND_ROLE = KIND_LAYOUT, KIND_ROLE
#: (layout, role) -> kind, so key classes name their kind without building an enum from text.
_KIND_OF: dict[tuple[str, str], RecordKind] = {(str(_KIND_LAYOUT[k]), _KIND_ROLE[k]): k for k in RecordKind}


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


def sized(data: bytes) -> bytes:
    """len(data):u64 | data, as names are written in subkeys and PEL values."""
    return u64(len(data)) + data


def encode_subkey(key: StreamSubkey) -> bytes:
    if isinstance(key, EntryKey):
        return key.id.encode()
    if key.layout == LEGACY:
        head = sized(key.group)
        if isinstance(key, GroupKey):
            return head + LEGACY_SUFFIX
        if isinstance(key, ConsumerKey):
            return head + sized(key.consumer) + LEGACY_SUFFIX
        return head + key.entry_id.encode()
    if key.layout != PREFIXED:
        raise CodecError(f"unknown layout {key.layout!r}")
    if isinstance(key, GroupKey):
        return PREFIX_MARK + b"\x01" + sized(key.group)
    if isinstance(key, ConsumerKey):
        return PREFIX_MARK + b"\x02" + sized(key.group) + sized(key.consumer)
    return PREFIX_MARK + b"\x03" + sized(key.group) + key.entry_id.encode()


def with_layout(key: GroupRecordKey, layout: Layout) -> GroupRecordKey:
    """The same record in the other layout (the heart of a migration)."""
    if isinstance(key, GroupKey):
        return GroupKey(layout, key.group)
    if isinstance(key, ConsumerKey):
        return ConsumerKey(layout, key.group, key.consumer)
    return PelKey(layout, key.group, key.entry_id)


_TYPE_BYTE = {"group": b"\x01", "consumer": b"\x02", "pel": b"\x03"}


def pel_entry_id_text(sub: bytes) -> str:
    """The entry id a PEL record's subkey ends with, as "ms-seq" (both layouts end with it)."""
    ms, seq = ID_STRUCT.unpack_from(sub, len(sub) - ENTRY_KEY_LEN)
    return f"{ms}-{seq}"


def prefixed_pel_head(kind: RecordKind) -> bytes:
    """What a PEL subkey of ``kind`` is preceded by in the prefixed layout: relocated_subkey of a
    legacy PEL record is this + the subkey (a prefixed one has it already: b"")."""
    return PREFIX_MARK + _TYPE_BYTE["pel"] if _KIND_LAYOUT[kind] == LEGACY else b""


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
    return StreamId(*ID_STRUCT.unpack_from(data, at))
