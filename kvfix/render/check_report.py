"""check's report as JSON (schema 1) and as a Document; findings share scan's shape."""

from __future__ import annotations

from typing import Any

from kvfix.analysis.check import CheckReport
from kvfix.analysis.repair_plan import StreamRepair
from kvfix.render.document import Document
from kvfix.render.jsonout import text_and_hex
from kvfix.render.scan_report import finding_json, findings_table
from kvfix.textsafe import show

SCHEMA = 1


def _stream_row(sc) -> dict[str, Any]:
    rep, facts = sc.report, sc.facts
    tail = rep.metadata.stream
    return {
        **text_and_hex("namespace", rep.namespace),
        **text_and_hex("key", rep.key),
        "slot": rep.slot,
        "layout": rep.layout,
        "expired": rep.expired,
        "size": rep.metadata.size,
        "entries": facts.entries,
        "first_entry_id": None if facts.first is None else str(facts.first),
        "last_entry_id": None if facts.last is None else str(facts.last),
        "group_number": None if tail is None else tail.group_number,
        "group_records": sum(g.value is not None for g in rep.groups.values()),
        "bad_values": len(facts.bad_values),
        "findings": len(sc.findings),
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


def check_json(report: CheckReport, repair: dict[str, Any] | None = None) -> dict[str, Any]:
    scan = report.scan
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "command": "check",
        "db": {
            "path": scan.path,
            "column_families": list(scan.column_families),
            "cluster_slots": scan.cluster_slots,
            "namespaces": [show(n) for n in scan.namespaces],
        },
        "summary": report.summary(),
        "streams": [_stream_row(sc) for sc in report.streams],
        "garbage": {
            "stale": {"records": scan.stale.records, "bytes": scan.stale.bytes},
            "orphan": {"records": scan.orphans.records, "bytes": scan.orphans.bytes},
        },
        "findings": [finding_json(f) for f in report.all_findings()],
    }
    if report.verified_records is not None:
        out["verified_records"] = report.verified_records
    if repair is not None:
        out["repair"] = repair
    return out


def check_document(report: CheckReport) -> Document:
    scan = report.scan
    s = report.summary()
    doc = Document(f"kvfix check {scan.path}")
    if report.verified_records is not None:
        n = sum(report.verified_records.values())
        doc.line(f"checksums: every block of every file read cleanly ({n:,} records in all column families)")
    doc.line(
        f"{s['streams']} streams · {s['entries']} entries · {s['groups']} groups · "
        f"{s['errors']} errors, {s['warnings']} warnings, {s['infos']} infos"
    )
    doc.line(
        f"garbage: {scan.stale.records} dead-version records ({scan.stale.bytes} bytes), "
        f"{scan.orphans.records} orphan records ({scan.orphans.bytes} bytes)"
    )
    rows = []
    for sc in report.streams:
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
                "expired" if r["expired"] else ("ok" if not sc.findings else f"{len(sc.findings)} problems"),
            ]
        )
    doc.table(
        "Streams",
        ["namespace", "key", "layout", "size", "entries", "first", "last", "group_number", "groups", "invariants"],
        rows,
    )
    findings_table(doc, report.all_findings())
    return doc


def repair_document(doc: Document, plans: list[StreamRepair], title: str) -> None:
    rows = [[show(p.namespace), show(p.key), w.what] for p in plans for w in p.puts]
    doc.table(title, ["namespace", "stream", "change"], rows)
    bad = [[show(p.namespace), show(p.key), u] for p in plans for u in p.unrepairable]
    if bad:
        doc.table("Not repairable (restore from a backup)", ["namespace", "stream", "problem"], bad)
