"""scan: join the metadata and stream column families and report every stream."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from kvfix.analysis.findings import finding
from kvfix.analysis.keyspace import choose_cluster, load_keyspace
from kvfix.analysis.keyspace import now_ms as _now_ms
from kvfix.analysis.model import ScanReport, StreamReport
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.analysis.walk import Prefix, walk_stream_chunks
from kvfix.codec.keys import MetadataKey
from kvfix.progress import Progress, Ticker
from kvfix.storage import Database
from kvfix.textsafe import show


def scan_database(
    db: Database,
    *,
    cluster: bool | None = None,
    deep: bool = False,
    now_ms: int | None = None,
    progress: Progress | None = None,
    analyzer: Callable[[StreamReport], StreamAnalyzer] = StreamAnalyzer,
) -> ScanReport:
    """Scan every stream; ``analyzer`` builds the per-stream analyzer (check passes a subclass)."""
    progress = progress or Progress()
    now = _now_ms() if now_ms is None else now_ms
    use_cluster, cluster_findings = choose_cluster(db, cluster)
    ks = load_keyspace(db, use_cluster)
    report = ScanReport(str(db.path), db.column_families, use_cluster, sorted(ks.namespaces), deep)
    report.findings.extend(cluster_findings + ks.findings)

    analyzers: dict[tuple[bytes, bytes], StreamAnalyzer] = {}
    stale: Counter[tuple[bytes, bytes]] = Counter()
    orphan: Counter[tuple[bytes, bytes]] = Counter()
    bad_keys = 0
    target: StreamAnalyzer | Counter[tuple[bytes, bytes]] | None = None
    ident = (b"", b"")
    records = 0
    n = 0
    total = len(ks.streams)
    tick = Ticker(progress, total)
    for item in walk_stream_chunks(db, use_cluster, deep):
        if isinstance(item, list):
            records += len(item)
            if isinstance(target, StreamAnalyzer):
                target.add_chunk(item, n)
            elif target is not None:
                garbage = report.stale if target is stale else report.orphans
                target[ident] += len(item)
                garbage.records += len(item)
                garbage.bytes += sum(len(k) - n + len(v) for k, v in item)
            tick(len(analyzers), records)
            continue
        if isinstance(item, Prefix):
            ident = (item.namespace, item.user_key)
            n = len(item.raw)
            target = _target_for(db, ks, item, analyzers, stale, orphan, now, analyzer)
            if not deep and target is not None and not isinstance(target, StreamAnalyzer):
                # The fast walk skips entries, and a dead incarnation is mostly entries: count
                # its records here so STALE_RECORDS/ORPHAN_RECORD match --deep exactly.
                count, size = _count_prefix(db, item.raw)
                garbage = report.stale if target is stale else report.orphans
                target[ident] += count
                garbage.records += count
                garbage.bytes += size
                target = None  # the walk's chunks of this prefix are already counted
            tick(len(analyzers), records)
            continue
        records += 1
        bad_keys += 1
        report.orphans.records += 1
        report.orphans.bytes += len(item.key) + len(item.value)

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
    ident = (item.namespace, item.user_key)
    live = ks.streams.get(ident)
    if live is not None and live.metadata.version == item.version and live.key.slot == item.slot:
        if ident not in analyzers:
            analyzers[ident] = analyzer(_new_report(live, now))
        return analyzers[ident]
    meta_key = MetadataKey(item.namespace, item.user_key, item.slot).encode()
    if live is not None or db.get("metadata", meta_key) is not None:
        return stale
    return orphan
