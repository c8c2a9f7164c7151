"""check's report as JSON (schema 2) and as a Document; findings share scan's shape.

The text report is a summary (totals, findings, streams worst first, capped by --limit);
the JSON has one object per stream, and per record (bad values, PEL records whose entry
is gone) only with --records.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from kvfix.analysis.check import CheckReport, CheckSink, StreamCheck
from kvfix.analysis.invariants import REPAIRABLE
from kvfix.analysis.model import ScanReport
from kvfix.analysis.repair_job import RepairSummary
from kvfix.analysis.repair_plan import StreamRepair
from kvfix.bounded import TopRows
from kvfix.render.document import Document, View, current_view
from kvfix.render.jsonout import JsonPart, Lazy, ReportWriter, finding_json, safe_int, text_and_hex
from kvfix.render.scan_report import FORK_BASE, LAYOUT_RANK, scope_line
from kvfix.render.summary import (
    capped_table,
    findings_cell,
    findings_summary,
    more_line,
    next_steps,
    worst_rank,
)
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
        "group_records": rep.group_records,
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


def repair_json(plans: Iterable[StreamRepair]) -> list[dict[str, Any]]:
    return [repair_json_item(p) for p in plans if p.puts or p.unrepairable]


def repair_json_item(p: StreamRepair) -> dict[str, Any]:
    """One stream's repair: its writes and what cannot be repaired."""
    return {
        **text_and_hex("namespace", p.namespace),
        **text_and_hex("key", p.key),
        "writes": [{"cf": w.cf, "key_hex": w.key.hex(), "value_hex": w.value.hex(), "change": w.what} for w in p.puts],
        "unrepairable": p.unrepairable,
    }


def _head(scan: ScanReport, records: bool) -> dict[str, Any]:
    out = _fields(scan, records)
    if not scan.scope.everything:
        out["scope"] = scan.scope.options()
    return out


def _fields(scan: ScanReport, records: bool) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "command": "check",
        "records": records,
        "db": {
            "path": scan.path,
            "column_families": list(scan.column_families),
            "cluster_slots": scan.cluster_slots,
            "namespaces": [show(n) for n in scan.namespaces],
        },
    }


def _garbage(report: CheckReport) -> dict[str, Any]:
    scan = report.scan
    return {
        "stale": {"records": scan.stale.records, "bytes": scan.stale.bytes},
        "orphan": {"records": scan.orphans.records, "bytes": scan.orphans.bytes},
    }


def _stream_json(sc: StreamCheck, records: bool) -> dict[str, Any]:
    return {**_stream_row(sc), **(_stream_records(sc) if records else {})}


def check_json(
    report: CheckReport, repair: dict[str, Any] | None = None, records: bool | None = None, lazy: bool = True
) -> dict[str, Any]:
    """The schema-2 document of a check that kept its streams; ``records`` None takes --records from the view.

    ``lazy`` (the default: the command builds this object for text output too) leaves the
    streams and findings to be built one by one while dump() writes them, or never.
    """
    records = current_view().records if records is None else records
    rows = (_stream_json(sc, records) for sc in report.streams)
    findings = (finding_json(f) for f in report.all_findings())
    out: dict[str, Any] = {
        **_head(report.scan, records),
        "streams": Lazy(rows) if lazy else list(rows),
        "summary": report.summary(),
        "garbage": _garbage(report),
        "findings": Lazy(findings) if lazy else list(findings),
    }
    if report.verified_records is not None:
        out["verified_records"] = report.verified_records
    if repair is not None:
        out["repair"] = repair
    return out


class CheckJsonWriter:
    """:func:`check_json`'s document written while the check runs (see ScanJsonWriter)."""

    def __init__(self, out: IO[str], records: bool, pretty: bool) -> None:
        self.records, self.pretty = records, pretty
        self.writer: ReportWriter | JsonPart = ReportWriter(out, pretty)

    def begin(self, scan: ScanReport) -> None:
        assert isinstance(self.writer, ReportWriter)
        self.writer.begin(_head(scan, self.records))

    def add(self, sc: StreamCheck) -> None:
        found = (*sc.report.findings, *sc.findings)
        self.writer.stream(_stream_json(sc, self.records), map(finding_json, found))

    def fork(self, workdir: str) -> CheckJsonWriter:
        """A writer of a second process's streams into files of ``workdir`` (it pickles)."""
        twin = CheckJsonWriter.__new__(CheckJsonWriter)
        twin.records, twin.pretty = self.records, self.pretty
        twin.writer = JsonPart(Path(workdir), self.pretty)
        return twin

    def join(self, later: CheckJsonWriter) -> None:
        assert isinstance(self.writer, ReportWriter) and isinstance(later.writer, JsonPart)
        self.writer.join(later.writer)

    def finish(self, report: CheckReport, repair: dict[str, Any] | None = None) -> None:
        assert isinstance(self.writer, ReportWriter)
        totals = {"summary": report.summary(), "garbage": _garbage(report)}
        verified = report.verified_records
        after: dict[str, Any] = {} if verified is None else {"verified_records": verified}
        if repair is not None:
            after["repair"] = repair
        self.writer.finish(totals, map(finding_json, report.scan.findings), after)


class CheckOutputs:
    """Where a streamed check goes: the text tables (text output, or a --summary-file) and
    the JSON document, written to ``out`` while the check runs."""

    def __init__(self, view: View, fmt: str, summary_file: bool, out: IO[str]) -> None:
        self.tables = CheckTables(view) if fmt != "json" or summary_file else None
        self.writer = CheckJsonWriter(out, view.records, view.pretty) if fmt == "json" else None

    def begin(self, scan: ScanReport) -> None:
        if self.writer is not None:
            self.writer.begin(scan)

    def add(self, sc: StreamCheck) -> None:
        if self.tables is not None:
            self.tables.add(sc)
        if self.writer is not None:
            self.writer.add(sc)

    def fork(self, workdir: str) -> CheckOutputs:
        """Empty outputs like these for a second process's streams (they pickle)."""
        twin = CheckOutputs.__new__(CheckOutputs)
        twin.tables = None if self.tables is None else self.tables.fork()
        twin.writer = None if self.writer is None else self.writer.fork(workdir)
        return twin

    def join(self, later: CheckSink) -> None:
        assert isinstance(later, CheckOutputs)
        if self.tables is not None and later.tables is not None:
            self.tables.join(later.tables)
        if self.writer is not None and later.writer is not None:
            self.writer.join(later.writer)


def check_document(report: CheckReport, view: View | None = None) -> Document:
    """The text report of a check that kept its streams (:class:`CheckTables` fed with them)."""
    tables = CheckTables(view or current_view())
    for sc in report.streams:
        tables.add(sc)
    return tables.document(report)


class CheckTables:
    """Totals, findings (worst first), then the streams worst first, capped by the view's limit.

    Filled one stream at a time, keeping only the worst ``--limit`` rows.
    """

    def __init__(self, view: View) -> None:
        self.view = view
        self.streams: TopRows[list[object]] = TopRows(view.limit)
        #: Added to each stream's position in the row keys: a fork's streams sort after ours.
        self.base = 0

    def add(self, sc: StreamCheck) -> None:
        rep = sc.report
        found = len(sc.findings) + len(rep.findings)
        rank = max(worst_rank(sc.findings), worst_rank(rep.findings))
        i = self.base + self.streams.offered
        self.streams.offer((-rank, -found, -LAYOUT_RANK[rep.layout], i), lambda: _row(sc))

    def fork(self) -> CheckTables:
        twin = CheckTables(self.view)
        twin.base = FORK_BASE
        return twin

    def join(self, later: CheckTables) -> None:
        self.streams.absorb(later.streams)

    def document(self, report: CheckReport) -> Document:
        scan = report.scan
        s = report.summary()
        digest = report.digest()
        doc = Document(f"kvfix check {scan.path}")
        scope_line(doc, scan)
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
        findings_summary(doc, digest, self.view)
        headers = ["namespace", "key", "layout", "size", "entries", "first", "last", "group_number", "groups"]
        rows = self.streams.rows()
        total = scan.tally.streams
        capped_table(doc, "Streams, worst first", [*headers, "invariants", "findings"], rows, total, "streams")
        next_steps(doc, digest, scan.path, REPAIRABLE)
        return doc


def _row(sc: StreamCheck) -> list[object]:
    r = _stream_row(sc)
    return [
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


def repair_document(doc: Document, plan: RepairSummary, title: str) -> None:
    """The repair's changes (one row per value rewritten), capped by the view's limit like every summary."""
    rows = plan.change_rows
    doc.table(title, ["namespace", "stream", "change"], rows, more_line(plan.changes, len(rows), "changes"))
    if plan.problems:
        title = "Not repairable (restore from a backup)"
        headers = ["namespace", "stream", "problem"]
        capped_table(doc, title, headers, plan.problem_rows, plan.problems, "problems")


def repair_summary(view: View | None = None) -> RepairSummary:
    """An empty summary keeping the rows the view shows."""
    view = view or current_view()
    return RepairSummary(None if view.records or view.limit == 0 else view.limit)
