"""check: verify every live stream's invariants (counters, ids, record shapes).

scan answers "which layout, which collisions"; check reads *every* record (a deep walk)
and answers "is every stream internally consistent", like ``git fsck``.

Facts are gathered during the walk by :class:`CheckAnalyzer` (a StreamAnalyzer that also
counts entries and remembers the smallest and largest entry id) and by point reads of
the entry ids that PEL records name; no per-entry state is held.  The invariants
themselves are pure functions of a :class:`StreamReport` and its :class:`StreamFacts`
(:func:`invariant_findings`), and so is the repair plan (:mod:`kvfix.analysis.repair_plan`).

Which groups are "live" for ``group_number``: every group *record*, in either layout.
Kvrocks increments the one ``group_number`` counter on every successful XGROUP CREATE,
whatever layout the server writes, and never converts records, so a stream created on a
development build (legacy) and given more groups on 2.10+ (prefixed) holds the sum: the
real upgraded-mixed fixture says 4 for 2 legacy + 2 prefixed records (``billing`` twice).
A reader sees only its own layout, but the counter is shared; counting one layout would
flag every stream an upgrade touched.  Consumer and PEL records whose group record is
missing are not a live group (GROUP_RECORD_MISSING).

Expired streams are not checked: the server treats them as gone (EXPIRED_STREAM).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol

from kvfix.analysis.findings import Finding, FindingsDigest
from kvfix.analysis.invariants import (
    REPAIRABLE,
    BadValue,
    StreamFacts,
    invariant_findings,
)
from kvfix.analysis.model import GroupInfo, ScanReport, StreamReport
from kvfix.analysis.scan import ScanStage, scan_streams
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.analysis.sharded import Stage
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.analysis.targets import Target
from kvfix.bounded import chunked
from kvfix.codec.ints import read_u64
from kvfix.codec.keys import internal_prefix
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import ENTRY_KEY_LEN, ConsumerKey, EntryKey, GroupKey, classify, is_plain_entry, read_id
from kvfix.progress import Progress
from kvfix.store.database import Database

#: Entry lookups remembered while checking one stream's PEL records.
PROBE_CACHE = 100_000
#: Entries looked up in one MultiGet.
PROBE_BATCH = 4096


class CheckAnalyzer(StreamAnalyzer):
    """StreamAnalyzer that also counts entries, keeps the min/max entry id and bad values.

    It keeps scan's fast path: after ``add_chunk`` classified a chunk, the number of
    entries it counted is the difference of the entry counter, and as a prefix's keys
    come in key order (= id order), the chunk's first and last entries are found by
    looking from both ends past the few group records (legacy ones sort first,
    prefixed ones last).  Records scan could not decode (rare) are classified again.
    """

    def __init__(self, report: StreamReport, probe: Callable[[list[bytes]], list[bool | None]] | None = None) -> None:
        super().__init__(report)
        self.facts = StreamFacts()
        #: Whether entries exist, given their ids' 16 bytes, in one batch; None where a read
        #: failed.  No probe: do not look (expired streams).
        self.probe = probe
        #: PEL records whose entry is gone, among those the walk counted and dropped.
        self.dropped_deleted: dict[tuple[str, bytes], list[StreamId]] = {}
        self._present: dict[bytes, bool | None] = {}
        #: The chunk add_chunk is reading and its key prefix length: PEL records dropped
        #: while it is read may name entries inside it (a small stream's one chunk).
        self._chunk: list[tuple[bytes, bytes]] = []
        self._chunk_n = 0

    def dropped(self, g: GroupInfo, pairs: list[tuple[bytes, bytes]]) -> None:
        """Look up each dropped PEL record's entry now, so no PEL record is held: one batch of
        reads per run (at most a chunk), through a bounded cache (groups of one stream often
        name the same entries)."""
        probe = self.probe
        if probe is None or not pairs:
            return
        at, present = g.pel_at, self._present
        raws = [key[at : at + 16] for key, _ in pairs]
        asked = list(dict.fromkeys(raw for raw in raws if raw not in present))
        if asked and self._chunk:
            asked = self._in_chunk(asked, present)
        if asked:
            if len(present) + len(asked) > PROBE_CACHE:  # keep only what this run needs
                known = {raw: present[raw] for raw in raws if raw in present}
                present.clear()
                present.update(known)
            present.update(zip(asked, probe(asked), strict=True))
        gone = None
        for raw in raws:
            if present[raw] is False:  # None: unreadable, reported as a read error
                if gone is None:
                    gone = self.dropped_deleted.setdefault((g.layout, g.name), [])
                gone.append(read_id(raw, 0))

    def _in_chunk(self, asked: list[bytes], present: dict[bytes, bool | None]) -> list[bytes]:
        """Answer from the current chunk the ids whose keys fall inside its key range (a
        chunk holds every key of its range: the walk reads ranges whole); the rest."""
        chunk = self._chunk
        prefix = chunk[0][0][: self._chunk_n]
        lo, hi = chunk[0][0], chunk[-1][0]
        if prefix + asked[0] > hi or prefix + asked[-1] < lo:
            return asked  # a run is in id order: none inside
        rest: list[bytes] = []
        for raw in asked:
            key = prefix + raw
            if lo <= key <= hi:
                i = bisect_left(chunk, (key,))
                present[raw] = i < len(chunk) and chunk[i][0] == key
            else:
                rest.append(raw)
        return rest

    def add_chunk(self, chunk: list[tuple[bytes, bytes]], n: int) -> None:
        rep = self.report
        entries, undecodable = rep.records["entry"], len(rep.undecodable)
        self._chunk, self._chunk_n = chunk, n
        try:
            super().add_chunk(chunk, n)
        finally:
            self._chunk = []
        added = rep.records["entry"] - entries
        if added:
            first = next(_entry_ids(chunk, n), None)
            last = next(_entry_ids(reversed(chunk), n), None)
            if first is not None and last is not None:
                self.facts.add_entries(added, first, last)
        if len(rep.undecodable) != undecodable:
            bad = {sub for sub, _ in rep.undecodable[undecodable:]}
            for key, value in chunk:
                if key[n:] in bad:
                    self._bad(key[n:], value)

    def _bad(self, sub: bytes, value: bytes) -> None:
        c = classify(sub, value)
        if c.key is None:
            return  # fits no layout: UNDECODABLE_RECORD (scan) reports it
        self.facts.bad_values.append(BadValue(sub, c.key.kind.value, len(value), c.error or "undecodable"))
        if isinstance(c.key, EntryKey):  # the entry exists, only its value is damaged
            self.facts.add_entries(1, c.key.id, c.key.id)
        elif isinstance(c.key, ConsumerKey):  # the consumer exists: count it, repair rebuilds it
            self.facts.bad_consumers.setdefault((c.key.layout, c.key.group), set()).add(c.key.consumer)
        elif isinstance(c.key, GroupKey):
            self.facts.bad_groups.add((c.key.layout, c.key.group))


def _entry_ids(pairs: Iterable[tuple[bytes, bytes]], n: int) -> Iterator[StreamId]:
    """Ids of the records classify reads as entries with a valid value, in the given order."""
    for key, value in pairs:
        sub = key[n:]
        if is_plain_entry(sub, value):
            yield StreamId(read_u64(sub), read_u64(sub, 8))
            continue
        if len(sub) != ENTRY_KEY_LEN:
            continue  # no entry reading: group records cost no classification here
        c = classify(sub, value)
        if isinstance(c.key, EntryKey) and c.value is not None:
            yield c.key.id


@dataclass
class StreamCheck:
    report: StreamReport
    facts: StreamFacts
    findings: list[Finding] = field(default_factory=list)


@dataclass
class CheckTally:
    """Totals over the checked streams, added up as each is checked (no stream is kept)."""

    entries: int = 0
    #: Every stream's scan findings and invariant findings.
    findings: FindingsDigest = field(default_factory=FindingsDigest)

    def add(self, sc: StreamCheck) -> None:
        self.entries += sc.facts.entries
        self.findings.extend(sc.report.findings).extend(sc.findings)

    def absorb(self, later: CheckTally) -> None:
        """Add the tally of streams that all sort after this one's (a second process's)."""
        self.entries += later.entries
        self.findings = self.findings.merged(later.findings)


@dataclass
class CheckReport:
    scan: ScanReport
    #: Every stream, when the check kept them (check_database); empty when they were streamed.
    streams: list[StreamCheck] = field(default_factory=list)
    #: With --verify-checksums: records read per column family (every data block checked).
    verified_records: dict[str, int] | None = None
    tally: CheckTally = field(default_factory=CheckTally)

    def all_findings(self) -> list[Finding]:
        """Every finding, when the streams were kept (:meth:`digest` works either way)."""
        out = list(self.scan.findings)
        for s in self.streams:
            out.extend(s.report.findings)
            out.extend(s.findings)
        return out

    def digest(self) -> FindingsDigest:
        return FindingsDigest(self.tally.findings.keep).extend(self.scan.findings).merged(self.tally.findings)

    def invariant_findings(self) -> list[Finding]:
        return [f for s in self.streams for f in s.findings]

    def repairable(self) -> list[Finding]:
        return [f for f in self.invariant_findings() if f.code in REPAIRABLE]

    def summary(self) -> dict[str, int]:
        out = self.scan.summary()
        found = self.digest()
        out.update(
            entries=self.tally.entries,
            stale_bytes=self.scan.stale.bytes,
            orphan_bytes=self.scan.orphans.bytes,
            errors=found.severities["error"],
            warnings=found.severities["warning"],
            infos=found.severities["info"],
        )
        return out


def find_deleted_pel_ids(
    db: Database, rep: StreamReport, dropped: dict[tuple[str, bytes], list[StreamId]] | None = None
) -> dict[tuple[str, bytes], list[StreamId]]:
    """Point-read the entry of every PEL record kept; with those ``dropped`` found during the walk."""
    prefix = internal_prefix(rep.namespace, rep.key, rep.version, rep.slot)
    out: dict[tuple[str, bytes], list[StreamId]] = {k: list(v) for k, v in (dropped or {}).items()}
    present: dict[StreamId, bool | None] = {}  # across groups: they often name the same entries
    for (layout, name), g in sorted(rep.groups.items()):
        asked = list(dict.fromkeys(p.entry_id for p in g.pel if p.entry_id not in present))
        found = entries_present(db, prefix, [i.encode() for i in asked])
        present.update(zip(asked, found, strict=True))
        for p in g.pel:
            if present[p.entry_id] is False:
                out.setdefault((layout, name), []).append(p.entry_id)
    return {k: sorted(v) for k, v in sorted(out.items())}


def entries_present(db: Database, prefix: bytes, raws: list[bytes]) -> list[bool | None]:
    """Whether each entry (its id's 16 bytes after the stream's key prefix) exists, None
    where its read failed (salvage mode: no answer, and never "deleted"), PROBE_BATCH ids
    at a time."""
    out: list[bool | None] = []
    for batch in chunked(raws, PROBE_BATCH):
        out.extend(_present(db, [prefix + r for r in batch]))
    return out


#: A batch of at least this many ids in key order is first answered by reading its range.
RANGE_MIN = 16
#: Keys a range read may take per id asked (the rest of the batch then goes to MultiGet).
RANGE_KEYS = 4


def _present(db: Database, keys: list[bytes]) -> list[bool | None]:
    """Whether each key exists.  A PEL names pending entries, mostly a dense run of recent
    ones: reading the keys between its first and last id (up to RANGE_KEYS per id) answers
    it for a fraction of one point read each; what that read did not reach, and every
    batch out of key order, is looked up in one MultiGet."""
    answers: list[bool | None] = [None] * len(keys)
    asked: list[int] | range = range(len(keys))
    if len(keys) >= RANGE_MIN and all(a < b for a, b in pairwise(keys)):
        limit = RANGE_KEYS * len(keys)
        seen = db.keys_between("stream", keys[0], keys[-1] + b"\x00", limit, step=len(keys) + 16)
        if seen is not None:  # answered: every key up to the last one read (all when read whole)
            reached = bisect_right(keys, seen[-1]) if len(seen) >= limit else len(keys)
            have = set(seen)
            answers[:reached] = [k in have for k in keys[:reached]]
            asked = range(reached, len(keys))
    if asked:
        failed: list[int] = []
        values = db.get_many("stream", [keys[i] for i in asked], failed)
        for i, v in zip(asked, values, strict=True):
            answers[i] = v is not None
        for j in failed:
            answers[asked[j]] = None
    return answers


def _analyzer(db: Database, rep: StreamReport) -> CheckAnalyzer:
    """A stream's analyzer: PEL records counted and looked up, not kept (a PEL of any size is cheap)."""
    prefix = internal_prefix(rep.namespace, rep.key, rep.version, rep.slot)

    def probe(raws: list[bytes]) -> list[bool | None]:
        return entries_present(db, prefix, raws)

    a = CheckAnalyzer(rep, None if rep.expired else probe)
    a.count_owners = True
    return a


def check_database(db: Database, **options: Any) -> CheckReport:
    """:func:`check_streams` keeping every stream (metadata key order)."""
    kept: list[StreamCheck] = []
    report = check_streams(db, kept.append, **options)
    report.streams = kept
    report.scan.streams = [sc.report for sc in kept]
    return report


def check_streams(
    db: Database,
    on_check: Callable[[StreamCheck], None] | None = None,
    *,
    cluster: bool | None = None,
    now_ms: int | None = None,
    progress: Progress | None = None,
    target: Target = "2.10",
    keep_findings: int | None = None,
    on_begin: Callable[[ScanReport], None] | None = None,
    keep_pel: bool = False,
    scope: Scope = EVERYTHING,
    sink: CheckSink | None = None,
    workers: int | None = None,
) -> CheckReport:
    """Deep scan plus invariants of every live stream, each handed to ``on_check`` (or
    ``sink``: then many streams are checked in two processes) once checked.

    Findings as they stand for ``target``; the digest keeps the first ``keep_findings``.
    PEL records are counted and their entries looked up during the walk, not kept
    (``keep_pel`` keeps them, for tests that compare both ways).
    """
    tally = CheckTally(findings=FindingsDigest(keep_findings))
    scan = scan_streams(
        db,
        cluster=cluster,
        deep=True,
        now_ms=now_ms,
        progress=progress,
        keep_pel=keep_pel,
        scope=scope,
        target=target,
        keep_findings=keep_findings,
        on_begin=on_begin,
        stage=lambda base: CheckStage(base, tally, sink, on_check),
        workers=workers,
    )
    return CheckReport(scan, tally=tally)


class CheckSink(Protocol):
    """What a check hands its checked streams to, in key order (see StreamSink)."""

    def add(self, sc: StreamCheck) -> None: ...

    def fork(self, workdir: str) -> CheckSink | None: ...

    def join(self, later: CheckSink) -> None: ...


class CheckStage:
    """Check's work on each walked stream: scan's (``base``), then the entry lookups of its
    PEL records and its invariants, counted in ``tally``, to ``sink`` (or ``then``)."""

    def __init__(
        self, base: ScanStage, tally: CheckTally, sink: CheckSink | None, then: Callable[[StreamCheck], None] | None
    ) -> None:
        self.base, self.tally, self.sink, self.then = base, tally, sink, then

    def analyzer(self, db: Database, report: StreamReport) -> StreamAnalyzer:
        return _analyzer(db, report)

    def done(self, db: Database, a: StreamAnalyzer) -> None:
        assert isinstance(a, CheckAnalyzer)
        rep = self.base.finish(a)
        facts = a.facts
        if not rep.expired:
            facts.deleted_pel_ids = find_deleted_pel_ids(db, rep, a.dropped_deleted)
        sc = StreamCheck(rep, facts, invariant_findings(rep, facts))
        self.tally.add(sc)
        if self.sink is not None:
            self.sink.add(sc)
        elif self.then is not None:
            self.then(sc)

    def fork(self, workdir: str) -> CheckStage | None:
        forked = None if self.sink is None else self.sink.fork(workdir)
        if forked is None:
            return None
        return CheckStage(
            self.base.twin(None), CheckTally(findings=FindingsDigest(self.tally.findings.keep)), forked, None
        )

    def join(self, later: Stage) -> None:
        assert isinstance(later, CheckStage) and self.sink is not None and later.sink is not None
        self.sink.join(later.sink)
        self.base.tally.absorb(later.base.tally)
        self.tally.absorb(later.tally)


def read_every_record(db: Database) -> dict[str, int]:
    """Read every record of every column family: RocksDB checks each data block's checksum.

    Together with the checks every open makes (the WAL, the MANIFEST's files, each table's
    footer and index), a clean pass means every file the database is made of reads whole.
    """
    return {cf: sum(len(chunk) for chunk in db.chunks(cf)) for cf in db.column_families}
