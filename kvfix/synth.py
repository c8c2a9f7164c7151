"""Build Kvrocks databases from records made by the codec's encoders.

For tests, the benchmark and examples: what real fixtures lack (empty or hostile names,
small explicit ids, stale versions, 32-bit records, unknown types) is made here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kvfix.codec.keys import InternalKey, MetadataKey, slot_of
from kvfix.codec.metadata import ZERO_ID, KeyType, Metadata, StreamId, StreamTail
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
from kvfix.codec.stream_keys import ID_STRUCT
from kvfix.store.database import Database, Op
from kvfix.store.opening import create_database

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
            group_number=len({(lay, g) for lay, g, _ in self.groups})
            if self.group_number is None
            else self.group_number,
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
            ops: list[Op] = []
            for s in self.streams:
                slot = self.slot(s.key)
                ops.append(("metadata", MetadataKey(s.namespace, s.key, slot).encode(), s.metadata().encode()))
                for sub, value in s.records():
                    ops.append(("stream", InternalKey(s.namespace, s.key, s.version, sub, slot).encode(), value))
            for ns, key, meta in self.keys:
                ops.append(("metadata", MetadataKey(ns, key, self.slot(key)).encode(), meta.encode()))
            ops.extend(self.raw)
            db.write(ops)
            db.flush_all()
        return path


def group_value(last: StreamId = ZERO_ID, consumers: int = 0, pending: int = 0, entries_read: int = -1) -> GroupValue:
    return GroupValue(consumers, pending, last, entries_read, 0)


# --- bulk loading (benchmark, scale tests) ---------------------------------------------------

#: First entry id's ms of bulk-loaded streams: 2026-11-01, like XADD * would write.
BULK_EPOCH_MS = 1_793_491_200_000


@dataclass(frozen=True)
class BulkSpec:
    """A large database of streams: many entries, a fixed set of legacy group records."""

    streams: int = 10
    entries: int = 100_000
    groups: int = 100  # legacy groups per stream
    consumers: int = 1  # per group
    pel: int = 1_000  # legacy PEL records per stream, spread over the groups
    layout: Layout = "legacy"
    namespace: bytes = DEFAULT_NS
    cluster: bool = False
    batch_records: int = 200_000


def _entry_value(i: int) -> bytes:
    # XADD s * sensor <n> reading <r> ... as Kvrocks stores it (varint32 length | bytes).
    sensor = b"%d" % (i % 1000)
    reading = b"%d.%02d" % (i % 997, i % 100)
    return b"\x06sensor" + bytes([len(sensor)]) + sensor + b"\x07reading" + bytes([len(reading)]) + reading


def bulk_load(path: Path, spec: BulkSpec = BulkSpec()) -> dict[str, int]:
    """Write a new database from encoded bytes in large WriteBatches (no per-record objects).

    Entry ids are XADD-like timestamps (a few entries share a millisecond); every stream
    gets ``groups`` legacy groups with ``consumers`` consumers each and ``pel`` PEL records
    pointing at its first entries.  Returns counts of what was written.
    """
    counts = {"entries": 0, "groups": 0, "consumers": 0, "pel": 0}
    with create_database(path) as db:
        out = _Batches(db, spec.batch_records)
        for s in range(spec.streams):
            _put_stream(out, spec, s, counts)
            out.flush_if_full()
        out.flush_if_full(force=True)
        db.flush_all()
    return counts


class _Batches:
    """Ops gathered into unsynced WriteBatches of about ``limit`` records.

    A batch is written only where a caller asks: when a stream's entries fill one, and
    after each stream's metadata (group records never end a batch on their own).
    """

    def __init__(self, db: Database, limit: int) -> None:
        self.db = db
        self.limit = limit
        self.ops: list[Op] = []
        self.pending = 0

    def flush_if_full(self, force: bool = False) -> None:
        if self.pending and (force or self.pending >= self.limit):
            self.db.write(self.ops, sync=False)
            self.ops = []
            self.pending = 0


def _put_stream(out: _Batches, spec: BulkSpec, s: int, counts: dict[str, int]) -> None:
    """Stream number ``s``: its entries, its group records, then its metadata."""
    key = b"stream:%05d" % s
    slot = slot_of(key) if spec.cluster else None
    version = BASE_VERSION + s
    prefix = InternalKey(spec.namespace, key, version, b"", slot).prefix()
    pel_ids, last = _put_entries(out, spec, s, prefix)
    first = StreamId(BULK_EPOCH_MS + s + 1, 0)
    groups = _put_groups(out, spec, prefix, pel_ids, counts)
    counts["groups"] += groups
    counts["entries"] += spec.entries
    tail = StreamTail(
        last_generated_id=last,
        recorded_first_entry_id=first,
        first_entry_id=first,
        last_entry_id=last,
        entries_added=spec.entries,
        group_number=groups,
    )
    meta = Metadata(KeyType.STREAM, True, 0, version, spec.entries, stream=tail)
    out.ops.append(("metadata", MetadataKey(spec.namespace, key, slot).encode(), meta.encode()))
    out.pending += 1


def _put_entries(out: _Batches, spec: BulkSpec, s: int, prefix: bytes) -> tuple[list[StreamId], StreamId]:
    """Stream ``s``'s entries, flushed whenever a batch fills; (the first ``pel`` ids, the last id)."""
    id_pack = ID_STRUCT.pack
    limit = spec.batch_records
    ids: list[StreamId] = []
    ms, seq = BULK_EPOCH_MS + s, 0
    put = out.ops.append
    pending = out.pending  # a local in the loop: this runs once per entry
    for i in range(spec.entries):
        if i % 3 == 0:
            ms, seq = ms + 1 + (i % 7), 0
        else:
            seq += 1
        if i < spec.pel:
            ids.append(StreamId(ms, seq))
        put(("stream", prefix + id_pack(ms, seq), _entry_value(i)))
        pending += 1
        if pending >= limit:
            out.pending = pending
            out.flush_if_full()
            pending = out.pending
            put = out.ops.append
    out.pending = pending
    return ids, StreamId(ms, seq)


def _put_groups(out: _Batches, spec: BulkSpec, prefix: bytes, pel_ids: list[StreamId], counts: dict[str, int]) -> int:
    """A stream's groups, each with its PEL records (dealt round the groups) and consumers; how many groups."""
    names = [b"group-%03d" % g for g in range(spec.groups)]
    per_group: dict[bytes, list[StreamId]] = {n: [] for n in names}
    for j, entry_id in enumerate(pel_ids[: spec.pel]):
        if names:
            per_group[names[j % len(names)]].append(entry_id)
    for name in names:
        _put_group(out, spec, prefix, name, per_group[name], counts)
    return len(names)


def _put_group(
    out: _Batches, spec: BulkSpec, prefix: bytes, name: bytes, pel_ids: list[StreamId], counts: dict[str, int]
) -> None:
    """One group record, its PEL records (owned by its consumers in turn), then its consumers."""
    put = out.ops.append
    last_delivered = pel_ids[-1] if pel_ids else StreamId(0, 0)
    gv = GroupValue(spec.consumers, len(pel_ids), last_delivered, -1, 0)
    put(("stream", prefix + encode_subkey(GroupKey(spec.layout, name)), gv.encode()))
    consumers = [b"consumer-%d" % c for c in range(spec.consumers)]
    owned: dict[bytes, int] = dict.fromkeys(consumers, 0)
    for j, entry_id in enumerate(pel_ids):
        owner = consumers[j % len(consumers)] if consumers else b""
        if consumers:
            owned[owner] += 1
        pv = PelValue(BULK_EPOCH_MS, 1, owner)
        put(("stream", prefix + encode_subkey(PelKey(spec.layout, name, entry_id)), pv.encode()))
    for c in consumers:
        cv = ConsumerValue(owned[c], BULK_EPOCH_MS, BULK_EPOCH_MS)
        put(("stream", prefix + encode_subkey(ConsumerKey(spec.layout, name, c)), cv.encode()))
    out.pending += 1 + len(pel_ids) + len(consumers)
    counts["pel"] += len(pel_ids)
    counts["consumers"] += len(consumers)
