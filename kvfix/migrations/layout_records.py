"""Reading a stream's consumer-group records for m001: one walk, entries sought over.

Records are sorted by shape (kvfix.codec.stream_classifier.group_record_shape) and kept
as bytes; only what the shape check cannot answer is classified.  As a stream is read,
its group records are summed up per group and layout (:class:`Side`: counts, an
order-free hash, the group record itself, the consumer names); the records themselves
are kept only while the stream is small.  A stream with more than HELD_RECORDS group
records is read again, region by region, when its writes are made
(:meth:`StreamRecords.records`), so no stream is ever held whole, however large.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import NamedTuple

from kvfix.analysis.keyspace import Keyspace, LiveStream, choose_cluster, surveyed
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.analysis.walk import BadKey, Garbage, Half, Visit, group_record_region, paused_gc, walk_keyspace
from kvfix.codec.stream import (
    GROUP_NAME_AT,
    KIND_LAYOUT,
    KIND_ROLE,
    KIND_VALUE,
    LEGACY,
    EntryKey,
    GroupRecordKey,
    Layout,
    RecordKind,
    classify,
    consumer_name,
    group_record_shape,
    pel_entry_id_text,
    pel_run_end,
    prefixed_pel_head,
    relocated_subkey,
)
from kvfix.progress import Progress, Ticker
from kvfix.store.database import Database

#: (namespace, user key) of a stream.
Ident = tuple[bytes, bytes]
#: Where a group record kind's group name starts in its subkey.
_NAME_AT = {k: GROUP_NAME_AT[layout] for k in RecordKind if (layout := k.layout) is not None}


@dataclass(slots=True)
class GroupRecord:
    """One group record as a migration needs it: bytes, kind, group name.

    The decoded key and value are built only when asked for (conflicts, details), so
    collecting a record costs a shape check.
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


#: Records of one stream's part of a write (``KVFIX_PART_RECORDS`` for tests of split streams).
PART_RECORDS = int(os.environ.get("KVFIX_PART_RECORDS", "50000"))
#: Group records of a stream kept while it is read; a larger stream is read again when written.
HELD_RECORDS = max(1, PART_RECORDS // 2)
_MASK = (1 << 128) - 1
#: PEL entry ids a Side keeps for people.
PEL_IDS_KEPT = 20


_M64 = (1 << 64) - 1


def record_hash(sub: bytes, kind: RecordKind, value: bytes) -> int:
    """A 128-bit hash of a group record as it reads in the prefixed layout (a legacy record's
    subkey relocated), so the two sides of a group compare, and sums are order-free.

    The prefixed subkey states its own length, so subkey + value is unambiguous.  The hash
    is Python's own for bytes, twice: SipHash keyed by the process's random key, a PRF, at
    a fraction of a cryptographic hash's cost.  Its values hold only within one process,
    which is where sums are compared: a run plans, writes and verifies in one.
    """
    if KIND_LAYOUT[kind] == LEGACY:
        sub = relocated_subkey(sub, kind)
    return hash128(sub + value)


def hash128(data: bytes) -> int:
    return (hash(data) & _M64) << 64 | (hash(data + b"\x01") & _M64)


def record_check(sub: bytes, kind: RecordKind, value: bytes) -> int:
    """A 64-bit keyed checksum of a group record as it reads in the prefixed layout (BLAKE2b
    of subkey + value, keyed by CHECK_KEY): what verification sums up, the same in a second
    process given the key (:func:`set_check_key`), and a PRF, so no choice of records makes
    a wrong write pass.  Decisions (identical sides) take :func:`record_hash`."""
    if KIND_LAYOUT[kind] == LEGACY:
        sub = relocated_subkey(sub, kind)
    return check64(sub + value)


#: The key of :func:`record_check`: random per run, handed to its second processes.
CHECK_KEY = os.urandom(16)


def set_check_key(key: bytes) -> None:
    """A second process checks with its parent's key."""
    global CHECK_KEY
    CHECK_KEY = key


def check64(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8, key=CHECK_KEY).digest(), "little")


def _pel_hashes(records: list[GroupRecord], i: int, j: int, head: bytes) -> tuple[int, int]:
    """The sums of :func:`record_hash` and :func:`record_check` over records[i:j], PEL records
    of one kind (relocated by ``head``)."""
    h = c = 0
    key, b2, num = CHECK_KEY, blake2b, int.from_bytes
    for r in records[i:j]:
        data = head + r.sub + r.value
        h += (hash(data) & _M64) << 64 | (hash(data + b"\x01") & _M64)
        c += num(b2(data, digest_size=8, key=key).digest(), "little")
    return h, c


@dataclass(slots=True)
class Side:
    """One group's records in one layout, summed up: what a plan decides on, without the records."""

    group: bytes
    layout: Layout
    records: int = 0
    #: Records per kind ("legacy_pel": 3, ...).
    kinds: dict[str, int] = field(default_factory=dict)
    #: Sum of the records' :func:`record_hash`, mod 2^128: equal sums, equal records.
    sum: int = 0
    #: Sum of the records' :func:`record_check`, mod 2^64: what verification compares.
    check: int = 0
    #: The group record proper, if the side has one.
    group_record: GroupRecord | None = None
    consumers: list[bytes] = field(default_factory=list)
    #: The first PEL records' entry ids ("ms-seq"), for people (a conflict's differences).
    pel_ids: list[str] = field(default_factory=list)

    def add(self, records: list[GroupRecord], i: int, j: int) -> None:
        """records[i:j], all of one kind (and of this side's group and layout)."""
        first = records[i]
        kind = first.kind
        name = KIND_VALUE[kind]
        self.records += j - i
        self.kinds[name] = self.kinds.get(name, 0) + j - i
        role = KIND_ROLE[kind]
        if role != "pel":
            for r in records[i:j]:
                self.sum += record_hash(r.sub, kind, r.value)
                self.check += record_check(r.sub, kind, r.value)
                if role == "group":
                    self.group_record = r
                else:
                    self.consumers.append(consumer_name(r.sub, self.layout, self.group))
            self.sum &= _MASK
            self.check &= _M64
            return
        h, c = _pel_hashes(records, i, j, prefixed_pel_head(kind))
        self.sum, self.check = (self.sum + h) & _MASK, (self.check + c) & _M64
        for r in records[i : min(j, i + PEL_IDS_KEPT - len(self.pel_ids))]:
            self.pel_ids.append(pel_entry_id_text(r.sub))

    @property
    def pel(self) -> int:
        return sum(n for kind, n in self.kinds.items() if kind.endswith("_pel"))


@dataclass
class StreamRecords:
    """One live stream's group records: summed up per side, held only while few (see the module doc)."""

    live: LiveStream
    prefix: bytes
    metadata: bytes = b""
    db: Database | None = None
    sides: dict[tuple[bytes, Layout], Side] = field(default_factory=dict)
    count: int = 0
    held: list[GroupRecord] | None = field(default_factory=list)
    undecodable: int = 0
    ambiguous: int = 0
    _subs: set[bytes] | None = None

    def add(self, records: list[GroupRecord]) -> None:
        """Sum up records by runs of one kind and group (their group names are one object each)."""
        sides = self.sides
        i, n = 0, len(records)
        while i < n:
            first = records[i]
            kind, group = first.kind, first.group
            j = i + 1
            while j < n and records[j].group is group and records[j].kind is kind:
                j += 1
            layout = first.layout
            side = sides.get((group, layout))
            if side is None:
                side = sides[(group, layout)] = Side(group, layout)
            side.add(records, i, j)
            i = j
        self.count += n
        if self.held is not None:
            self.held.extend(records)
            if self.count > HELD_RECORDS:
                self.held = None  # read again when written

    def by_layout(self, layout: Layout) -> dict[bytes, Side]:
        return {group: side for (group, lay), side in self.sides.items() if lay == layout}

    def layouts(self) -> set[Layout]:
        return {layout for _, layout in self.sides}

    def records(self, layout: Layout, groups: frozenset[bytes] | None = None) -> Iterator[GroupRecord]:
        """The stream's ``layout`` group records (of ``groups``, or all), in key order: the held
        ones, or read again through an iterator made by this call (the database as it is now)."""
        if self.held is not None:
            return (r for r in self.held if r.layout == layout and (groups is None or r.group in groups))
        assert self.db is not None
        chunks = group_record_region(self.db, self.prefix, layout)
        return self._read_again(chunks, layout, groups)

    def _read_again(
        self, chunks: Iterator[list[tuple[bytes, bytes]]], layout: Layout, groups: frozenset[bytes] | None
    ) -> Iterator[GroupRecord]:
        n = len(self.prefix)
        for chunk in chunks:
            for r in classify_chunk(chunk, n, {}).records:
                if r.layout == layout and (groups is None or r.group in groups):
                    yield r

    def exists(self, sub: bytes) -> bool:
        """Whether the stream holds a record at this subkey (as read)."""
        if self.held is not None:
            if self._subs is None:
                self._subs = {r.sub for r in self.held}
            return sub in self._subs
        assert self.db is not None
        return self.db.get("stream", self.prefix + sub) is not None


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
    #: The last stream counted unnamed, per kind (a stream's records of one kind come in a run).
    _last: dict[str, Ident] = field(default_factory=dict)

    def absorb(self, later: Collected) -> None:
        """Take in what a second process's walk (the streams after ours) left alone, naming
        its streams as this walk would have: the first SKIPPED_NAMED of each kind."""
        self.live += later.live
        self.bad_keys += later.bad_keys
        self.with_records += later.with_records
        self.in_target += later.in_target
        for what in ("stale", "orphan", "undecodable"):
            for ident, n in getattr(later, what).items():
                self.skip(what, ident, n)
        self.unnamed += later.unnamed

    def skip(self, what: str, ident: Ident, records: int) -> None:
        counter: Counter[Ident] = getattr(self, what)
        if ident in counter or len(counter) < SKIPPED_NAMED:
            counter[ident] += records
        elif self._last.get(what) != ident:
            self.unnamed += 1
            self._last[what] = ident


class WalkPart(NamedTuple):
    """A walk's survey, and which part of it one process walks (None: all), with its progress ticks."""

    keyspace: Keyspace
    half: Half | None = None
    tick: Callable[[int, int], None] | None = None


def stream_records(
    db: Database,
    cluster: bool | None,
    out: Collected,
    scope: Scope = EVERYTHING,
    progress: Progress | None = None,
    part: WalkPart | None = None,
) -> Iterator[StreamRecords]:
    """Each live stream's group records, one stream at a time, in key order.

    Only the stream being read is held; ``out`` gets the keyspace and the counts of
    stale, orphan and bad keys.
    """
    current: StreamRecords | None = None
    names: dict[bytes, bytes] = {}
    for sr, chunk, n in live_chunks(db, cluster, out, scope, progress, part):
        if sr is not current:
            if current is not None:
                yield current
            current, names = sr, {}
        if chunk:
            collect_chunk(sr, chunk, n, names)
    if current is not None:
        yield current


def live_chunks(
    db: Database,
    cluster: bool | None,
    out: Collected,
    scope: Scope = EVERYTHING,
    progress: Progress | None = None,
    part: WalkPart | None = None,
) -> Iterator[tuple[StreamRecords, list[tuple[bytes, bytes]], int]]:
    """(stream, chunk of whole keys and values, prefix length) for each live stream's chunk.

    Every live stream comes first with an empty chunk, then its records' chunks (the fast
    walk of :mod:`kvfix.analysis.walk`, the one scan and check use).  Fills ``out`` with the
    cluster mode, the number of live streams and the records of stale versions, orphans
    and keys that are not internal keys, which it does not yield.  With a ``scope``, only
    the streams in it (and ``out.live`` counts those).  With ``part``, one process's part
    of a walk in two (kvfix.migrations.layout_verify): the survey made, the half, its ticks.
    """
    if part is None:
        use_cluster, _ = choose_cluster(db, cluster)
        part = WalkPart(surveyed(db, use_cluster, progress or Progress()))
    else:
        use_cluster = bool(cluster)
    ks, half = part.keyspace, part.half
    out.cluster = use_cluster
    target: StreamRecords | None = None
    n = records = 0
    tick = part.tick or Ticker(progress or Progress(), ks.streams if scope.everything else None)
    with paused_gc():
        for item in walk_keyspace(db, ks, deep=False, half=half, scope=scope):
            if isinstance(item, list):
                records += len(item)
                yield target, item, n  # type: ignore[misc]  # chunks follow their Visit
            elif isinstance(item, Visit):
                tick(out.live, records)
                target, n = StreamRecords(item.live, item.raw, item.metadata, db), len(item.raw)
                out.live += 1
                yield target, [], n
            elif isinstance(item, Garbage):
                what = "stale" if item.owner == "stale" else "orphan"
                out.skip(what, (item.prefix.namespace, item.prefix.user_key), item.records)
            elif isinstance(item, BadKey):
                out.bad_keys += 1


@dataclass
class Classified:
    """A chunk's group records, and how many records were undecodable or ambiguous."""

    records: list[GroupRecord]
    undecodable: int = 0
    ambiguous: int = 0


def classify_chunk(chunk: list[tuple[bytes, bytes]], n: int, names: dict[bytes, bytes]) -> Classified:
    """The group records of a chunk of whole keys (prefix length ``n``); entries are passed over.

    ``names`` keeps one bytes object per group name, not one per record.
    """
    out = Classified([])
    records, more = out.records.append, out.records.extend
    name = names.setdefault
    i, size = 0, len(chunk)
    while i < size:
        whole, value = chunk[i]
        i += 1
        sub = whole[n:]
        shape = group_record_shape(sub, value)
        if shape is not None:
            kind, end = shape
            group = name(sub[_NAME_AT[kind] : end], sub[_NAME_AT[kind] : end])
            records(GroupRecord(sub, value, kind, group))
            if KIND_ROLE[kind] == "pel":  # a run of this group's PEL records: checked by their head
                j = pel_run_end(chunk, i, kind, n + end)
                more([GroupRecord(w[n:], v, kind, group) for w, v in chunk[i:j]])
                i = j
            continue
        c = classify(sub, value)
        key = c.key
        if key is None or c.value is None:
            out.undecodable += 1
            continue
        if type(key) is EntryKey:
            continue  # an entry (ms = 2^64-1, or below a small alias): never moved
        if len(c.readings) > 1:
            out.ambiguous += 1
        records(GroupRecord(sub, value, key.kind, key.group, (key, c.value)))  # type: ignore[union-attr]
    return out


def collect_chunk(target: StreamRecords, chunk: list[tuple[bytes, bytes]], n: int, names: dict[bytes, bytes]) -> None:
    found = classify_chunk(chunk, n, names)
    target.add(found.records)
    target.undecodable += found.undecodable
    target.ambiguous += found.ambiguous


def live_layouts(db: Database, cluster: bool | None = None) -> Counter[str]:
    """How many live streams hold group records in legacy, prefixed, both (mixed) or none."""
    out: Counter[str] = Counter()
    for sr in stream_records(db, cluster, Collected(False, 0)):
        layouts = sr.layouts()
        out["mixed" if len(layouts) == 2 else layouts.pop() if layouts else "none"] += 1
    return out
