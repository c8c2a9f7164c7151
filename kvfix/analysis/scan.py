"""scan: every live stream's records classified, one stream at a time.

:func:`scan_streams` hands each finished stream to a callback and keeps none of them, so
a report over a million streams costs what its renderer keeps (a bounded top-N, one
stream's JSON); :func:`scan_database` is the library's form that keeps them all.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kvfix.analysis.findings import finding
from kvfix.analysis.keyspace import Keyspace, LiveStream, choose_cluster, decode_live, survey_keyspace
from kvfix.analysis.keyspace import now_ms as _now_ms
from kvfix.analysis.model import GarbageCount, ScanReport, StreamReport
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.analysis.targets import Target, for_target
from kvfix.analysis.walk import NAME_LIMIT, BadKey, BadMetadata, Garbage, Half, Visit, paused_gc, walk_keyspace
from kvfix.codec.ints import U64_MAX, u64
from kvfix.codec.keys import decode_metadata_key, internal_prefix
from kvfix.progress import Progress, Ticker
from kvfix.store.database import Database
from kvfix.textsafe import counted, show, show_path

#: Called with each stream's analyzer once its records are all read (the report is finished).
OnStream = Callable[[StreamAnalyzer], None]


def scan_database(db: Database, **options: Any) -> ScanReport:
    """:func:`scan_streams` keeping every stream in ``report.streams`` (metadata key order)."""
    kept: list[StreamReport] = []
    report = scan_streams(db, lambda a: kept.append(a.report), **options)
    report.streams = kept
    return report


def scan_streams(
    db: Database,
    on_stream: OnStream,
    *,
    cluster: bool | None = None,
    deep: bool = False,
    now_ms: int | None = None,
    progress: Progress | None = None,
    analyzer: Callable[[StreamReport], StreamAnalyzer] = StreamAnalyzer,
    workers: int | None = None,
    target: Target = "2.10",
    on_begin: Callable[[ScanReport], None] | None = None,
    keep_findings: int | None = None,
    keep_pel: bool = True,
    scope: Scope = EVERYTHING,
) -> ScanReport:
    """Scan every stream; each goes to ``on_stream`` as it is finished, and to the report's tally.

    ``analyzer`` builds the per-stream analyzer (check passes a subclass); ``on_begin``
    gets the report once the survey of the metadata is done (a JSON writer starts its
    document there); the report's digest keeps the first ``keep_findings`` findings of
    the streams (None: all); without ``keep_pel`` PEL records are counted and summed up
    but not kept (no per-record detail: a PEL of any size costs nothing); ``scope`` limits
    the streams (:mod:`kvfix.analysis.scope`).  A deep scan of
    a large database runs in two processes (see :func:`_split_point`).
    """
    progress = progress or Progress()
    now = _now_ms() if now_ms is None else now_ms
    use_cluster, cluster_findings = choose_cluster(db, cluster)
    ks = survey_keyspace(db, use_cluster)
    report = ScanReport(show_path(db.path), db.column_families, use_cluster, sorted(ks.namespaces), deep)
    report.findings.extend(cluster_findings + ks.findings)
    report.tally.findings.keep = keep_findings
    report.scope = scope
    if on_begin is not None:
        on_begin(report)
    tick = Ticker(progress, ks.streams)

    def done(a: StreamAnalyzer) -> None:
        s = a.finish()
        if target != "2.10":
            s.findings[:] = for_target(s.findings, target)
        report.tally.add(s)
        on_stream(a)

    split = None if db.live or not scope.everything else _split_point(ks, deep, analyzer, workers)
    with paused_gc():
        if split is None:
            result = walk_range(db, ks, deep, now, done, analyzer, tick=tick, keep_pel=keep_pel, scope=scope)
        else:
            result = _walk_in_two(db, ks, deep, now, split, done, tick, keep_pel)
    _garbage_findings(report, result)
    report.findings[:] = for_target(report.findings, target)
    progress.update(streams=ks.streams, records=result.records, total_streams=ks.streams)
    return report


def _garbage_findings(report: ScanReport, result: WalkResult) -> None:
    report.stale, report.orphans = result.stale, result.orphans
    for g in result.garbage:
        key = g.prefix.user_key
        if g.owner == "stale":
            message = f"{counted(g.records, 'stream record')} of dead versions of {show(key)}"
            report.findings.append(finding("STALE_RECORDS", message, g.prefix.namespace, key, records=g.records))
        else:
            message = f"{counted(g.records, 'stream record')} of {show(key)}, which has no metadata"
            report.findings.append(finding("ORPHAN_RECORD", message, g.prefix.namespace, key, records=g.records))
    for bad in result.bad_metadata:
        report.findings.append(
            finding("UNDECODABLE_METADATA", f"metadata value: {bad.error}", bad.key.namespace, bad.key.user_key)
        )
    if result.bad_keys:
        report.findings.append(
            finding(
                "UNDECODABLE_RECORD",
                f"{result.bad_keys} stream column family keys are not internal keys under this cluster mode",
            )
        )


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
            current = analyzer(_new_report(item.live, now))
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
        tick(streams + 1, res.records)
    return res


def _no_tick(streams: int, records: int) -> None:
    return None


#: A deep scan of fewer entries than this stays in one process (a second one costs ~0.1 s).
PARALLEL_MIN_ENTRIES = 200_000
#: Rough cost of a deep walk per entry and of starting the second process, to balance the halves.
_ENTRY_SECONDS = 0.6e-6
_WORKER_START_SECONDS = 0.1


def _split_point(ks: Keyspace, deep: bool, analyzer: object, workers: int | None) -> Half | None:
    """Where a deep scan hands the rest of the keyspace to a second process, or None.

    Only for deep scans with the plain StreamAnalyzer (a subclass's state is not merged),
    of at most SIZES_KEPT streams (the second process's streams come back whole), on a
    machine with 2+ CPUs (KVFIX_WORKERS=1 or workers=1 turns it off; workers=2 forces it).
    The point is chosen from the streams' sizes so both processes finish at about the same
    time; any point gives the same result, only balance depends on it.
    """
    if not deep or analyzer is not StreamAnalyzer or not ks.few:
        return None
    if workers is None:
        if os.environ.get("KVFIX_WORKERS") == "1" or (os.cpu_count() or 1) < 2:
            return None
    elif workers < 2:
        return None
    streams = [(mkey, decode_live(decode_metadata_key(mkey, ks.cluster), value)) for mkey, value in ks.few]
    weights = [max(live.metadata.size or 0, 0) if live else 0 for _, live in streams]
    total = sum(weights)
    if workers is None and total < PARALLEL_MIN_ENTRIES:
        return None
    share = min(0.9, 0.5 + _WORKER_START_SECONDS / (2 * _ENTRY_SECONDS * max(total, 1)))
    target = share * total
    acc = 0
    for i, ((mkey, live), w) in enumerate(zip(streams, weights, strict=True)):
        if acc + w >= target and w > 0:
            inside = _inside_split(live, (target - acc) / w)
            if inside is not None:
                return Half(mkey, True, inside)
            return Half(mkey if i > 0 else streams[1][0], True) if len(streams) > 1 else None
        acc += w
    return Half(streams[-1][0], True) if len(streams) > 1 else None


def _inside_split(live: LiveStream | None, fraction: float) -> bytes | None:
    """A key among one stream's entries, ``fraction`` of the way from its first to last id."""
    if live is None:
        return None
    tail = live.metadata.stream
    if tail is None or live.metadata.version is None:
        return None
    lo = max(tail.first_entry_id.ms, NAME_LIMIT + 1)
    hi = min(tail.last_entry_id.ms, U64_MAX - 1)
    if hi - lo < 2:
        return None
    mid = lo + int((hi - lo) * min(max(fraction, 0.0), 1.0))
    key = live.key
    return internal_prefix(key.namespace, key.user_key, live.metadata.version, key.slot) + u64(mid) + u64(0)


def _walk_in_two(
    db: Database,
    ks: Keyspace,
    deep: bool,
    now: int,
    half: Half,
    done: OnStream,
    tick: Callable[[int, int], None],
    keep_pel: bool = True,
) -> WalkResult:
    """Walk the first half here while a second process walks the rest; streams in key order.

    The second process is a fresh interpreter (``python -m kvfix.analysis.scanworker``; no
    fork of a process with RocksDB threads) that opens the database read-only on its own
    and sends back its streams' analyzers (at most SIZES_KEPT, records raw).  If it fails
    for any reason, this process walks its half too: the result is the same.
    """
    second = Half(half.at, False, half.inside)
    with tempfile.TemporaryDirectory(prefix="kvfix-scan-") as tmp:
        job, out = Path(tmp) / "job.pickle", Path(tmp) / "result.pickle"
        with open(job, "wb") as f:
            pickle.dump({"path": str(db.path), "deep": deep, "now": now, "keyspace": ks, "half": second}, f)
        proc = _start_worker(job, out)
        split: list[StreamAnalyzer] = []  # the stream both halves read, when split inside one
        try:
            first = _first_half(done, ks, half, split)
            result = walk_range(db, ks, deep, now, first, half=half, tick=tick, keep_pel=keep_pel)
            later = _worker_result(proc, out)
            if later is None:
                later = WalkResult()
                rest = walk_range(db, ks, deep, now, later.analyzers.append, half=second, tick=tick, keep_pel=keep_pel)
                later.absorb(rest)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for i, a in enumerate(later.analyzers):
        a.keep_pel = keep_pel
        a.replay()
        if i == 0 and split:
            split[0].absorb(a)
            a = split[0]
        done(a)
    result.absorb(later)
    return result


def _first_half(done: OnStream, ks: Keyspace, half: Half, split: list[StreamAnalyzer]) -> OnStream:
    """``done`` for the first half's streams, but the one split in two waits for its rest."""
    at = decode_metadata_key(half.at, ks.cluster)

    def first(a: StreamAnalyzer) -> None:
        rep = a.report
        if half.inside is not None and (rep.namespace, rep.key, rep.slot) == (at.namespace, at.user_key, at.slot):
            split.append(a)
        else:
            done(a)

    return first


def _start_worker(job: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    debug = bool(os.environ.get("KVFIX_DEBUG"))
    return subprocess.Popen(
        [sys.executable, "-m", "kvfix.analysis.scanworker", str(job), str(out)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=None if debug else subprocess.DEVNULL,
        env=env,
    )


def _worker_result(proc: subprocess.Popen[bytes], out: Path) -> WalkResult | None:
    if proc.wait() != 0:
        return None
    try:
        with open(out, "rb") as f:
            later = pickle.load(f)  # our own child's output
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    return later if isinstance(later, WalkResult) else None


def _new_report(live: LiveStream, now: int) -> StreamReport:
    meta = live.metadata
    return StreamReport(
        live.key.namespace, live.key.user_key, live.key.slot, meta.version or 0, meta, expired=meta.is_expired(now)
    )
