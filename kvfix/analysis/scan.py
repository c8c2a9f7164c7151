"""scan: join the metadata and stream column families and report every stream."""

from __future__ import annotations

from collections import Counter

from kvfix.analysis.findings import finding
from kvfix.analysis.keyspace import choose_cluster, load_keyspace, now_ms as _now_ms
from kvfix.analysis.model import ScanReport, StreamReport
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.analysis.walk import BadKey, Prefix, walk_stream_cf
from kvfix.codec.keys import MetadataKey
from kvfix.progress import Progress
from kvfix.storage import Database
from kvfix.textsafe import show

PROGRESS_EVERY = 4096


def scan_database(
    db: Database,
    *,
    cluster: bool | None = None,
    deep: bool = False,
    now_ms: int | None = None,
    progress: Progress | None = None,
) -> ScanReport:
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
    total = len(ks.streams)
    for item in walk_stream_cf(db, use_cluster, deep):
        if isinstance(item, Prefix):
            ident = (item.namespace, item.user_key)
            target = _target_for(db, ks, item, analyzers, stale, orphan, now)
            continue
        records += 1
        if records % PROGRESS_EVERY == 0:
            progress.update(streams=len(analyzers), records=records, total_streams=total)
        if isinstance(item, BadKey):
            bad_keys += 1
            report.orphans.records += 1
            report.orphans.bytes += len(item.key) + len(item.value)
            continue
        sub, value = item
        if isinstance(target, StreamAnalyzer):
            target.add(sub, value)
        elif target is not None:
            target[ident] += 1
            garbage = report.stale if target is stale else report.orphans
            garbage.records += 1
            garbage.bytes += len(sub) + len(value)

    for ident, live in sorted(ks.streams.items()):
        analyzer = analyzers.get(ident) or StreamAnalyzer(_new_report(live, now))
        analyzer.report.records["stale"] += stale.pop(ident, 0)
        report.streams.append(analyzer.finish())
    progress.update(streams=total, records=records, total_streams=total)
    for (ns, key), count in sorted(stale.items()):
        report.findings.append(finding("STALE_RECORDS", f"{count} stream records of dead versions of {show(key)}", ns, key, records=count))
    for (ns, key), count in sorted(orphan.items()):
        report.findings.append(
            finding("ORPHAN_RECORD", f"{count} stream records of {show(key)}, which has no metadata", ns, key, records=count)
        )
    if bad_keys:
        report.findings.append(
            finding("UNDECODABLE_RECORD", f"{bad_keys} stream column family keys are not internal keys under this cluster mode")
        )
    return report


def _new_report(live, now: int) -> StreamReport:
    meta = live.metadata
    return StreamReport(
        live.key.namespace, live.key.user_key, live.key.slot, meta.version or 0, meta, expired=meta.is_expired(now)
    )


def _target_for(db: Database, ks, item: Prefix, analyzers, stale, orphan, now: int):
    ident = (item.namespace, item.user_key)
    live = ks.streams.get(ident)
    if live is not None and live.metadata.version == item.version and live.key.slot == item.slot:
        if ident not in analyzers:
            analyzers[ident] = StreamAnalyzer(_new_report(live, now))
        return analyzers[ident]
    if live is not None or db.get("metadata", MetadataKey(item.namespace, item.user_key, item.slot).encode()) is not None:
        return stale
    return orphan
