"""scan's report as JSON (schema 1, documented in README) and as a Document."""

from __future__ import annotations

from typing import Any

from kvfix.analysis.findings import Finding
from kvfix.analysis.model import RECORD_COUNT_KEYS, Collision, GroupInfo, ScanReport, StreamReport
from kvfix.codec.metadata import StreamId
from kvfix.render.document import Document
from kvfix.render.jsonout import Lazy, text_and_hex
from kvfix.textsafe import label, show

SCHEMA = 1


def finding_json(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "severity": f.severity,
        "code": f.code,
        "namespace": None if f.namespace is None else show(f.namespace),
        "key": None if f.key is None else show(f.key),
        "key_hex": None if f.key is None else f.key.hex(),
        "message": f.message,
    }
    if f.details:
        out["details"] = f.details
    return out


def group_json(g: GroupInfo, with_pel: bool, lazy: bool = False) -> dict[str, Any]:
    v = g.value
    out: dict[str, Any] = {
        **text_and_hex("name", g.name),
        "layout": g.layout,
        "has_group_record": v is not None,
        "pending": None if v is None else v.pending_number,
        "last_delivered_id": None if v is None else str(v.last_delivered_id),
        "entries_read": None if v is None else v.entries_read,
        "lag": None if v is None else v.lag,
        "consumer_number": None if v is None else v.consumer_number,
        "pel_records": g.pel_count,
        "consumers": [
            {**text_and_hex("name", c.name), "pending": c.pending}
            for c in sorted(g.consumers.values(), key=lambda c: c.name)
        ],
    }
    if with_pel:
        pel = (
            {
                "id": str(p.entry_id),
                **text_and_hex("consumer", p.value.consumer),
                "delivery_count": p.value.delivery_count,
                "last_delivery_ms": p.value.last_delivery_time_ms,
            }
            for p in g.iter_pel()
        )
        out["pel"] = Lazy(pel) if lazy else list(pel)
    return out


def stream_json(s: StreamReport, with_pel: bool = False, lazy: bool = False) -> dict[str, Any]:
    """One stream; ``lazy`` yields its collisions (and PEL) only while dump() writes them."""
    m = s.metadata
    tail = m.stream
    collisions = (
        {
            "kind": c.kind.value,
            **text_and_hex("group", c.group),
            "alias_id": str(c.alias_id),
            "subkey_hex": c.subkey.hex(),
            "scans": list(c.scans),
            "releases": list(c.releases),
        }
        for c in s.iter_collisions()
    )
    return {
        **text_and_hex("namespace", s.namespace),
        **text_and_hex("key", s.key),
        "slot": s.slot,
        "version": s.version,
        "size": m.size,
        "group_number": None if tail is None else tail.group_number,
        "last_generated_id": None if tail is None else str(tail.last_generated_id),
        "expired": s.expired,
        "layout": s.layout,
        "records": {k: s.records[k] for k in RECORD_COUNT_KEYS},
        "groups": [group_json(g, with_pel, lazy) for _, g in sorted(s.groups.items())],
        "collisions": Lazy(collisions) if lazy else list(collisions),
    }


def scan_json(report: ScanReport, with_pel: bool = False, lazy: bool = False) -> dict[str, Any]:
    """The schema-1 document; ``lazy`` builds each stream's object only while dump() writes it."""
    streams = (stream_json(s, with_pel, lazy) for s in report.streams)
    return {
        "schema": SCHEMA,
        "mode": "deep" if report.deep else "fast",
        "db": {
            "path": report.path,
            "column_families": list(report.column_families),
            "cluster_slots": report.cluster_slots,
            "namespaces": [show(n) for n in report.namespaces],
        },
        "summary": report.summary(),
        "streams": Lazy(streams) if lazy else list(streams),
        "garbage": {
            "stale": {"records": report.stale.records, "bytes": report.stale.bytes},
            "orphan": {"records": report.orphans.records, "bytes": report.orphans.bytes},
        },
        "findings": [finding_json(f) for f in report.all_findings()],
    }


def findings_table(doc: Document, findings: list[Finding]) -> None:
    rows = [[f.severity, f.code, _where(f), f.message] for f in findings]
    doc.table(f"Findings ({len(findings)})", ["severity", "code", "stream", "message"], rows)


def _where(f: Finding) -> str:
    if f.key is None:
        return "-"
    return f"{show(f.namespace or b'')}/{show(f.key)}"


def scan_document(report: ScanReport, with_pel: bool = False) -> Document:
    doc = Document(f"kvfix scan {report.path}")
    summary = report.summary()
    doc.line(
        f"mode {'deep' if report.deep else 'fast'} · cluster slots {'yes' if report.cluster_slots else 'no'} · "
        f"namespaces {', '.join(show(n) for n in report.namespaces) or '-'} · "
        f"column families {', '.join(report.column_families)}"
    )
    doc.line(
        f"{summary['streams']} streams: {summary['layout_legacy']} legacy, {summary['layout_prefixed']} prefixed, "
        f"{summary['layout_mixed']} mixed, {summary['layout_none']} without groups · {summary['groups']} groups · "
        f"{summary['collisions']} scan collisions"
    )
    rows = []
    for s in report.streams:
        r = s.records
        rows.append(
            [
                show(s.namespace),
                show(s.key),
                s.layout,
                s.metadata.size,
                r["entry"] if report.deep else f"{r['entry']} read",
                f"{r['legacy_group']}/{r['legacy_consumer']}/{r['legacy_pel']}",
                f"{r['prefixed_group']}/{r['prefixed_consumer']}/{r['prefixed_pel']}",
                r["stale"],
                r["unknown"],
                s.collision_count,
            ]
        )
    doc.table(
        "Streams",
        [
            "namespace",
            "key",
            "layout",
            "size",
            "entries",
            "legacy g/c/pel",
            "prefixed g/c/pel",
            "stale",
            "unknown",
            "collisions",
        ],
        rows,
    )
    grows = []
    for s in report.streams:
        for _, g in sorted(s.groups.items()):
            v = g.value
            consumers = ", ".join(
                f"{label(c.name)}={c.pending}" for c in sorted(g.consumers.values(), key=lambda c: c.name)
            )
            grows.append(
                [
                    show(s.namespace),
                    show(s.key),
                    label(g.name),
                    g.layout,
                    None if v is None else v.pending_number,
                    g.pel_count,
                    None if v is None else str(v.last_delivered_id),
                    None if v is None else v.entries_read,
                    None if v is None else v.lag,
                    consumers or "-",
                ]
            )
    doc.table(
        "Groups",
        [
            "namespace",
            "stream",
            "group",
            "layout",
            "pending",
            "pel",
            "last_delivered_id",
            "entries_read",
            "lag",
            "consumers (pending)",
        ],
        grows,
    )
    doc.table(
        "Scan collisions: legacy records read as entries (one row per group and kind; JSON lists every record)",
        ["namespace", "stream", "group", "kind", "records", "alias ids", "releases", "scans"],
        collision_rows(report),
    )
    if with_pel:
        prows = []
        for s in report.streams:
            for _, g in sorted(s.groups.items()):
                for p in g.iter_pel():
                    prows.append(
                        [
                            show(s.namespace),
                            show(s.key),
                            label(g.name),
                            g.layout,
                            str(p.entry_id),
                            show(p.value.consumer),
                            p.value.delivery_count,
                        ]
                    )
        doc.table("Pending entries", ["namespace", "stream", "group", "layout", "id", "consumer", "deliveries"], prows)
    findings_table(doc, report.all_findings())
    return doc


_OVER = "XRANGE/XREVRANGE over "


class _Bucket:
    """One collision row: record count, alias range and the scans (in first-seen order)."""

    __slots__ = ("_last", "hi", "lo", "records", "scans")

    def __init__(self, first: StreamId) -> None:
        self.lo = self.hi = first
        self.records = 0
        self.scans: dict[str, None] = {}
        self._last: tuple[str, ...] | None = None  # a group's records share one scans tuple

    def add(self, c: Collision) -> None:
        self.records += 1
        self.lo, self.hi = min(self.lo, c.alias_id), max(self.hi, c.alias_id)
        if c.scans is not self._last:
            self._last = c.scans
            self.scans.update(dict.fromkeys(x for x in c.scans if not x.startswith(_OVER)))


def collision_rows(report: ScanReport) -> list[list[object]]:
    """Collisions summed up per (stream, group, kind, releases): a PEL of 10,000 is one row."""
    rows: list[list[object]] = []
    for s in report.streams:
        buckets: dict[tuple[bytes, str, tuple[str, ...]], _Bucket] = {}
        for c in s.iter_collisions():
            b = buckets.get((c.group, c.kind.value, c.releases))
            if b is None:
                b = buckets[(c.group, c.kind.value, c.releases)] = _Bucket(c.alias_id)
            b.add(c)
        for (group, kind, releases), b in sorted(buckets.items()):
            span = str(b.lo) if b.lo == b.hi else f"{b.lo}..{b.hi}"
            rows.append(
                [
                    show(s.namespace),
                    show(s.key),
                    label(group),
                    kind,
                    b.records,
                    span,
                    ", ".join(releases),
                    "; ".join([*b.scans, _OVER + span]),
                ]
            )
    return rows
