"""scan's report as JSON (schema 2, documented in README) and as a Document.

Both are sized for people by default: per stream and per group (collisions summed up per
group and kind), never one object or row per record; ``--records`` (``records=True``)
adds every collision and PEL record, ``--pel`` the PEL records alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from kvfix.analysis.model import GroupInfo, ScanReport, StreamReport
from kvfix.analysis.sharded import StreamSink
from kvfix.bounded import TopRows
from kvfix.render.document import Document, View, current_view
from kvfix.render.jsonout import JsonPart, Lazy, ReportWriter, finding_json
from kvfix.render.scan_json import _OVER, Buckets, collision_buckets, stream_json
from kvfix.render.scan_json import mine as mine_of
from kvfix.render.summary import capped_table, findings_cell, findings_summary, next_steps, worst_rank
from kvfix.textsafe import label, show

SCHEMA = 2
#: A fork's first stream position (:meth:`ScanTables.fork`): above any database's streams.
FORK_BASE = 1 << 48
LAYOUT_RANK = {"mixed": 3, "legacy": 2, "prefixed": 1, "none": 0}


def _head(report: ScanReport, records: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "mode": "deep" if report.deep else "fast",
        "records": records,
        "db": {
            "path": report.path,
            "column_families": list(report.column_families),
            "cluster_slots": report.cluster_slots,
            "namespaces": [show(n) for n in report.namespaces],
        },
    }
    if not report.scope.everything:
        out["scope"] = report.scope.options()
    return out


def scope_line(doc: Document, report: ScanReport) -> None:
    """Say what a scoped run looked at, and what it did not look for."""
    if not report.scope.everything:
        doc.line(f"scope: {report.scope.describe()} (orphans and other keys' records not looked for)")


def _garbage(report: ScanReport) -> dict[str, Any]:
    return {
        "stale": {"records": report.stale.records, "bytes": report.stale.bytes},
        "orphan": {"records": report.orphans.records, "bytes": report.orphans.bytes},
    }


def scan_json(
    report: ScanReport, with_pel: bool = False, lazy: bool = False, records: bool | None = None
) -> dict[str, Any]:
    """The schema-2 document of a scan that kept its streams; ``records`` None takes --records from the view."""
    records = current_view().records if records is None else records
    streams = (stream_json(s, with_pel, lazy, records) for s in report.streams)
    findings = (finding_json(f) for f in report.all_findings())
    return {
        **_head(report, records),
        "streams": Lazy(streams) if lazy else list(streams),
        "summary": report.summary(),
        "garbage": _garbage(report),
        "findings": Lazy(findings) if lazy else list(findings),
    }


class ScanJsonWriter:
    """The schema-2 document written while the scan runs: each stream as it is finished.

    The streams' findings wait in a temporary file (in memory while small) until the
    report's own are known, so memory does not grow with streams.  The bytes are
    :func:`scan_json`'s for the same scan.
    """

    def __init__(self, out: IO[str], with_pel: bool, records: bool, pretty: bool) -> None:
        self.with_pel, self.records, self.pretty = with_pel, records, pretty
        self.writer: ReportWriter | JsonPart = ReportWriter(out, pretty)

    def begin(self, report: ScanReport) -> None:
        assert isinstance(self.writer, ReportWriter)
        self.writer.begin(_head(report, self.records))

    def add(self, s: StreamReport) -> None:
        self.writer.stream(stream_json(s, self.with_pel, True, self.records), map(finding_json, s.findings))

    def fork(self, workdir: str) -> ScanJsonWriter:
        """A writer of a second process's streams into files of ``workdir`` (it pickles)."""
        twin = ScanJsonWriter.__new__(ScanJsonWriter)
        twin.with_pel, twin.records, twin.pretty = self.with_pel, self.records, self.pretty
        twin.writer = JsonPart(Path(workdir), self.pretty)
        return twin

    def join(self, later: StreamSink) -> None:
        assert isinstance(later, ScanJsonWriter) and isinstance(later.writer, JsonPart)
        assert isinstance(self.writer, ReportWriter)
        self.writer.join(later.writer)

    def finish(self, report: ScanReport) -> None:
        totals = {"summary": report.summary(), "garbage": _garbage(report)}
        assert isinstance(self.writer, ReportWriter)
        self.writer.finish(totals, map(finding_json, report.findings), {})


def scan_document(report: ScanReport, with_pel: bool = False, view: View | None = None) -> Document:
    """The text report of a scan that kept its streams (:class:`ScanTables` fed with them)."""
    tables = ScanTables(report.deep, with_pel, view or current_view())
    for s in report.streams:
        tables.add(s)
    return tables.document(report)


class ScanTables:
    """Totals, findings, then streams and groups worst first, capped; per-record tables with --records/--pel.

    Filled one stream at a time: it keeps the worst ``--limit`` rows of each table, and
    the per-record rows only when asked for.
    """

    def __init__(self, deep: bool, with_pel: bool, view: View) -> None:
        self.deep, self.view = deep, view
        self.with_pel = with_pel or view.records
        self.streams: TopRows[list[object]] = TopRows(view.limit)
        self.groups: TopRows[list[object]] = TopRows(view.limit)
        self.collision_rows: list[list[object]] = []
        self.pel_rows: list[list[object]] = []
        #: Added to each stream's position in the row keys: a fork's streams sort after ours.
        self.base = 0

    def fork(self, workdir: str) -> ScanTables | None:
        """A twin for a second process's streams; none with per-record rows (they are kept)."""
        if self.with_pel or self.view.records:
            return None
        twin = ScanTables(self.deep, False, self.view)
        twin.base = FORK_BASE
        return twin

    def join(self, later: StreamSink) -> None:
        assert isinstance(later, ScanTables)
        self.streams.absorb(later.streams)
        self.groups.absorb(later.groups)

    def add(self, s: StreamReport) -> None:
        i = self.base + self.streams.offered
        rank = worst_rank(s.findings)
        key = (-rank, -s.collision_count, -LAYOUT_RANK[s.layout], i)
        self.streams.offer(key, lambda: self._stream_row(s))
        buckets: list[Buckets] = []

        def once() -> Buckets:
            if not buckets:
                buckets.append(collision_buckets(s))
            return buckets[0]

        for j, (_, g) in enumerate(sorted(s.groups.items())):
            gkey = (-rank, -LAYOUT_RANK[g.layout], -g.pel_count, i, j)
            self.groups.offer(gkey, lambda g=g: _group_row(s, g, once()))  # type: ignore[misc]
        if self.view.records:
            self.collision_rows.extend(_collision_rows(s))
        if self.with_pel:
            self.pel_rows.extend(_pel_rows(s))

    def _stream_row(self, s: StreamReport) -> list[object]:
        r = s.records
        entries = [r["entry"]] if self.deep else []
        return [
            show(s.namespace),
            show(s.key),
            s.layout,
            s.metadata.size,
            *entries,
            f"{r['legacy_group']}/{r['legacy_consumer']}/{r['legacy_pel']}",
            f"{r['prefixed_group']}/{r['prefixed_consumer']}/{r['prefixed_pel']}",
            r["stale"],
            r["unknown"],
            s.collision_count,
            findings_cell(s.findings),
        ]

    def document(self, report: ScanReport) -> Document:
        doc = Document(f"kvfix scan {report.path}")
        digest = report.digest()
        scope_line(doc, report)
        _totals(doc, report)
        findings_summary(doc, digest, self.view)
        entries = ["entries"] if self.deep else []
        headers = ["namespace", "key", "layout", "size", *entries, "legacy g/c/pel", "prefixed g/c/pel", "stale"]
        headers += ["unknown", "collisions", "findings"]
        rows = self.streams.rows()
        capped_table(doc, "Streams, worst first", headers, rows, report.tally.streams, "streams")
        headers = ["namespace", "stream", "group", "layout", "pending", "pel", "last_delivered_id", "entries_read"]
        headers += ["lag", "consumers (pending)", "collisions (alias ids)"]
        capped_table(doc, "Groups, worst first", headers, self.groups.rows(), report.tally.groups, "groups")
        if self.view.records:
            doc.table(
                "Scan collisions: legacy records read as entries (one row per group and kind; JSON lists every record)",
                ["namespace", "stream", "group", "kind", "records", "alias ids", "releases", "scans"],
                self.collision_rows,
            )
        if self.with_pel:
            headers = ["namespace", "stream", "group", "layout", "id", "consumer", "deliveries"]
            doc.table("Pending entries", headers, self.pel_rows)
        next_steps(doc, digest, report.path)
        return doc


def _pel_rows(s: StreamReport) -> Iterator[list[object]]:
    """One row per PEL record of every group of one stream (--pel, --records)."""
    for _, g in sorted(s.groups.items()):
        for p in g.iter_pel():
            head = [show(s.namespace), show(s.key), label(g.name), g.layout]
            yield [*head, str(p.entry_id), show(p.value.consumer), p.value.delivery_count]


def pel_rows(report: ScanReport) -> Iterator[list[object]]:
    for s in report.streams:
        yield from _pel_rows(s)


def _totals(doc: Document, report: ScanReport) -> None:
    summary = report.summary()
    doc.line(
        f"mode {'deep' if report.deep else 'fast (entries not read: size is the metadata count)'} · "
        f"cluster slots {'yes' if report.cluster_slots else 'no'} · "
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


def _group_row(s: StreamReport, g: GroupInfo, buckets: Buckets) -> list[object]:
    v = g.value
    return [
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
        _collisions_cell(g, buckets),
    ]


#: Consumers named in a group's cell; the rest are counted.
FIRST_CONSUMERS = 4


def consumers_cell(g: GroupInfo) -> str:
    consumers = sorted(g.consumers.values(), key=lambda c: c.name)
    text = ", ".join(f"{label(c.name)}={c.pending}" for c in consumers[:FIRST_CONSUMERS])
    if len(consumers) > FIRST_CONSUMERS:
        text += f", … +{len(consumers) - FIRST_CONSUMERS:,}"
    return text or "-"


def _collisions_cell(g: GroupInfo, buckets: Buckets) -> str:
    mine = list(mine_of(g, buckets).values())
    if not mine:
        return "-"
    lo, hi = min(b.lo for b in mine), max(b.hi for b in mine)
    span = str(lo) if lo == hi else f"{lo}..{hi}"
    return f"{sum(b.records for b in mine):,} ({span})"


def collision_rows(report: ScanReport) -> list[list[object]]:
    """Collisions summed up per (stream, group, kind): a PEL of 10,000 is one row."""
    return [row for s in report.streams for row in _collision_rows(s)]


def _collision_rows(s: StreamReport) -> Iterator[list[object]]:
    for group, kinds in sorted(collision_buckets(s).items()):
        for kind, b in sorted(kinds.items()):
            scans = "; ".join([*b.scans, _OVER + b.span])
            row = [show(s.namespace), show(s.key), label(group), kind, b.records, b.span, ", ".join(b.releases)]
            yield [*row, scans]
