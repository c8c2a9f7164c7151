"""The walk's events turned into finished streams: each live stream's analyzer fed its
records and handed on, the garbage between streams counted (one process's part of a scan)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from kvfix.analysis.keyspace import Keyspace, LiveStream
from kvfix.analysis.model import GarbageCount, StreamReport
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.analysis.walk import BadKey, BadMetadata, Garbage, Half, Visit, walk_keyspace
from kvfix.store.database import Database

#: Called with each stream's analyzer once its records are all read (the report is finished).
OnStream = Callable[[StreamAnalyzer], None]


#: Garbage incarnations named one by one in findings; past this many they are only counted.
GARBAGE_NAMED = 1_000


@dataclass
class WalkResult:
    """What a walk over (a part of) the keyspace found besides the live streams."""

    stale: GarbageCount = field(default_factory=GarbageCount)
    orphans: GarbageCount = field(default_factory=GarbageCount)
    #: The first GARBAGE_NAMED incarnations of dead versions and orphans, in key order.
    garbage: list[Garbage] = field(default_factory=list)
    bad_metadata: list[BadMetadata] = field(default_factory=list)
    bad_keys: int = 0
    records: int = 0
    #: Live streams finished.
    streams: int = 0
    #: The second process's finished analyzers (records kept raw), for the first to finish.
    analyzers: list[StreamAnalyzer] = field(default_factory=list)
    #: Peak RSS (VmHWM, KiB) of the second process that produced this result, for benchmarks.
    worker_peak_kib: int = 0

    def add_garbage(self, g: Garbage) -> None:
        count = self.stale if g.owner == "stale" else self.orphans
        count.records += g.records
        count.bytes += g.bytes
        self.records += g.records
        last = self.garbage[-1] if self.garbage else None
        if last is not None and _same_key(last, g):  # a key's versions are neighbours: one finding
            self.garbage[-1] = replace(last, records=last.records + g.records, bytes=last.bytes + g.bytes)
        elif len(self.garbage) < GARBAGE_NAMED:
            self.garbage.append(g)

    def absorb(self, later: WalkResult) -> None:
        """Add the result of the part of the walk after this one."""
        for mine, theirs in ((self.stale, later.stale), (self.orphans, later.orphans)):
            mine.records += theirs.records
            mine.bytes += theirs.bytes
        self.garbage.extend(later.garbage[: max(GARBAGE_NAMED - len(self.garbage), 0)])
        self.bad_metadata.extend(later.bad_metadata)
        self.bad_keys += later.bad_keys
        self.records += later.records
        self.streams += later.streams


def _of(g: Garbage, rep: StreamReport) -> bool:
    return (g.prefix.namespace, g.prefix.slot, g.prefix.user_key) == (rep.namespace, rep.slot, rep.key)


def _same_key(a: Garbage, b: Garbage) -> bool:
    pa, pb = a.prefix, b.prefix
    return (pa.namespace, pa.slot, pa.user_key, a.owner) == (pb.namespace, pb.slot, pb.user_key, b.owner)


def walk_range(
    db: Database,
    ks: Keyspace,
    deep: bool,
    now: int,
    done: OnStream,
    analyzer: Callable[[StreamReport], StreamAnalyzer] = StreamAnalyzer,
    half: Half | None = None,
    tick: Callable[[int, int], None] | None = None,
    keep_pel: bool = True,
    scope: Scope = EVERYTHING,
) -> WalkResult:
    """Walk the keyspace (or one half of it), handing each live stream's analyzer to ``done``."""
    res = WalkResult()
    tick = tick or _no_tick
    current: StreamAnalyzer | None = None
    streams = n = dead = 0  # dead: records of the next stream's dead versions, met before it
    for item in walk_keyspace(db, ks, deep, half, scope):
        if isinstance(item, list):
            res.records += len(item)
            current.add_chunk(item, n)  # type: ignore[union-attr]  # chunks follow their Visit
            continue
        if isinstance(item, Garbage) and item.of_live and current is not None and _of(item, current.report):
            current.report.records["stale"] += item.records  # a dead version sorting after the live one
            res.add_garbage(item)
            continue
        if current is not None:
            done(current)
            current = None
            streams += 1
            tick(streams, res.records)
        if isinstance(item, Visit):
            current = analyzer(new_report(item.live, now))
            current.keep_pel = keep_pel
            current.report.records["stale"] += dead
            n, dead = len(item.raw), 0
        elif isinstance(item, Garbage):
            res.add_garbage(item)
            if item.of_live:
                dead += item.records
        elif isinstance(item, BadMetadata):
            res.bad_metadata.append(item)
        elif isinstance(item, BadKey):
            res.records += 1
            res.bad_keys += 1
            res.orphans.records += 1
            res.orphans.bytes += len(item.key) + len(item.value)
    if current is not None:
        done(current)
        streams += 1
        tick(streams, res.records)
    res.streams = streams
    return res


def _no_tick(streams: int, records: int) -> None:
    return None


def new_report(live: LiveStream, now: int) -> StreamReport:
    meta = live.metadata
    return StreamReport(
        live.key.namespace, live.key.user_key, live.key.slot, meta.version or 0, meta, expired=meta.is_expired(now)
    )
