"""check's report as JSON (schema 2) and as a Document; findings share scan's shape.

The text report is a summary (totals, findings, streams worst first, capped by --limit);
the JSON has one object per stream, and per record (bad values, PEL records whose entry
is gone) only with --records.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from kvfix.analysis.check import CheckReport, StreamCheck
from kvfix.analysis.invariants import REPAIRABLE
from kvfix.analysis.repair_plan import StreamRepair
from kvfix.render.document import Document, View, current_view
from kvfix.render.jsonout import Lazy, safe_int, text_and_hex
from kvfix.render.scan_report import LAYOUT_RANK, finding_json
from kvfix.render.summary import capped_table, findings_cell, findings_summary, more_line, next_steps, top, worst_rank
from kvfix.textsafe import counted, show

SCHEMA = 2


def _stream_row(sc: StreamCheck) -> dict[str, Any]:
    rep, facts = sc.report, sc.facts
    tail = rep.metadata.stream
    return {
        **text_and_hex("namespace", rep.namespace),
        **text_and_hex("key", rep.key),
        "slot": rep.slot,
        "version": str(rep.version),
        "layout": rep.layout,
        "expired": rep.expired,
        "size": safe_int(rep.metadata.size),
        "entries": facts.entries,
        "first_entry_id": None if facts.first is None else str(facts.first),
        "last_entry_id": None if facts.last is None else str(facts.last),
        "group_number": None if tail is None else safe_int(tail.group_number),
        "group_records": sum(g.value is not None for g in rep.groups.values()),
        "bad_values": len(facts.bad_values),
        "deleted_pel_ids": sum(len(ids) for ids in facts.deleted_pel_ids.values()),
        "findings": len(sc.findings),
    }


def _stream_records(sc: StreamCheck) -> dict[str, Any]:
    """--records: every record behind the stream's counts of bad values and PEL ids without an entry."""
    facts = sc.facts
    return {
        "bad_value_records": [
            {"subkey_hex": b.subkey.hex(), "kind": b.kind, "length": b.length, "error": b.error}
            for b in facts.bad_values
        ],
        "deleted_pel_records": [
            {"layout": layout, **text_and_hex("group", group), "id": str(i)}
            for (layout, group), ids in sorted(facts.deleted_pel_ids.items())
            for i in ids
        ],
    }


def repair_json(plans: list[StreamRepair]) -> list[dict[str, Any]]:
    return [
        {
            **text_and_hex("namespace", p.namespace),
            **text_and_hex("key", p.key),
            "writes": [
                {"cf": w.cf, "key_hex": w.key.hex(), "value_hex": w.value.hex(), "change": w.what} for w in p.puts
            ],
            "unrepairable": p.unrepairable,
        }
        for p in plans
        if p.puts or p.unrepairable
    ]


def check_json(
    report: CheckReport, repair: dict[str, Any] | None = None, records: bool | None = None, lazy: bool = True
) -> dict[str, Any]:
    """The schema-2 document; ``records`` None takes --records from the view.

    ``lazy`` (the default: the command builds this object for text output too) leaves the
    streams and findings to be built one by one while dump() writes them, or never.
    """
    records = current_view().records if records is None else records
    rows = ({**_stream_row(sc), **(_stream_records(sc) if records else {})} for sc in report.streams)
    findings = (finding_json(f) for f in report.all_findings())
    scan = report.scan
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "command": "check",
        "records": records,
        "db": {
            "path": scan.path,
            "column_families": list(scan.column_families),
            "cluster_slots": scan.cluster_slots,
            "namespaces": [show(n) for n in scan.namespaces],
        },
        "summary": report.summary(),
        "streams": Lazy(rows) if lazy else list(rows),
        "garbage": {
            "stale": {"records": scan.stale.records, "bytes": scan.stale.bytes},
            "orphan": {"records": scan.orphans.records, "bytes": scan.orphans.bytes},
        },
        "findings": Lazy(findings) if lazy else list(findings),
    }
    if report.verified_records is not None:
        out["verified_records"] = report.verified_records
    if repair is not None:
        out["repair"] = repair
    return out


def check_document(report: CheckReport, view: View | None = None) -> Document:
    """Totals, findings (worst first), then the streams worst first, capped by the view's limit."""
    view = view or current_view()
    scan = report.scan
    s = report.summary()
    doc = Document(f"kvfix check {scan.path}")
    if report.verified_records is not None:
        n = sum(report.verified_records.values())
        doc.line(f"checksums: every block of every file read cleanly ({n:,} records in all column families)")
    doc.line(
        f"{s['streams']:,} streams · {s['entries']:,} entries · {s['groups']:,} groups · "
        f"{s['errors']:,} errors, {s['warnings']:,} warnings, {s['infos']:,} infos"
    )
    doc.line(
        f"garbage: {scan.stale.records:,} dead-version records ({scan.stale.bytes:,} bytes), "
        f"{scan.orphans.records:,} orphan records ({scan.orphans.bytes:,} bytes)"
    )
    findings_summary(doc, report.all_findings(), view)
    _streams_table(doc, report, view)
    next_steps(doc, report.all_findings(), scan.path, REPAIRABLE)
    return doc


def _streams_table(doc: Document, report: CheckReport, view: View) -> None:
    def key(item: tuple[int, StreamCheck]) -> tuple[int, ...]:
        i, sc = item
        rep = sc.report
        found = len(sc.findings) + len(rep.findings)
        return (-max(worst_rank(sc.findings), worst_rank(rep.findings)), -found, -LAYOUT_RANK[rep.layout], i)

    rows = []
    for _, sc in top(enumerate(report.streams), key, view):
        r = _stream_row(sc)
        rows.append(
            [
                r["namespace"],
                r["key"],
                r["layout"],
                r["size"],
                r["entries"],
                r["first_entry_id"] or "-",
                r["last_entry_id"] or "-",
                r["group_number"],
                r["group_records"],
                "expired" if r["expired"] else ("ok" if not sc.findings else counted(len(sc.findings), "problem")),
                findings_cell([*sc.report.findings, *sc.findings]),
            ]
        )
    headers = ["namespace", "key", "layout", "size", "entries", "first", "last", "group_number", "groups"]
    capped_table(
        doc, "Streams, worst first", [*headers, "invariants", "findings"], rows, len(report.streams), "streams"
    )


def repair_document(doc: Document, plans: list[StreamRepair], title: str, view: View | None = None) -> None:
    """The repair's changes (one row per value rewritten), capped by the view's limit like every summary."""
    view = view or current_view()
    cap = None if view.records or view.limit == 0 else view.limit
    changes: Iterator[list[object]] = ([show(p.namespace), show(p.key), w.what] for p in plans for w in p.puts)
    rows: list[list[object]] = list(islice(changes, cap))
    total = sum(len(p.puts) for p in plans)
    doc.table(title, ["namespace", "stream", "change"], rows, more_line(total, len(rows), "changes"))
    bad: list[list[object]] = [[show(p.namespace), show(p.key), u] for p in plans for u in p.unrepairable]
    if bad:
        title = "Not repairable (restore from a backup)"
        capped_table(doc, title, ["namespace", "stream", "problem"], bad[:cap], len(bad), "problems")
