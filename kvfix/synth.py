"""Build Kvrocks databases from records made by the codec's encoders.

For tests, the benchmark and examples: what real fixtures lack (empty or hostile names,
small explicit ids, stale versions, 32-bit records, unknown types) is made here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kvfix.codec.keys import InternalKey, MetadataKey, slot_of
from kvfix.codec.metadata import KeyType, Metadata, StreamId, StreamTail
from kvfix.codec.stream import (
    ConsumerKey,
    ConsumerValue,
    EntryKey,
    EntryValue,
    GroupKey,
    GroupValue,
    Layout,
    PelKey,
    PelValue,
    encode_subkey,
)
from kvfix.storage import create_database

DEFAULT_NS = b"__namespace"
BASE_VERSION = 1_795_775_557_000_000 << 11


@dataclass
class SynthStream:
    """A stream to write: entries plus groups in one layout (or records given raw)."""

    key: bytes
    namespace: bytes = DEFAULT_NS
    version: int = BASE_VERSION
    entries: list[tuple[StreamId, tuple[bytes, ...]]] = field(default_factory=list)
    groups: list[tuple[Layout, bytes, GroupValue]] = field(default_factory=list)
    consumers: list[tuple[Layout, bytes, bytes, ConsumerValue]] = field(default_factory=list)
    pel: list[tuple[Layout, bytes, StreamId, PelValue]] = field(default_factory=list)
    raw_records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (subkey, value)
    expire_ms: int = 0
    is_64bit: bool = True
    size: int | None = None
    group_number: int | None = None

    def metadata(self) -> Metadata:
        ids = sorted(i for i, _ in self.entries)
        first = ids[0] if ids else StreamId(0, 0)
        last = ids[-1] if ids else StreamId(0, 0)
        tail = StreamTail(
            last_generated_id=last,
            recorded_first_entry_id=first,
            first_entry_id=first,
            last_entry_id=last,
            entries_added=len(ids),
            group_number=len({(lay, g) for lay, g, _ in self.groups}) if self.group_number is None else self.group_number,
        )
        size = len(ids) if self.size is None else self.size
        return Metadata(KeyType.STREAM, self.is_64bit, self.expire_ms, self.version, size, stream=tail)

    def records(self) -> Iterable[tuple[bytes, bytes]]:
        for entry_id, items in self.entries:
            yield encode_subkey(EntryKey(entry_id)), EntryValue(items).encode()
        for layout, group, gv in self.groups:
            yield encode_subkey(GroupKey(layout, group)), gv.encode()
        for layout, group, consumer, cv in self.consumers:
            yield encode_subkey(ConsumerKey(layout, group, consumer)), cv.encode()
        for layout, group, entry_id, pv in self.pel:
            yield encode_subkey(PelKey(layout, group, entry_id)), pv.encode()
        yield from self.raw_records


@dataclass
class SynthDB:
    """Everything to write into a new database."""

    cluster: bool = False
    streams: list[SynthStream] = field(default_factory=list)
    #: (namespace, user_key, Metadata) for non-stream keys, plus raw (cf, key, value) records.
    keys: list[tuple[bytes, bytes, Metadata]] = field(default_factory=list)
    raw: list[tuple[str, bytes, bytes]] = field(default_factory=list)

    def slot(self, user_key: bytes) -> int | None:
        return slot_of(user_key) if self.cluster else None

    def write(self, path: Path) -> Path:
        with create_database(path) as db:
            batch = db.batch()
            meta_cf = db.handle("metadata")
            stream_cf = db.handle("stream")
            for s in self.streams:
                slot = self.slot(s.key)
                batch.put(MetadataKey(s.namespace, s.key, slot).encode(), s.metadata().encode(), meta_cf)
                for sub, value in s.records():
                    batch.put(InternalKey(s.namespace, s.key, s.version, sub, slot).encode(), value, stream_cf)
            for ns, key, meta in self.keys:
                batch.put(MetadataKey(ns, key, self.slot(key)).encode(), meta.encode(), meta_cf)
            for cf, key, value in self.raw:
                batch.put(key, value, db.handle(cf))
            db.write(batch)
            db.flush_all()
        return path


def group_value(last: StreamId = StreamId(0, 0), consumers: int = 0, pending: int = 0, entries_read: int = -1) -> GroupValue:
    return GroupValue(consumers, pending, last, entries_read, 0)
