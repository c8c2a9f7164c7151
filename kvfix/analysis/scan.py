"""scan: join the metadata and stream column families and report every stream."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kvfix.analysis.findings import finding
from kvfix.analysis.keyspace import Keyspace, choose_cluster, load_keyspace, owner_of
from kvfix.analysis.keyspace import now_ms as _now_ms
from kvfix.analysis.model import GarbageCount, ScanReport, StreamReport
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.analysis.walk import NAME_LIMIT, Prefix, paused_gc, walk_stream_chunks
from kvfix.codec.ints import U64_MAX, u64
from kvfix.codec.keys import internal_prefix, key_prefix
from kvfix.progress import Progress, Ticker
from kvfix.store.database import Database
from kvfix.textsafe import show, show_path


def scan_database(
    db: Database,
    *,
    cluster: bool | None = None,
    deep: bool = False,
    now_ms: int | None = None,
    progress: Progress | None = None,
    analyzer: Callable[[StreamReport], StreamAnalyzer] = StreamAnalyzer,
    workers: int | None = None,
) -> ScanReport:
    """Scan every stream; ``analyzer`` builds the per-stream analyzer (check passes a subclass).

    A deep scan of a large database runs in two processes (see :func:`_split_point`).
    """
    progress = progress or Progress()
    now = _now_ms() if now_ms is None else now_ms
    use_cluster, cluster_findings = choose_cluster(db, cluster)
    ks = load_keyspace(db, use_cluster)
    report = ScanReport(show_path(db.path), db.column_families, use_cluster, sorted(ks.namespaces), deep)
    report.findings.extend(cluster_findings + ks.findings)

    total = len(ks.streams)
    tick = Ticker(progress, total)
    split = None if db.live else _split_point(ks, deep, analyzer, workers)  # one view: one process
    with paused_gc():
        if split is None:
            result = walk_range(db, ks, use_cluster, deep, now, analyzer, tick=tick)
        else:
            result = _walk_in_two(db, ks, use_cluster, deep, now, split, tick)
    analyzers, stale, orphan = result.analyzers, result.stale, result.orphan
    records, bad_keys = result.records, result.bad_keys
    for mine, theirs in ((report.stale, result.stale_garbage), (report.orphans, result.orphan_garbage)):
        mine.records += theirs.records
        mine.bytes += theirs.bytes

    for ident, live in sorted(ks.streams.items()):
        done = analyzers.get(ident) or analyzer(_new_report(live, now))
        done.report.records["stale"] += stale.pop(ident, 0)
        report.streams.append(done.finish())
    progress.update(streams=total, records=records, total_streams=total)
    for (ns, key), count in sorted(stale.items()):
        message = f"{count} stream records of dead versions of {show(key)}"
        report.findings.append(finding("STALE_RECORDS", message, ns, key, records=count))
    for (ns, key), count in sorted(orphan.items()):
        report.findings.append(
            finding(
                "ORPHAN_RECORD", f"{count} stream records of {show(key)}, which has no metadata", ns, key, records=count
            )
        )
    if bad_keys:
        report.findings.append(
            finding(
                "UNDECODABLE_RECORD",
                f"{bad_keys} stream column family keys are not internal keys under this cluster mode",
            )
        )
    return report


@dataclass
class WalkResult:
    """What a walk over (a key range of) the stream column family found."""

    analyzers: dict[tuple[bytes, bytes], StreamAnalyzer] = field(default_factory=dict)
    stale: Counter[tuple[bytes, bytes]] = field(default_factory=Counter)
    orphan: Counter[tuple[bytes, bytes]] = field(default_factory=Counter)
    stale_garbage: GarbageCount = field(default_factory=GarbageCount)
    orphan_garbage: GarbageCount = field(default_factory=GarbageCount)
    bad_keys: int = 0
    records: int = 0
    #: Peak RSS (VmHWM, KiB) of the second process that produced this result, for benchmarks.
    worker_peak_kib: int = 0

    def absorb(self, later: WalkResult) -> None:
        """Add the result of the key range right after this one."""
        for ident, a in later.analyzers.items():
            mine = self.analyzers.get(ident)
            if mine is None:
                a.replay()
                self.analyzers[ident] = a
            else:
                mine.absorb(a)
        self.stale.update(later.stale)
        self.orphan.update(later.orphan)
        for mine_g, theirs in ((self.stale_garbage, later.stale_garbage), (self.orphan_garbage, later.orphan_garbage)):
            mine_g.records += theirs.records
            mine_g.bytes += theirs.bytes
        self.bad_keys += later.bad_keys
        self.records += later.records


def walk_range(
    db: Database,
    ks: Keyspace,
    cluster: bool,
    deep: bool,
    now: int,
    analyzer: Callable[[StreamReport], StreamAnalyzer] = StreamAnalyzer,
    start: bytes | None = None,
    stop: bytes | None = None,
    tick: Callable[[int, int], None] | None = None,
) -> WalkResult:
    """Walk the stream column family's keys in [start, stop), feeding each live stream's analyzer."""
    res = WalkResult()
    tick = tick or _no_tick
    target: StreamAnalyzer | Counter[tuple[bytes, bytes]] | None = None
    ident = (b"", b"")
    n = 0
    for item in walk_stream_chunks(db, cluster, deep, start, stop):
        if isinstance(item, list):
            res.records += len(item)
            if isinstance(target, StreamAnalyzer):
                target.add_chunk(item, n)
            elif target is not None:
                garbage = res.stale_garbage if target is res.stale else res.orphan_garbage
                target[ident] += len(item)
                garbage.records += len(item)
                garbage.bytes += sum(len(k) - n + len(v) for k, v in item)
            tick(len(res.analyzers), res.records)
            continue
        if isinstance(item, Prefix):
            ident = (item.namespace, item.user_key)
            n = len(item.raw)
            target = _target_for(db, ks, item, res.analyzers, res.stale, res.orphan, now, analyzer)
            if not deep and target is not None and not isinstance(target, StreamAnalyzer):
                # The fast walk skips entries, and a dead incarnation is mostly entries: count
                # its records here so STALE_RECORDS/ORPHAN_RECORD match --deep exactly.
                count, size = _count_prefix(db, item.raw)
                garbage = res.stale_garbage if target is res.stale else res.orphan_garbage
                target[ident] += count
                garbage.records += count
                garbage.bytes += size
                target = None  # the walk's chunks of this prefix are already counted
            tick(len(res.analyzers), res.records)
            continue
        res.records += 1
        res.bad_keys += 1
        res.orphan_garbage.records += 1
        res.orphan_garbage.bytes += len(item.key) + len(item.value)

    return res


def _no_tick(streams: int, records: int) -> None:
    return None


#: A deep scan of fewer entries than this stays in one process (a second one costs ~0.1 s).
PARALLEL_MIN_ENTRIES = 200_000
#: Rough cost of a deep walk per entry and of starting the second process, to balance the halves.
_ENTRY_SECONDS = 0.6e-6
_WORKER_START_SECONDS = 0.1


def _split_point(ks: Keyspace, deep: bool, analyzer, workers: int | None) -> bytes | None:
    """Where a deep scan hands the rest of the column family to a second process, or None.

    Only for deep scans with the plain StreamAnalyzer (a subclass's state is not merged),
    on a machine with 2+ CPUs (KVFIX_WORKERS=1 or workers=1 turns it off; workers=2 forces
    it).  The point is chosen from the live streams' sizes so both processes finish at
    about the same time; any point gives the same result, only balance depends on it.
    """
    if not deep or analyzer is not StreamAnalyzer or not ks.streams:
        return None
    if workers is None:
        if os.environ.get("KVFIX_WORKERS") == "1" or (os.cpu_count() or 1) < 2:
            return None
    elif workers < 2:
        return None
    streams = sorted((key_prefix(k.key.namespace, k.key.user_key, k.key.slot), k) for k in ks.streams.values())
    weights = [max(live.metadata.size or 0, 0) for _, live in streams]
    total = sum(weights)
    if workers is None and total < PARALLEL_MIN_ENTRIES:
        return None
    share = min(0.9, 0.5 + _WORKER_START_SECONDS / (2 * _ENTRY_SECONDS * max(total, 1)))
    target = share * total
    acc = 0
    for i, ((head, live), w) in enumerate(zip(streams, weights, strict=True)):
        if acc + w >= target and w > 0:
            inside = _inside_split(live, (target - acc) / w)
            if inside is not None:
                return inside
            return head if i > 0 else (streams[1][0] if len(streams) > 1 else None)
        acc += w
    return streams[-1][0] if len(streams) > 1 else None


def _inside_split(live, fraction: float) -> bytes | None:
    """A key among one stream's entries, ``fraction`` of the way from its first to last id."""
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


def _walk_in_two(db: Database, ks: Keyspace, cluster: bool, deep: bool, now: int, split: bytes, tick) -> WalkResult:
    """Walk [start, split) here while a second process walks [split, end); merge in key order.

    The second process is a fresh interpreter (``python -m kvfix.analysis.scanworker``; no
    fork of a process with RocksDB threads) that opens the database read-only on its own.
    If it fails for any reason, this process walks its range too: the result is the same.
    """
    with tempfile.TemporaryDirectory(prefix="kvfix-scan-") as tmp:
        job, out = Path(tmp) / "job.pickle", Path(tmp) / "result.pickle"
        with open(job, "wb") as f:
            pickle.dump(
                {
                    "path": str(db.path),
                    "cluster": cluster,
                    "deep": deep,
                    "now": now,
                    "streams": ks.streams,
                    "start": split,
                },
                f,
            )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
        }
        debug = bool(os.environ.get("KVFIX_DEBUG"))
        proc = subprocess.Popen(
            [sys.executable, "-m", "kvfix.analysis.scanworker", str(job), str(out)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=None if debug else subprocess.DEVNULL,
            env=env,
        )
        try:
            result = walk_range(db, ks, cluster, deep, now, stop=split, tick=tick)
            later = None
            if proc.wait() == 0:
                try:
                    with open(out, "rb") as f:
                        later = pickle.load(f)  # our own child's output
                except (OSError, pickle.UnpicklingError, EOFError):
                    later = None
            if not isinstance(later, WalkResult):
                later = walk_range(db, ks, cluster, deep, now, start=split, tick=tick)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    result.absorb(later)
    return result


def _count_prefix(db: Database, raw: bytes) -> tuple[int, int]:
    """Records under one key incarnation's prefix, and their subkey + value bytes."""
    it = db.iterator("stream")
    count = size = 0
    if it is None:
        return count, size
    it.seek(raw)
    n = len(raw)
    while it.valid():
        key = it.key()
        if not key.startswith(raw):
            break
        count += 1
        size += len(key) - n + len(it.value())
        it.next()
    return count, size


def _new_report(live, now: int) -> StreamReport:
    meta = live.metadata
    return StreamReport(
        live.key.namespace, live.key.user_key, live.key.slot, meta.version or 0, meta, expired=meta.is_expired(now)
    )


def _target_for(db: Database, ks, item: Prefix, analyzers, stale, orphan, now: int, analyzer=StreamAnalyzer):
    owner = owner_of(db, ks.streams, item)
    if owner == "stale":
        return stale
    if owner == "orphan":
        return orphan
    ident = (item.namespace, item.user_key)
    if ident not in analyzers:
        analyzers[ident] = analyzer(_new_report(owner, now))
    return analyzers[ident]
