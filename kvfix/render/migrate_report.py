"""migrate's plan and result as a Document (the JSON is :mod:`kvfix.render.migrate_json`).

By default a summary: totals, conflicts refused first, the streams worst first, what is
left alone.  Every rewrite and drop with its old and new key in hex (exactly what a real
run executes) comes with ``--records``, listed row by row.  A real run prints its result
once, not the plan again: the plan was shown before the confirmation.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Any

from kvfix.migrations.base import Migration, Plan, Status
from kvfix.migrations.run import RunResult
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.render.document import Document, View, current_view
from kvfix.render.migrate_json import SCHEMA
from kvfix.render.summary import capped_table, more_line
from kvfix.textsafe import label, show, show_path


def _where(namespace: bytes, key: bytes) -> str:
    return f"{show(namespace)}/{show(key)}"


class RecordRows:
    """--records as text: every rewrite and drop as a row, kept in a temporary file (in memory
    while small) while planning and listed row by row, never as one table in memory."""

    def __init__(self) -> None:
        self.rewrites = _RowSpool()
        self.drops = _RowSpool()

    def add(self, sp: StreamPlan) -> None:
        where = _where(sp.namespace, sp.key)
        for r in sp.rewrites():
            row = [where, r.kind, show(r.group), r.detail, r.old_key.hex(), r.new_key.hex(), r.value_sha256[:16]]
            self.rewrites.add(row)
        for d in sp.drops():
            self.drops.add([where, d.kind, show(d.group), d.detail, d.key.hex(), d.reason])


class _RowSpool:
    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", encoding="utf-8")  # noqa: SIM115
        self.count = 0

    def add(self, row: list[str]) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.count += 1

    def __iter__(self) -> Iterator[list[object]]:
        self._file.seek(0)
        for line in self._file:
            yield json.loads(line)
        self._file.seek(0, 2)


def plan_document(
    m: Migration,
    plan: Plan,
    path: str,
    dry_run: bool,
    result: RunResult | None = None,
    view: View | None = None,
    records: RecordRows | None = None,
) -> Document:
    """The plan as a summary (totals, conflicts, streams worst first), or a real run's result
    without the plan; ``records`` (with --records) lists every rewrite and drop."""
    view = view or current_view()
    doc = Document(f"kvfix migrate {path} --to {plan.target}{' --dry-run' if dry_run else ''}")
    sm = plan.summary()
    doc.line(f"migration {m.id}: {m.description}")
    if not plan.scope.everything:
        doc.line(f"scope: {plan.scope.describe()} (only these streams are planned and moved)")
    doc.line(
        f"{sm['streams']:,} streams: {sm['streams_to_migrate']:,} to migrate, "
        f"{sm['streams_in_target_layout']:,} already {plan.target}, {sm['streams_without_groups']:,} without groups"
    )
    doc.line(
        f"{sm['rewrites']:,} rewrites · {sm['drops']:,} drops · {sm['metadata_updates']:,} metadata updates · "
        f"{sm['conflicts']:,} conflicts ({sm['unresolved_conflicts']:,} unresolved)"
    )
    if plan.empty:
        doc.line(f"nothing to do: no live stream holds {plan.source} group records")
    if result is None or view.records:
        _plan_tables(doc, plan, view, records)
    if result is not None:
        _result_lines(doc, result, view)
    return doc


def _plan_tables(doc: Document, plan: Plan, view: View, records: RecordRows | None) -> None:
    _conflicts_table(doc, plan)
    _streams_table(doc, plan)
    if plan.skipped:
        shown = plan.skipped if view.limit == 0 else plan.skipped[: view.limit]
        rows = [[_where(k.namespace or b"", k.key or b""), k.records, k.reason] for k in shown]
        total = plan.counts["skipped"]
        capped_table(doc, "Skipped (left as they are)", ["stream", "records", "reason"], rows, total, "skipped keys")
    if records is not None:
        _record_listings(doc, records)
    elif not plan.empty:
        doc.line("every rewrite with its old and new key: --records (text or --format json)")


def _conflicts_table(doc: Document, plan: Plan) -> None:
    if not plan.counts["conflicts"]:
        return
    rows: list[list[object]] = [
        [_where(c.namespace, c.key), label(c.conflict.group), c.conflict.resolution or "refused (use --on-conflict)",
         "; ".join(c.conflict.differences)]
        for c in plan.conflicts
    ]  # fmt: skip
    title = "Conflicts (group in both layouts), refused first"
    headers = ["stream", "group", "resolution", "differences"]
    capped_table(doc, title, headers, rows, plan.counts["conflicts"], "conflicts")


def _streams_table(doc: Document, plan: Plan) -> None:
    rows: list[list[object]] = [
        [_where(s.namespace, s.key), s.rewrites, s.by_kind, s.drops, s.group_number, s.conflicts, s.notes]
        for s in plan.top
    ]
    headers = ["stream", "rewrites", "by kind", "drops", "group_number", "conflicts", "notes"]
    capped_table(doc, "Streams to migrate, worst first", headers, rows, plan.counts["streams_to_migrate"], "streams")


def _record_listings(doc: Document, records: RecordRows) -> None:
    """--records: every rewrite and drop (old key -> new key in hex), listed row by row."""
    doc.listing(
        f"Rewrites (old key -> new key, value unchanged) ({records.rewrites.count:,})",
        ["stream", "kind", "group", "record", "old key", "new key", "value sha256"],
        records.rewrites,
    )
    if records.drops.count:
        doc.listing(
            f"Drops (deleted; kept in the backup) ({records.drops.count:,})",
            ["stream", "kind", "group", "record", "key", "reason"],
            records.drops,
        )


def _result_lines(doc: Document, result: RunResult, view: View) -> None:
    doc.line(f"backup: {show_path(result.backup) if result.backup is not None else 'none (--no-backup)'}")
    a = result.applied
    state = f"stopped: {a.stopped}" if a.stopped else "done"
    verdict = "ok" if result.verified else "FAILED" if result.problems else f"not run ({result.unverified})"
    doc.line(f"applied {a.done:,} of {a.total:,} streams ({state}); verify: {verdict}")
    shown = result.problems if view.records or view.fits(len(result.problems)) else result.problems[: view.limit]
    for p in shown:
        doc.line(f"problem: {p}")
    more = more_line(len(result.problems), len(shown), "problems")
    if more:
        doc.line(more)


def list_json(path: str, rows: list[tuple[Migration, Status, Status]]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "path": path,
        "migrations": [
            {
                "id": m.id,
                "description": m.description,
                "source": m.source,
                "target": m.target,
                "applies": up.applies,
                "streams": up.streams,
                "revert": {"id": m.revert().id, "applies": down.applies, "streams": down.streams},
                "current": up.detail,
            }
            for m, up, down in rows
        ],
    }


def list_document(path: str, rows: list[tuple[Migration, Status, Status]]) -> Document:
    doc = Document(f"kvfix migrate --list {path}")
    for _, up, _ in rows[:1]:
        doc.line(f"current: {up.detail}")
    doc.table(
        "Migrations",
        ["id", "description", "applies (--to target)", "revert applies"],
        [
            [
                m.id,
                m.description,
                f"yes: {up.streams} streams (--to {m.target})" if up.applies else "no",
                f"yes: {down.streams} streams (--to {m.source})" if down.applies else "no",
            ]
            for m, up, down in rows
        ],
    )
    return doc
