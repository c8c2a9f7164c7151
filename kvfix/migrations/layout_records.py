"""Reading a stream's consumer-group records for m001: one walk, entries sought over.

Records are sorted by shape (kvfix.codec.stream_classifier.group_record_shape) and kept
as bytes; only what the shape check cannot answer is classified.  Planning and verifying
read through :func:`stream_records` and :func:`live_chunks`, one stream at a time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from hashlib import sha256

from kvfix.analysis.keyspace import LiveStream, choose_cluster, survey_keyspace
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.analysis.walk import BadKey, Garbage, Visit, paused_gc, walk_keyspace
from kvfix.codec.stream import (
    GROUP_NAME_AT,
    KIND_LAYOUT,
    EntryKey,
    GroupRecordKey,
    Layout,
    RecordKind,
    classify,
    group_record_shape,
)
from kvfix.store.database import Database

#: (namespace, user key) of a stream.
Ident = tuple[bytes, bytes]
#: The kinds of group records proper (not consumers or PEL records).
GROUP_KINDS = frozenset((RecordKind.LEGACY_GROUP, RecordKind.PREFIXED_GROUP))
#: Where a group record kind's group name starts in its subkey.
_NAME_AT = {k: GROUP_NAME_AT[layout] for k in RecordKind if (layout := k.layout) is not None}


def sha(value: bytes) -> str:
    return sha256(value).hexdigest()


@dataclass(slots=True)
class GroupRecord:
    """One group record as a migration needs it: bytes, kind, group name, value digest.

    The decoded key and value are built only when asked for (conflicts, details), so
    collecting a record costs a shape check and a digest.
    """

    sub: bytes
    value: bytes
    kind: RecordKind
    group: bytes
    _decoded: tuple[object, object] | None = None

    @property
    def layout(self) -> Layout:
        layout = KIND_LAYOUT[self.kind]
        assert layout is not None  # a group record's kind always has one
        return layout

    @property
    def value_sha256(self) -> str:
        return sha(self.value)

    @property
    def key(self) -> GroupRecordKey:
        return self._decode()[0]

    @property
    def decoded(self) -> object:
        return self._decode()[1]

    def _decode(self) -> tuple[GroupRecordKey, object]:
        if self._decoded is None:
            c = classify(self.sub, self.value)
            self._decoded = (c.key, c.value)
        return self._decoded  # type: ignore[return-value]


@dataclass
class StreamRecords:
    live: LiveStream
    prefix: bytes
    records: list[GroupRecord] = field(default_factory=list)
    undecodable: list[tuple[bytes, str]] = field(default_factory=list)
    ambiguous: list[bytes] = field(default_factory=list)
    names: dict[bytes, bytes] = field(default_factory=dict)

    def by_layout(self, layout: Layout) -> dict[bytes, list[GroupRecord]]:
        out: dict[bytes, list[GroupRecord]] = defaultdict(list)
        for r in self.records:
            if KIND_LAYOUT[r.kind] == layout:
                out[r.group].append(r)
        return out


#: Streams a plan names in its skipped list; beyond them it only counts.
SKIPPED_NAMED = 1000


@dataclass
class Collected:
    """What a walk found besides the live streams' records: bounded whatever the database."""

    cluster: bool
    #: How many live streams the walk met.
    live: int
    #: Records left alone, per stream (the first SKIPPED_NAMED streams of each kind).
    stale: Counter[Ident] = field(default_factory=Counter)
    orphan: Counter[Ident] = field(default_factory=Counter)
    undecodable: Counter[Ident] = field(default_factory=Counter)
    bad_keys: int = 0
    #: Live streams with group records, and those of them already in the target layout.
    with_records: int = 0
    in_target: int = 0
    #: Streams with records left alone beyond the named ones.
    unnamed: int = 0
    _last: tuple[str, Ident] | None = None

    def skip(self, what: str, ident: Ident, records: int) -> None:
        counter: Counter[Ident] = getattr(self, what)
        if ident in counter or len(counter) < SKIPPED_NAMED:
            counter[ident] += records
        elif self._last != (what, ident):
            self.unnamed += 1
        self._last = (what, ident)


def stream_records(
    db: Database, cluster: bool | None, out: Collected, scope: Scope = EVERYTHING
) -> Iterator[StreamRecords]:
    """Each live stream's group records, one stream at a time, in key order.

    Only the stream being read is held; ``out`` gets the keyspace and the counts of
    stale, orphan and bad keys.
    """
    current: StreamRecords | None = None
    for sr, chunk, n in live_chunks(db, cluster, out, scope):
        if sr is not current:
            if current is not None:
                yield current
            current = sr
        _collect_chunk(sr, chunk, n)
    if current is not None:
        yield current


def live_chunks(
    db: Database, cluster: bool | None, out: Collected, scope: Scope = EVERYTHING
) -> Iterator[tuple[StreamRecords, list[tuple[bytes, bytes]], int]]:
    """(stream, chunk of whole keys and values, prefix length) for each live stream's chunk.

    Every live stream comes first with an empty chunk, then its records' chunks (the fast
    walk of :mod:`kvfix.analysis.walk`, the one scan and check use).  Fills ``out`` with the
    cluster mode, the number of live streams and the records of stale versions, orphans
    and keys that are not internal keys, which it does not yield.  With a ``scope``, only
    the streams in it (and ``out.live`` counts those).
    """
    use_cluster, _ = choose_cluster(db, cluster)
    ks = survey_keyspace(db, use_cluster)
    out.cluster, out.live = use_cluster, 0
    target: StreamRecords | None = None
    n = 0
    with paused_gc():
        for item in walk_keyspace(db, ks, deep=False, scope=scope):
            if isinstance(item, list):
                yield target, item, n  # type: ignore[misc]  # chunks follow their Visit
            elif isinstance(item, Visit):
                target, n = StreamRecords(item.live, item.raw), len(item.raw)
                out.live += 1
                yield target, [], n
            elif isinstance(item, Garbage):
                what = "stale" if item.owner == "stale" else "orphan"
                out.skip(what, (item.prefix.namespace, item.prefix.user_key), item.records)
            elif isinstance(item, BadKey):
                out.bad_keys += 1


def _collect_chunk(target: StreamRecords, chunk: list[tuple[bytes, bytes]], n: int) -> None:
    records = target.records.append
    name = target.names.setdefault  # one bytes object per group name, not one per record
    for whole, value in chunk:
        sub = whole[n:]
        shape = group_record_shape(sub, value)
        if shape is not None:
            kind, end = shape
            group = sub[_NAME_AT[kind] : end]
            records(GroupRecord(sub, value, kind, name(group, group)))
            continue
        c = classify(sub, value)
        key = c.key
        if key is None or c.value is None:
            target.undecodable.append((sub, c.error or "undecodable"))
            continue
        if type(key) is EntryKey:
            continue  # an entry (ms = 2^64-1, or below a small alias): never moved
        if len(c.readings) > 1:
            target.ambiguous.append(sub)
        kind = key.kind
        records(GroupRecord(sub, value, kind, key.group, (key, c.value)))  # type: ignore[union-attr]


def live_layouts(db: Database, cluster: bool | None = None) -> Counter[str]:
    """How many live streams hold group records in legacy, prefixed, both (mixed) or none."""
    out: Counter[str] = Counter()
    for sr in stream_records(db, cluster, Collected(False, 0)):
        layouts = {r.layout for r in sr.records}
        out["mixed" if len(layouts) == 2 else layouts.pop() if layouts else "none"] += 1
    return out
