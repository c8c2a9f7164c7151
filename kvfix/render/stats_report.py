"""stats' report as JSON (schema 1, documented in the README) and as a Document."""

from __future__ import annotations

from typing import Any

from kvfix.analysis.stats_model import StatsReport, TopKey, TypeCounts
from kvfix.codec.databases import database_of
from kvfix.codec.keys import DEFAULT_NAMESPACE
from kvfix.render.document import Document
from kvfix.render.jsonout import finding_json, text_and_hex
from kvfix.render.summary import findings_table
from kvfix.textsafe import show

SCHEMA = 1


def _counts(tc: TypeCounts) -> dict[str, Any]:
    out: dict[str, Any] = {
        "keys": tc.keys,
        "expired": tc.expired,
        "dead": tc.dead,
        "records": tc.records,
        "bytes": tc.bytes,
        "metadata_32bit": tc.metadata_32bit,
        "metadata_64bit": tc.metadata_64bit,
    }
    if tc.detail:  # only types that have any (hash field expiration, timeseries, topk)
        out["detail"] = dict(sorted(tc.detail.items()))
    return out


def _uses_databases(r: StatsReport) -> bool:
    """A ``db<n>`` namespace is present: show SELECT numbers beside namespaces in tables."""
    return any(ns != DEFAULT_NAMESPACE and database_of(ns) is not None for ns in r.namespaces)


def _top(t: TopKey) -> dict[str, Any]:
    return {
        **text_and_hex("namespace", t.namespace),
        "database": database_of(t.namespace),
        **text_and_hex("key", t.key),
        "slot": t.slot,
        "type": t.type_name,
        "state": t.state,
        "records": t.records,
        "bytes": t.bytes,
    }


def stats_json(r: StatsReport) -> dict[str, Any]:
    f = r.filters
    namespaces: dict[str, Any] = {}
    for ns in sorted(r.namespaces):
        types = r.namespaces[ns]
        total = TypeCounts()
        for tc in types.values():
            total.add(tc)
        namespaces[show(ns)] = {
            "namespace_hex": ns.hex(),
            "database": database_of(ns),
            "types": {name: _counts(types[name]) for name in sorted(types)},
            "total": _counts(total),
        }
    return {
        "schema": SCHEMA,
        "db": {"path": r.path, "column_families": list(r.column_families), "cluster_slots": r.cluster},
        "filters": {
            "namespace": None if f.namespace is None else show(f.namespace),
            "types": sorted(f.types),
            "match": None if f.match is None else show(f.match),
        },
        "now_ms": r.now_ms,
        "total": _counts(r.totals()),
        "namespaces": namespaces,
        "top_n": r.top_n,
        "top": [_top(t) for t in r.top_by_bytes],
        "top_by_records": [_top(t) for t in r.top_by_records],
        "garbage": {
            cf: {
                "records": g.records,
                "bytes": g.bytes,
                "dead_version": {"records": g.dead_version_records, "bytes": g.dead_version_bytes},
                "orphan": {"records": g.orphan_records, "bytes": g.orphan_bytes},
                "undecodable": {"records": g.undecodable_records, "bytes": g.undecodable_bytes},
            }
            for cf, g in sorted(r.garbage.items())
        },
        "column_families": {cf: {"records": t[0], "bytes": t[1]} for cf, t in sorted(r.cf_totals.items())},
        "undecodable_metadata": r.undecodable_metadata,
        "findings": [finding_json(x) for x in r.findings],
        "label_index": {
            show(ns): {"namespace_hex": ns.hex(), "database": database_of(ns), "records": t[0], "bytes": t[1]}
            for ns, t in sorted(r.label_index.items())
        },
        "label_index_undecodable": r.label_index_undecodable,
    }


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n:,} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def stats_document(r: StatsReport) -> Document:
    doc = Document(f"kvfix stats {r.path}")
    f = r.filters
    filters = []
    if f.namespace is not None:
        filters.append(f"namespace {show(f.namespace)}")
    if f.types:
        filters.append(f"type {', '.join(sorted(f.types))}")
    if f.match is not None:
        filters.append(f"match {show(f.match)}")
    tot = r.totals()
    doc.line(
        f"cluster slots {'yes' if r.cluster else 'no'} · column families {', '.join(r.column_families)}"
        + (f" · filters: {'; '.join(filters)}" if filters else "")
    )
    doc.line(
        f"{tot.keys} live keys, {tot.expired} expired, {tot.dead} dead · {tot.records} subkey records · "
        f"{_size(tot.bytes)} ({tot.bytes:,} bytes, as the tables count them) · "
        f"metadata {tot.metadata_64bit} 64-bit / {tot.metadata_32bit} 32-bit"
    )
    _keys_table(doc, r)
    for title, items in (
        (f"Top {r.top_n} keys by bytes", r.top_by_bytes),
        (f"Top {r.top_n} keys by records", r.top_by_records),
    ):
        doc.table(
            title,
            ["namespace", "key", "type", "state", "records", "bytes"],
            [[show(t.namespace), show(t.key), t.type_name, t.state, t.records, t.bytes] for t in items],
        )
    grows = []
    for cf, g in sorted(r.garbage.items()):
        grows.append(
            [
                cf,
                g.dead_version_records,
                g.dead_version_bytes,
                g.orphan_records,
                g.orphan_bytes,
                g.undecodable_records,
                g.records,
                g.bytes,
            ]
        )
    doc.table(
        "Garbage (waiting for compaction)",
        ["column family", "dead-version", "bytes", "orphan", "bytes", "undecodable", "records", "bytes"],
        grows,
    )
    doc.table(
        "Column families (records read)",
        ["column family", "records", "bytes"],
        [[cf, t[0], t[1]] for cf, t in sorted(r.cf_totals.items())],
    )
    _detail_tables(doc, r)
    findings_table(doc, r.findings)
    return doc


def _keys_table(doc: Document, r: StatsReport) -> None:
    with_db = _uses_databases(r)
    rows: list[list[object]] = []
    for ns in sorted(r.namespaces):
        db = database_of(ns)
        for name, tc in sorted(r.namespaces[ns].items()):
            row: list[object] = [show(ns)]
            if with_db:
                row.append("" if db is None else db)
            row += [name, tc.keys, tc.expired, tc.dead, tc.records, tc.bytes, tc.metadata_64bit, tc.metadata_32bit]
            rows.append(row)
    headers = ["namespace", *(["database"] if with_db else []), "type", "keys", "expired", "dead", "records"]
    doc.table("Keys by namespace and type", [*headers, "bytes", "64-bit", "32-bit"], rows)


def _detail_tables(doc: Document, r: StatsReport) -> None:
    """Counts of the newer encodings, and the TimeSeries label index; nothing when there are none."""
    rows = [
        [show(ns), name, counter, n]
        for ns in sorted(r.namespaces)
        for name, tc in sorted(r.namespaces[ns].items())
        for counter, n in sorted(tc.detail.items())
    ]
    if rows:
        doc.table("Type details", ["namespace", "type", "count", "n"], rows)
    if r.label_index or r.label_index_undecodable:
        index_rows: list[list[object]] = [[show(ns), t[0], t[1]] for ns, t in sorted(r.label_index.items())]
        if r.label_index_undecodable:
            index_rows.append(["(undecodable)", r.label_index_undecodable, ""])
        doc.table("TimeSeries label index (index column family)", ["namespace", "entries", "bytes"], index_rows)
