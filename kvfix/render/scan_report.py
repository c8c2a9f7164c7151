"""scan's report as JSON (schema 2, documented in README) and as a Document.

Both are sized for people by default: per stream and per group (collisions summed up per
group and kind), never one object or row per record; ``--records`` (``records=True``)
adds every collision and PEL record, ``--pel`` the PEL records alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kvfix.analysis.findings import Finding
from kvfix.analysis.model import RECORD_COUNT_KEYS, Collision, GroupInfo, ScanReport, StreamReport
from kvfix.codec.metadata import StreamId
from kvfix.render.document import Document, View, current_view
from kvfix.render.jsonout import Lazy, safe_int, safe_value, text_and_hex
from kvfix.render.summary import capped_table, findings_cell, findings_summary, next_steps, top, where, worst_rank
from kvfix.textsafe import label, show

SCHEMA = 2
LAYOUT_RANK = {"mixed": 3, "legacy": 2, "prefixed": 1, "none": 0}
_OVER = "XRANGE/XREVRANGE over "


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
        out["details"] = safe_value(f.details)
    return out


class Bucket:
    """One group's collisions of one kind: record count, alias range, scans and releases (first seen order)."""

    __slots__ = ("_last", "_seen", "hi", "lo", "records", "releases", "scans")

    def __init__(self, first: StreamId) -> None:
        self.lo = self.hi = first
        self.records = 0
        self.scans: dict[str, None] = {}
        self.releases: dict[str, None] = {}
        self._last: tuple[str, ...] | None = None  # a group's records share one scans tuple
        self._seen: list[tuple[str, ...]] = []  # releases tuples met (one or two)

    def add(self, c: Collision) -> None:
        self.records += 1
        if c.alias_id < self.lo:
            self.lo = c.alias_id
        elif c.alias_id > self.hi:
            self.hi = c.alias_id
        if c.scans is not self._last:
            self._last = c.scans
            self.scans.update(dict.fromkeys(x for x in c.scans if not x.startswith(_OVER)))
        if c.releases not in self._seen:
            self._seen.append(c.releases)
            self.releases.update(dict.fromkeys(c.releases))

    @property
    def span(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}..{self.hi}"

    def json(self, kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "records": self.records,
            "first_alias_id": str(self.lo),
            "last_alias_id": str(self.hi),
            "scans": list(self.scans),
            "releases": list(self.releases),
        }


Buckets = dict[bytes, dict[str, Bucket]]


def collision_buckets(s: StreamReport) -> Buckets:
    """The stream's collisions (legacy records) summed up per group name and kind, keeping no Collision.

    A run of one group's records of one kind shares its alias id, scans and releases objects
    (see LegacyRecords.iter): those are only counted, so a PEL of a million costs little more.
    """
    buckets: Buckets = {}
    if not s.collision_count:
        return buckets
    group: bytes | None = None
    kind = alias = scans = releases = None
    b: Bucket | None = None
    for c in s.iter_collisions():
        if c.group is not group or c.kind is not kind:
            group, kind, alias = c.group, c.kind, None
            kinds = buckets.setdefault(c.group, {})
            b = kinds.get(c.kind.value)
            if b is None:
                b = kinds[c.kind.value] = Bucket(c.alias_id)
        assert b is not None
        if c.alias_id is alias and c.scans is scans and c.releases is releases:
            b.records += 1
            continue
        b.add(c)
        alias, scans, releases = c.alias_id, c.scans, c.releases
    return buckets


def _pel_json(g: GroupInfo) -> Any:
    return (
        {
            "id": str(p.entry_id),
            **text_and_hex("consumer", p.value.consumer),
            "delivery_count": safe_int(p.value.delivery_count),
            "last_delivery_ms": safe_int(p.value.last_delivery_time_ms),
        }
        for p in g.iter_pel()
    )


def group_json(g: GroupInfo, with_pel: bool, lazy: bool = False, buckets: Buckets | None = None) -> dict[str, Any]:
    """One group; its collisions per kind from ``buckets`` (legacy groups), PEL records with ``with_pel``."""
    v = g.value
    out: dict[str, Any] = {
        **text_and_hex("name", g.name),
        "layout": g.layout,
        "has_group_record": v is not None,
        "pending": None if v is None else safe_int(v.pending_number),
        "last_delivered_id": None if v is None else str(v.last_delivered_id),
        "entries_read": None if v is None else safe_int(v.entries_read),
        "lag": None if v is None else safe_int(v.lag),
        "consumer_number": None if v is None else safe_int(v.consumer_number),
        "pel_records": g.pel_count,
        "consumers": [
            {**text_and_hex("name", c.name), "pending": safe_int(c.pending)}
            for c in sorted(g.consumers.values(), key=lambda c: c.name)
        ],
        "collisions": [b.json(kind) for kind, b in sorted(_mine(g, buckets).items())],
    }
    if with_pel:
        out["pel"] = Lazy(_pel_json(g)) if lazy else list(_pel_json(g))
    return out


def _mine(g: GroupInfo, buckets: Buckets | None) -> dict[str, Bucket]:
    """The group's collision buckets: legacy records are collisions, prefixed ones never."""
    if not buckets or g.layout != "legacy":
        return {}
    return buckets.get(g.name, {})


def _collision_json(c: Collision) -> dict[str, Any]:
    return {
        "kind": c.kind.value,
        **text_and_hex("group", c.group),
        "alias_id": str(c.alias_id),
        "subkey_hex": c.subkey.hex(),
        "scans": list(c.scans),
        "releases": list(c.releases),
    }


def stream_json(s: StreamReport, with_pel: bool = False, lazy: bool = False, records: bool = False) -> dict[str, Any]:
    """One stream; ``records`` adds every collision, ``lazy`` yields them only while dump() writes them."""
    m = s.metadata
    tail = m.stream
    buckets = collision_buckets(s)
    out: dict[str, Any] = {
        **text_and_hex("namespace", s.namespace),
        **text_and_hex("key", s.key),
        "slot": s.slot,
        "version": str(s.version),
        "size": safe_int(m.size),
        "group_number": None if tail is None else safe_int(tail.group_number),
        "last_generated_id": None if tail is None else str(tail.last_generated_id),
        "expired": s.expired,
        "layout": s.layout,
        "records": {k: s.records[k] for k in RECORD_COUNT_KEYS},
        "collision_count": s.collision_count,
        "groups": [group_json(g, with_pel or records, lazy, buckets) for _, g in sorted(s.groups.items())],
    }
    if records:
        every = (_collision_json(c) for c in s.iter_collisions())
        out["collision_records"] = Lazy(every) if lazy else list(every)
    return out


def scan_json(
    report: ScanReport, with_pel: bool = False, lazy: bool = False, records: bool | None = None
) -> dict[str, Any]:
    """The schema-2 document; ``records`` None takes --records from the view; ``lazy`` streams the streams."""
    records = current_view().records if records is None else records
    streams = (stream_json(s, with_pel, lazy, records) for s in report.streams)
    findings = (finding_json(f) for f in report.all_findings())
    return {
        "schema": SCHEMA,
        "mode": "deep" if report.deep else "fast",
        "records": records,
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
        "findings": Lazy(findings) if lazy else list(findings),
    }


def findings_table(doc: Document, findings: list[Finding]) -> None:
    """Every finding, one row each, in report order (stats' table; scan and check use findings_summary)."""
    rows: list[list[object]] = [[f.severity, f.code, where(f), f.message] for f in findings]
    doc.table(f"Findings ({len(findings)})", ["severity", "code", "stream", "message"], rows)


def scan_document(report: ScanReport, with_pel: bool = False, view: View | None = None) -> Document:
    """Totals, findings, then streams and groups worst first, capped; per-record tables with --records/--pel."""
    view = view or current_view()
    doc = Document(f"kvfix scan {report.path}")
    _totals(doc, report)
    findings_summary(doc, report.all_findings(), view)
    ranks = {id(s): worst_rank(s.findings) for s in report.streams}
    _streams_table(doc, report, ranks, view)
    _groups_table(doc, report, ranks, view)
    if view.records:
        doc.table(
            "Scan collisions: legacy records read as entries (one row per group and kind; JSON lists every record)",
            ["namespace", "stream", "group", "kind", "records", "alias ids", "releases", "scans"],
            collision_rows(report),
        )
    if with_pel or view.records:
        headers = ["namespace", "stream", "group", "layout", "id", "consumer", "deliveries"]
        doc.table("Pending entries", headers, list(pel_rows(report)))
    next_steps(doc, report.all_findings(), report.path)
    return doc


def pel_rows(report: ScanReport) -> Iterator[list[object]]:
    """One row per PEL record of every group (--pel, --records)."""
    for s in report.streams:
        for _, g in sorted(s.groups.items()):
            for p in g.iter_pel():
                head = [show(s.namespace), show(s.key), label(g.name), g.layout]
                yield [*head, str(p.entry_id), show(p.value.consumer), p.value.delivery_count]


def _totals(doc: Document, report: ScanReport) -> None:
    summary = report.summary()
    doc.line(
        f"mode {'deep' if report.deep else 'fast'} · cluster slots {'yes' if report.cluster_slots else 'no'} · "
        f"namespaces {', '.join(show(n) for n in report.namespaces) or '-'} · "
        f"column families {', '.join(report.column_families)}"
    )
    doc.line(
        f"{summary['streams']:,} streams: {summary['layout_legacy']:,} legacy, {summary['layout_prefixed']:,} "
        f"prefixed, {summary['layout_mixed']:,} mixed, {summary['layout_none']:,} without groups · "
        f"{summary['groups']:,} groups · {summary['collisions']:,} scan collisions"
    )
    line = f"findings: {summary['errors']:,} errors, {summary['warnings']:,} warnings, {summary['infos']:,} infos"
    if report.stale.records or report.orphans.records:
        line += f" · garbage: {report.stale.records:,} dead-version, {report.orphans.records:,} orphan records"
    doc.line(line)


def _streams_table(doc: Document, report: ScanReport, ranks: dict[int, int], view: View) -> None:
    def key(item: tuple[int, StreamReport]) -> tuple[int, ...]:
        i, s = item
        return (-ranks[id(s)], -s.collision_count, -LAYOUT_RANK[s.layout], i)

    rows: list[list[object]] = []
    for _, s in top(enumerate(report.streams), key, view):
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
                findings_cell(s.findings),
            ]
        )
    headers = ["namespace", "key", "layout", "size", "entries", "legacy g/c/pel", "prefixed g/c/pel", "stale"]
    headers += ["unknown", "collisions", "findings"]
    capped_table(doc, "Streams, worst first", headers, rows, len(report.streams), "streams")


def _groups_table(doc: Document, report: ScanReport, ranks: dict[int, int], view: View) -> None:
    def key(item: tuple[int, int, StreamReport, GroupInfo]) -> tuple[int, ...]:
        i, j, s, g = item
        return (-ranks[id(s)], -LAYOUT_RANK[g.layout], -g.pel_count, i, j)

    groups = ((i, j, s, g) for i, s in enumerate(report.streams) for j, (_, g) in enumerate(sorted(s.groups.items())))
    chosen = top(groups, key, view)
    buckets: dict[int, Buckets] = {}
    rows: list[list[object]] = []
    for _, _, s, g in chosen:
        if id(s) not in buckets:
            buckets[id(s)] = collision_buckets(s)
        v = g.value
        rows.append(
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
                consumers_cell(g),
                _collisions_cell(g, buckets[id(s)]),
            ]
        )
    headers = ["namespace", "stream", "group", "layout", "pending", "pel", "last_delivered_id", "entries_read"]
    headers += ["lag", "consumers (pending)", "collisions (alias ids)"]
    total = sum(len(s.groups) for s in report.streams)
    capped_table(doc, "Groups, worst first", headers, rows, total, "groups")


#: Consumers named in a group's cell; the rest are counted.
FIRST_CONSUMERS = 4


def consumers_cell(g: GroupInfo) -> str:
    consumers = sorted(g.consumers.values(), key=lambda c: c.name)
    text = ", ".join(f"{label(c.name)}={c.pending}" for c in consumers[:FIRST_CONSUMERS])
    if len(consumers) > FIRST_CONSUMERS:
        text += f", … +{len(consumers) - FIRST_CONSUMERS:,}"
    return text or "-"


def _collisions_cell(g: GroupInfo, buckets: Buckets) -> str:
    mine = list(_mine(g, buckets).values())
    if not mine:
        return "-"
    lo, hi = min(b.lo for b in mine), max(b.hi for b in mine)
    span = str(lo) if lo == hi else f"{lo}..{hi}"
    return f"{sum(b.records for b in mine):,} ({span})"


def collision_rows(report: ScanReport) -> list[list[object]]:
    """Collisions summed up per (stream, group, kind): a PEL of 10,000 is one row."""
    rows: list[list[object]] = []
    for s in report.streams:
        for group, kinds in sorted(collision_buckets(s).items()):
            for kind, b in sorted(kinds.items()):
                scans = "; ".join([*b.scans, _OVER + b.span])
                row = [show(s.namespace), show(s.key), label(group), kind, b.records, b.span, ", ".join(b.releases)]
                rows.append([*row, scans])
    return rows
