"""migrate's plan and result as JSON (schema 2) and as a Document.

By default both are summaries: per stream (rewrites, drops, metadata change, conflicts)
and, in JSON, per group and kind.  Every rewrite and drop with its old and new key in hex
(exactly what a real run executes) comes with ``--records``.  A real run prints its
result once, not the plan again: the plan was shown before the confirmation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kvfix.migrations.base import Migration, Plan, Status, StreamPlan
from kvfix.migrations.run import RunResult
from kvfix.render.document import Document, View, current_view
from kvfix.render.jsonout import Lazy, safe_int, text_and_hex
from kvfix.render.summary import capped_table, more_line, top
from kvfix.textsafe import label, show, show_path

SCHEMA = 2


def _opt_hex(prefix: str, data: bytes | None) -> dict[str, Any]:
    return {prefix: None, f"{prefix}_hex": None} if data is None else text_and_hex(prefix, data)


def _by_group(s: StreamPlan) -> list[dict[str, Any]]:
    """Rewrites and drops counted per group and source kind (one object per group, not per record)."""
    groups: dict[bytes, dict[str, dict[str, int]]] = {}
    for what, items in (("rewrites", s.rewrites), ("drops", s.drops)):
        for r in items:
            counts = groups.setdefault(r.group, {"rewrites": {}, "drops": {}})[what]
            counts[r.kind] = counts.get(r.kind, 0) + 1
    return [{**text_and_hex("name", name), **counts} for name, counts in sorted(groups.items())]


def _record_lists(s: StreamPlan, seq: Callable[[Iterable[Any]], Any]) -> dict[str, Any]:
    """--records: every rewrite and drop, keys in hex (what the run executes)."""
    return {
        "rewrites": seq(
            {
                "kind": r.kind,
                **text_and_hex("group", r.group),
                "detail": r.detail,
                "old_key_hex": r.old_key.hex(),
                "new_key_hex": r.new_key.hex(),
                "value_sha256": r.value_sha256,
                "value_len": r.value_len,
            }
            for r in s.rewrites
        ),
        "drops": seq(
            {
                "kind": d.kind,
                **text_and_hex("group", d.group),
                "detail": d.detail,
                "key_hex": d.key.hex(),
                "value_sha256": d.value_sha256,
                "value_len": d.value_len,
                "reason": d.reason,
            }
            for d in s.drops
        ),
    }


def stream_plan_json(s: StreamPlan, lazy: bool = False, records: bool = False) -> dict[str, Any]:
    """One stream's plan; ``records`` adds every rewrite and drop, ``lazy`` yields them while dump() writes."""
    m = s.metadata
    out: dict[str, Any] = {
        **text_and_hex("namespace", s.namespace),
        **text_and_hex("key", s.key),
        "slot": s.slot,
        "version": str(s.version),
        "prefix_hex": s.prefix.hex(),
        "counts": {"rewrites": len(s.rewrites), "drops": len(s.drops), "records_after": len(s.expected)},
        "groups": _by_group(s),
        "metadata": None
        if m is None
        else {
            "key_hex": m.key.hex(),
            "old_hex": m.old.hex(),
            "new_hex": m.new.hex(),
            "group_number_old": safe_int(m.group_number_old),
            "group_number_new": safe_int(m.group_number_new),
        },
        "conflicts": [
            {**text_and_hex("group", c.group), "differences": list(c.differences), "resolution": c.resolution}
            for c in s.conflicts
        ],
        "notes": list(s.notes),
    }
    if records:
        out.update(_record_lists(s, Lazy if lazy else list))
    return out


def plan_json(
    m: Migration,
    plan: Plan,
    path: str,
    dry_run: bool,
    result: RunResult | None = None,
    lazy: bool = False,
    records: bool | None = None,
) -> dict[str, Any]:
    """The schema-2 document; ``records`` None takes --records from the view; ``lazy`` streams the streams."""
    records = current_view().records if records is None else records
    streams = (stream_plan_json(s, lazy, records) for s in plan.streams)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "path": path,
        "dry_run": dry_run,
        "records": records,
        "migration": {"id": m.id, "description": m.description, "source": plan.source, "target": plan.target},
        "on_conflict": plan.on_conflict,
        "cluster_slots": plan.cluster,
        "blocked": plan.blocked,
        "summary": plan.summary(),
        "streams": Lazy(streams) if lazy else list(streams),
        "skipped": [
            {**_opt_hex("namespace", k.namespace), **_opt_hex("key", k.key), "reason": k.reason, "records": k.records}
            for k in plan.skipped
        ],
        "backup": None,
        "result": None,
    }
    if not plan.scope.everything:
        out["scope"] = plan.scope.options()
    if result is not None:
        out["backup"] = None if result.backup is None else show_path(result.backup)
        out["result"] = {
            "streams_applied": result.applied.done,
            "streams_planned": result.applied.total,
            "interrupted": result.applied.interrupted,
            "stopped": result.applied.stopped,
            "verified": result.verified,
            "unverified_reason": result.unverified,
            "problems": list(result.problems),
            "foreign_files": list(result.foreign_files),
        }
    return out


def _where(s: StreamPlan) -> str:
    return f"{show(s.namespace)}/{show(s.key)}"


def plan_document(
    m: Migration, plan: Plan, path: str, dry_run: bool, result: RunResult | None = None, view: View | None = None
) -> Document:
    """The plan as a summary (totals, conflicts, streams worst first), or a real run's result without the plan."""
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
        _plan_tables(doc, plan, view)
    if result is not None:
        _result_lines(doc, result, view)
    return doc


def _plan_tables(doc: Document, plan: Plan, view: View) -> None:
    _conflicts_table(doc, plan, view)
    _streams_table(doc, plan, view)
    if plan.skipped:
        rows = [
            [f"{show(k.namespace or b'')}/{show(k.key or b'')}", k.records, k.reason]
            for k in (plan.skipped if view.limit == 0 else plan.skipped[: view.limit])
        ]
        capped_table(
            doc, "Skipped (left as they are)", ["stream", "records", "reason"], rows, len(plan.skipped), "skipped keys"
        )
    if view.records:
        _record_tables(doc, plan)
    elif not plan.empty:
        doc.line("every rewrite with its old and new key: --records (text or --format json)")


def _conflicts_table(doc: Document, plan: Plan, view: View) -> None:
    conflicts = [(i, s, c) for i, s in enumerate(plan.streams) for c in s.conflicts]
    if not conflicts:
        return
    rows: list[list[object]] = [
        [_where(s), label(c.group), c.resolution or "refused (use --on-conflict)", "; ".join(c.differences)]
        for _, s, c in top(conflicts, lambda x: (x[2].resolution is not None, x[0]), view)
    ]
    title = "Conflicts (group in both layouts), refused first"
    capped_table(doc, title, ["stream", "group", "resolution", "differences"], rows, len(conflicts), "conflicts")


def _kinds(s: StreamPlan) -> str:
    counts: dict[str, int] = {}
    for r in s.rewrites:
        role = r.kind.rsplit("_", 1)[-1]
        counts[role] = counts.get(role, 0) + 1
    return ", ".join(f"{counts[k]:,} {k}" for k in ("group", "consumer", "pel") if k in counts) or "-"


def _streams_table(doc: Document, plan: Plan, view: View) -> None:
    def key(item: tuple[int, StreamPlan]) -> tuple[int, ...]:
        i, s = item
        refused = sum(c.resolution is None for c in s.conflicts)
        return (-refused, -len(s.conflicts), -len(s.drops), -len(s.rewrites), i)

    rows = [
        [
            _where(s),
            len(s.rewrites),
            _kinds(s),
            len(s.drops),
            "-" if s.metadata is None else f"{s.metadata.group_number_old} -> {s.metadata.group_number_new}",
            ", ".join(f"{label(c.group)}: {c.resolution or 'REFUSED'}" for c in s.conflicts) or "-",
            "; ".join(s.notes) or "-",
        ]
        for _, s in top(enumerate(plan.streams), key, view)
    ]
    headers = ["stream", "rewrites", "by kind", "drops", "group_number", "conflicts", "notes"]
    capped_table(doc, "Streams to migrate, worst first", headers, rows, len(plan.streams), "streams")


def _record_tables(doc: Document, plan: Plan) -> None:
    """--records: every rewrite and drop (old key -> new key in hex)."""
    doc.table(
        "Rewrites (old key -> new key, value unchanged)",
        ["stream", "kind", "group", "record", "old key", "new key", "value sha256"],
        [
            [_where(s), r.kind, show(r.group), r.detail, r.old_key.hex(), r.new_key.hex(), r.value_sha256[:16]]
            for s in plan.streams
            for r in s.rewrites
        ],
    )
    if any(s.drops for s in plan.streams):
        doc.table(
            "Drops (deleted; kept in the backup)",
            ["stream", "kind", "group", "record", "key", "reason"],
            [
                [_where(s), d.kind, show(d.group), d.detail, d.key.hex(), d.reason]
                for s in plan.streams
                for d in s.drops
            ],
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
