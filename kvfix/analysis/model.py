"""What a scan learns about a database: plain dataclasses, rendered by kvfix.render."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from kvfix.analysis.findings import Finding, FindingsDigest
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.codec.metadata import Metadata, StreamId
from kvfix.codec.stream import (
    ConsumerValue,
    GroupValue,
    Layout,
    PelValue,
    RecordKind,
    count_pel_owners,
    decode_consumer_value,
    decode_group_value,
    decode_pel_value,
    read_id,
)

RECORD_COUNT_KEYS = (*(k.value for k in RecordKind), "stale", "unknown")


@dataclass(slots=True)
class ConsumerInfo:
    name: bytes
    value: ConsumerValue

    @property
    def pending(self) -> int:
        return self.value.pending_number


@dataclass(slots=True)
class PelInfo:
    entry_id: StreamId
    value: PelValue


class GroupInfo:
    """One consumer group of a stream in one layout, with its consumers and PEL records.

    A scan files well-formed group records raw (the value bytes, (name, value) pairs,
    whole (key, value) pairs from the walk) and decodes them only when ``value``,
    ``consumers`` or ``pel`` is read: most scans read few of them, and a raw record is a
    fraction of the memory and time of its decoded objects.  Reading decodes everything
    filed so far, in filing order; writing through the returned dict and list works.
    """

    __slots__ = (
        "_consumers",
        "_pel",
        "_pel_done",
        "_pel_dropped",
        "_raw_consumers",
        "_raw_pel",
        "_raw_value",
        "_value",
        "dropped_max_id",
        "dropped_owners",
        "layout",
        "name",
        "pel_at",
    )

    def __init__(
        self,
        name: bytes,
        layout: Layout,
        value: GroupValue | None = None,
        consumers: dict[bytes, ConsumerInfo] | None = None,
        pel: list[PelInfo] | None = None,
    ) -> None:
        self.name = name
        self.layout = layout
        self._value = value  # None: consumers or PEL records with no group record
        self._raw_value: bytes | None = None
        self._consumers = {} if consumers is None else consumers
        self._raw_consumers: list[tuple[bytes, bytes]] = []
        self._pel = [] if pel is None else pel
        #: Whole (key, value) pairs of PEL records, the entry id at ``pel_at`` in the key.
        self._raw_pel: list[tuple[bytes, bytes]] = []
        self._pel_done = 0
        self._pel_dropped = 0
        #: Consumer name -> PEL records naming it, among the records dropped (drop_pel).
        self.dropped_owners: dict[bytes, int] = {}
        self.dropped_max_id: StreamId | None = None
        self.pel_at = 0

    @property
    def value(self) -> GroupValue | None:
        raw = self._raw_value
        if raw is not None:
            self._value, self._raw_value = decode_group_value(raw), None
        return self._value

    @value.setter
    def value(self, value: GroupValue | None) -> None:
        self._value, self._raw_value = value, None

    def file_value(self, raw: bytes) -> None:
        """The group record's value, known to decode (group_record_shape checked its length)."""
        self._raw_value = raw

    @property
    def consumers(self) -> dict[bytes, ConsumerInfo]:
        raw = self._raw_consumers
        if raw:
            out = self._consumers
            for name, value in raw:
                out[name] = ConsumerInfo(name, decode_consumer_value(value))
            raw.clear()
        return self._consumers

    def file_consumer(self, name: bytes, raw: bytes) -> None:
        self._raw_consumers.append((name, raw))

    def pel_offset(self, at: int) -> None:
        """PEL records filed from now on have their entry id at ``at`` in the key.

        Records already filed at another offset (a different key prefix length) are
        decoded first, so every raw record is read at its own offset.
        """
        if at != self.pel_at:
            if len(self._raw_pel) > self._pel_done:
                self.pel  # noqa: B018  (decodes what is still raw)
            self.pel_at = at

    @property
    def raw_pel(self) -> list[tuple[bytes, bytes]]:
        """The list PEL records are filed into, raw: whole (key, value), entry id at pel_at."""
        return self._raw_pel

    @property
    def pel(self) -> list[PelInfo]:
        raw, done = self._raw_pel, self._pel_done
        if len(raw) > done:
            at = self.pel_at
            self._pel.extend(PelInfo(read_id(key, at), decode_pel_value(value)) for key, value in raw[done:])
            self._pel_done = len(raw)
        return self._pel

    @property
    def pel_count(self) -> int:
        """len(pel), without decoding raw records (and counting those dropped)."""
        return len(self._pel) + len(self._raw_pel) - self._pel_done + self._pel_dropped

    def drop_pel(self, start: int, owners: bool = False) -> list[tuple[bytes, bytes]]:
        """Forget the raw PEL records filed from ``start`` on (returned); they stay counted,
        and with ``owners`` so does how many name each consumer (:meth:`pel_owners`)."""
        raw = self._raw_pel
        if start < self._pel_done:
            raise ValueError("decoded PEL records cannot be dropped")
        dropped = raw[start:]
        self._pel_dropped += len(dropped)
        del raw[start:]
        if owners and dropped:
            top = read_id(dropped[-1][0], self.pel_at)  # a group's PEL records come in id order
            if self.dropped_max_id is None or top > self.dropped_max_id:
                self.dropped_max_id = top
            count_pel_owners([value for _, value in dropped], self.dropped_owners)
        return dropped

    def absorb_pel(self, later: GroupInfo) -> None:
        """Take in the PEL records another analyzer of the same group filed after ours
        (a parallel deep scan split inside the stream): kept ones, and those only counted."""
        self.pel.extend(later.pel)
        self._pel_dropped += later._pel_dropped
        for name, n in later.dropped_owners.items():
            self.dropped_owners[name] = self.dropped_owners.get(name, 0) + n
        if later.dropped_max_id is not None and (
            self.dropped_max_id is None or later.dropped_max_id > self.dropped_max_id
        ):
            self.dropped_max_id = later.dropped_max_id

    def pel_max_id(self) -> StreamId | None:
        """The largest entry id a PEL record (kept or dropped) names, None without records."""
        ids = [p.entry_id for p in self.iter_pel()]
        if self.dropped_max_id is not None:
            ids.append(self.dropped_max_id)
        return max(ids, default=None)

    def pel_owners(self) -> dict[bytes, int]:
        """Consumer name -> how many of the group's PEL records (kept or dropped) name it as owner."""
        owned = dict(self.dropped_owners)
        for p in self.iter_pel():
            owned[p.value.consumer] = owned.get(p.value.consumer, 0) + 1
        return owned

    def iter_pel(self) -> Iterator[PelInfo]:
        """``pel`` one record at a time, decoding what is still raw without keeping it."""
        raw, done, at = self._raw_pel, self._pel_done, self.pel_at
        yield from self._pel
        for key, value in raw[done:]:
            yield PelInfo(read_id(key, at), decode_pel_value(value))

    @property
    def pending(self) -> int | None:
        v = self.value
        return None if v is None else v.pending_number

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GroupInfo):
            return NotImplemented
        return (self.name, self.layout, self.value, self.consumers, self.pel, self.pel_count) == (
            other.name,
            other.layout,
            other.value,
            other.consumers,
            other.pel,
            other.pel_count,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by content

    def __repr__(self) -> str:
        return (
            f"GroupInfo(name={self.name!r}, layout={self.layout!r}, value={self.value!r}, "
            f"consumers={len(self.consumers)}, pel={len(self.pel)})"
        )


class Collision(NamedTuple):
    """A legacy record that entry scans meet (one per record; a tuple, as scans make thousands)."""

    kind: RecordKind
    group: bytes
    alias_id: StreamId
    subkey: bytes
    scans: tuple[str, ...]
    releases: tuple[str, ...]


class CollisionSource(Protocol):
    """Builds a stream's collisions on demand (kvfix.analysis.streams.LegacyRecords)."""

    count: int

    def build(self, report: StreamReport) -> list[Collision]: ...

    def iter(self, report: StreamReport) -> Iterator[Collision]: ...

    def runs(self, report: StreamReport) -> Iterator[tuple[Collision, int]]: ...


@dataclass
class StreamReport:
    namespace: bytes
    key: bytes
    slot: int | None
    version: int
    metadata: Metadata
    expired: bool = False
    records: Counter[str] = field(default_factory=Counter)
    groups: dict[tuple[Layout, bytes], GroupInfo] = field(default_factory=dict)
    max_ms_entries: list[StreamId] = field(default_factory=list)
    ambiguous: list[tuple[bytes, tuple[str, ...]]] = field(default_factory=list)
    undecodable: list[tuple[bytes, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: The collisions, once built; until then ``_collision_source`` builds them on first use
    #: (a scan's findings need only their count and alias range, which the analyzer keeps).
    _collisions: list[Collision] | None = field(default=None, init=False, repr=False, compare=False)
    _collision_source: CollisionSource | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def collisions(self) -> list[Collision]:
        """Legacy records that entry scans meet, one per record, in key order."""
        if self._collisions is None:
            source, self._collision_source = self._collision_source, None
            self._collisions = source.build(self) if source is not None else []
        return self._collisions

    def collision_runs(self) -> Iterator[tuple[Collision, int]]:
        """Collisions in runs that share group, kind, alias, scans and releases: (first, count)."""
        source = self._collision_source
        if self._collisions is None and source is not None:
            return source.runs(self)
        return ((c, 1) for c in self.collisions)

    def iter_collisions(self) -> Iterator[Collision]:
        """``collisions`` one at a time; when not built yet, built on the fly and not kept."""
        source = self._collision_source
        if self._collisions is None and source is not None:
            return source.iter(self)
        return iter(self.collisions)

    @property
    def collision_count(self) -> int:
        if self._collisions is None and self._collision_source is not None:
            return self._collision_source.count
        return len(self.collisions)

    def defer_collisions(self, source: CollisionSource) -> None:
        self._collisions, self._collision_source = None, source

    @property
    def layout(self) -> str:
        r = self.records
        legacy = r["legacy_group"] or r["legacy_consumer"] or r["legacy_pel"]
        prefixed = r["prefixed_group"] or r["prefixed_consumer"] or r["prefixed_pel"]
        if legacy and prefixed:
            return "mixed"
        return "legacy" if legacy else "prefixed" if prefixed else "none"

    @property
    def group_records(self) -> int:
        """Groups with a (decodable) group record, in both layouts."""
        return sum(g.value is not None for g in self.groups.values())

    def group(self, layout: Layout, name: bytes) -> GroupInfo:
        info = self.groups.get((layout, name))
        if info is None:
            info = self.groups[(layout, name)] = GroupInfo(name, layout, None)
        return info


@dataclass
class GarbageCount:
    """Records of a key incarnation that is not a live stream (stale version or orphan)."""

    records: int = 0
    bytes: int = 0


@dataclass
class ScanTally:
    """Totals over the streams of a scan, added up as each is finished (no stream is kept)."""

    streams: int = 0
    groups: int = 0
    collisions: int = 0
    layouts: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)
    findings: FindingsDigest = field(default_factory=FindingsDigest)

    def add(self, s: StreamReport) -> None:
        self.streams += 1
        self.groups += len(s.groups)
        self.collisions += s.collision_count
        self.layouts[s.layout] += 1
        self.records.update(s.records)
        self.findings.extend(s.findings)

    def absorb(self, later: ScanTally) -> None:
        """Add the tally of streams that all sort after this one's (a second process's)."""
        self.streams += later.streams
        self.groups += later.groups
        self.collisions += later.collisions
        self.layouts.update(later.layouts)
        self.records.update(later.records)
        self.findings = self.findings.merged(later.findings)


@dataclass
class ScanReport:
    path: str
    column_families: tuple[str, ...]
    cluster_slots: bool
    namespaces: list[bytes]
    deep: bool
    #: Every stream, when the scan kept them (scan_database); empty when they were streamed.
    streams: list[StreamReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    stale: GarbageCount = field(default_factory=GarbageCount)
    orphans: GarbageCount = field(default_factory=GarbageCount)
    tally: ScanTally = field(default_factory=ScanTally)
    #: The streams looked at (--namespace, --stream, --match); everything by default.
    scope: Scope = EVERYTHING

    def all_findings(self) -> list[Finding]:
        """Every finding, when the streams were kept (:meth:`digest` works either way)."""
        out = list(self.findings)
        for s in self.streams:
            out.extend(s.findings)
        return out

    def digest(self) -> FindingsDigest:
        """The report's findings (its own, then the streams'), counted; the first kept as the tally's."""
        return FindingsDigest(self.tally.findings.keep).extend(self.findings).merged(self.tally.findings)

    def summary(self) -> dict[str, int]:
        t = self.tally
        found = self.digest()
        return {
            "streams": t.streams,
            **{f"layout_{k}": t.layouts[k] for k in ("none", "legacy", "prefixed", "mixed")},
            "groups": t.groups,
            "collisions": t.collisions,
            **{f"records_{k}": t.records[k] for k in RECORD_COUNT_KEYS},
            "stale_records": self.stale.records,
            "orphan_records": self.orphans.records,
            "errors": found.severities["error"],
            "warnings": found.severities["warning"],
            "infos": found.severities["info"],
            "read_errors": found.codes["READ_ERROR"].count if "READ_ERROR" in found.codes else 0,
        }
