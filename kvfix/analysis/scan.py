"""scan: every live stream's records classified, one stream at a time.

:func:`scan_streams` hands each finished stream to a callback and keeps none of them, so
a report over a million streams costs what its renderer keeps (a bounded top-N, one
stream's JSON); :func:`scan_database` is the library's form that keeps them all.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from kvfix.analysis.findings import FindingsDigest, finding
from kvfix.analysis.keyspace import Keyspace, LiveStream, choose_cluster, decode_live, surveyed
from kvfix.analysis.keyspace import now_ms as _now_ms
from kvfix.analysis.model import ScanReport, ScanTally, StreamReport
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.analysis.sharded import (
    Stage,
    StreamSink,
    shard_point,
    start_worker,
    usable_cpus,
    walk_part,
    walk_sharded,
    worker_output,
)
from kvfix.analysis.stream_walk import OnStream, WalkResult, walk_range
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.analysis.targets import Target, for_target
from kvfix.analysis.walk import NAME_LIMIT, Half, paused_gc
from kvfix.codec.ints import U64_MAX, u64
from kvfix.codec.keys import decode_metadata_key, internal_prefix
from kvfix.progress import Progress, Ticker
from kvfix.store.database import Database
from kvfix.textsafe import counted, show, show_path

__all__ = ["OnStream", "WalkResult", "scan_database", "scan_streams", "walk_range"]


def scan_database(db: Database, **options: Any) -> ScanReport:
    """:func:`scan_streams` keeping every stream in ``report.streams`` (metadata key order)."""
    kept: list[StreamReport] = []
    report = scan_streams(db, lambda a: kept.append(a.report), **options)
    report.streams = kept
    return report


def scan_streams(
    db: Database,
    on_stream: OnStream | None = None,
    *,
    cluster: bool | None = None,
    deep: bool = False,
    now_ms: int | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    target: Target = "2.10",
    on_begin: Callable[[ScanReport], None] | None = None,
    keep_findings: int | None = None,
    keep_pel: bool = True,
    scope: Scope = EVERYTHING,
    sink: StreamSink | None = None,
    stage: Callable[[ScanStage], Stage] | None = None,
) -> ScanReport:
    """Scan every stream; each goes to ``on_stream`` (or ``sink``) as it is finished, and to
    the report's tally.

    ``on_begin`` gets the report once the survey of the metadata is done (a JSON writer
    starts its document there); the report's digest keeps the first ``keep_findings``
    findings of the streams (None: all); without ``keep_pel`` PEL records are counted and
    summed up but not kept (no per-record detail: a PEL of any size costs nothing);
    ``scope`` limits the streams (:mod:`kvfix.analysis.scope`); ``stage`` wraps the scan's
    own stage (check's analyzer and invariants).  A deep scan of a large database runs in
    two processes (see :func:`_split_point`), and so does a scan of many streams into a
    ``sink`` (:mod:`kvfix.analysis.sharded`).
    """
    progress = progress or Progress()
    now = _now_ms() if now_ms is None else now_ms
    use_cluster, cluster_findings = choose_cluster(db, cluster)
    ks = surveyed(db, use_cluster, progress)
    report = ScanReport(show_path(db.path), db.column_families, use_cluster, sorted(ks.namespaces), deep)
    report.findings.extend(cluster_findings + ks.findings)
    report.tally.findings.keep = keep_findings
    report.scope = scope
    if on_begin is not None:
        on_begin(report)
    base = ScanStage(report.tally, target, sink, on_stream)
    job = {"keyspace": ks, "deep": deep, "now": now, "keep_pel": keep_pel}
    with paused_gc():
        result = _walk(db, job, base if stage is None else stage(base), Ticker(progress, ks.streams), scope, workers)
    _garbage_findings(report, result)
    report.findings[:] = for_target(report.findings, target)
    progress.update(streams=ks.streams, records=result.records, total_streams=ks.streams)
    return report


class ScanStage:
    """A scan's own work on each walked stream: its findings as they stand for ``target``,
    counted in ``tally``, then the stream to ``sink`` (or its analyzer to ``then``)."""

    def __init__(self, tally: ScanTally, target: Target, sink: StreamSink | None, then: OnStream | None) -> None:
        self.tally, self.target, self.sink, self.then = tally, target, sink, then

    def analyzer(self, db: Database, report: StreamReport) -> StreamAnalyzer:
        return StreamAnalyzer(report)

    def finish(self, a: StreamAnalyzer) -> StreamReport:
        s = a.finish()
        if self.target != "2.10":
            s.findings[:] = for_target(s.findings, self.target)
        self.tally.add(s)
        return s

    def done(self, db: Database, a: StreamAnalyzer) -> None:
        s = self.finish(a)
        if self.sink is not None:
            self.sink.add(s)
        elif self.then is not None:
            self.then(a)

    def twin(self, sink: StreamSink | None) -> ScanStage:
        """An empty stage like this one, finishing into ``sink`` (a second process's)."""
        return ScanStage(ScanTally(findings=FindingsDigest(self.tally.findings.keep)), self.target, sink, None)

    def fork(self, workdir: str) -> ScanStage | None:
        forked = None if self.sink is None else self.sink.fork(workdir)
        return None if forked is None else self.twin(forked)

    def join(self, later: Stage) -> None:
        assert isinstance(later, ScanStage) and self.sink is not None and later.sink is not None
        self.sink.join(later.sink)
        self.tally.absorb(later.tally)


def _walk(
    db: Database, job: dict[str, Any], stage: Stage, tick: Ticker, scope: Scope, workers: int | None
) -> WalkResult:
    """One process's walk, or two: a deep one split by entries, or many streams by count."""
    ks, deep, now, keep_pel = job["keyspace"], job["deep"], job["now"], job["keep_pel"]
    whole = not db.live and scope.everything and "stream" in db.column_families  # split only what has records
    split = _split_point(ks, deep, type(stage) is ScanStage, workers) if whole else None
    if split is not None:
        return _walk_in_two(db, ks, deep, now, split, partial(stage.done, db), tick, keep_pel)
    shard = shard_point(ks, workers) if whole else None
    if shard is not None:
        result = walk_sharded(db, {**job, "half": shard}, stage, tick, tick.progress is not None)
        if result is not None:
            return result
    return walk_part(db, job, stage, None, tick, scope)


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


#: A deep scan of fewer entries than this stays in one process (a second one costs ~0.1 s).
PARALLEL_MIN_ENTRIES = 200_000
#: Rough cost of a deep walk per entry and of starting the second process, to balance the halves.
_ENTRY_SECONDS = 0.6e-6
_WORKER_START_SECONDS = 0.1


def _split_point(ks: Keyspace, deep: bool, plain: bool, workers: int | None) -> Half | None:
    """Where a deep scan hands the rest of the keyspace to a second process, or None.

    Only for deep scans with the plain StreamAnalyzer (``plain``: a subclass's state is not merged),
    of at most SIZES_KEPT streams (the second process's streams come back whole), on a
    machine with 2+ CPUs (KVFIX_WORKERS=1 or workers=1 turns it off; workers=2 forces it).
    The point is chosen from the streams' sizes so both processes finish at about the same
    time; any point gives the same result, only balance depends on it.
    """
    if not deep or not plain or not ks.few:
        return None
    if workers is None:
        if os.environ.get("KVFIX_WORKERS") == "1" or usable_cpus() < 2:
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
        proc = start_worker(job, out)
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


def _worker_result(proc: subprocess.Popen[bytes], out: Path) -> WalkResult | None:
    later = worker_output(proc.wait(), out)
    return later if isinstance(later, WalkResult) else None
