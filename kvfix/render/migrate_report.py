"""migrate's plan and result as JSON (schema 1) and as a Document.

The JSON lists every rewrite with hex keys: what ``--dry-run`` prints is exactly what a
real run executes (the real run prints the same plan plus its result).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kvfix.migrations.base import Migration, Plan, Status, StreamPlan
from kvfix.migrations.run import RunResult
from kvfix.render.document import Document
from kvfix.render.jsonout import Lazy, text_and_hex
from kvfix.textsafe import show, show_path

SCHEMA = 1


def _opt_hex(prefix: str, data: bytes | None) -> dict[str, Any]:
    return {prefix: None, f"{prefix}_hex": None} if data is None else text_and_hex(prefix, data)


def stream_plan_json(s: StreamPlan, lazy: bool = False) -> dict[str, Any]:
    """One stream's plan; ``lazy`` yields its rewrites and drops only while dump() writes them."""
    m = s.metadata
    seq: Callable[[Iterable[Any]], Any] = Lazy if lazy else list
    return {
        **text_and_hex("namespace", s.namespace),
        **text_and_hex("key", s.key),
        "slot": s.slot,
        "version": s.version,
        "prefix_hex": s.prefix.hex(),
        "counts": {"rewrites": len(s.rewrites), "drops": len(s.drops), "records_after": len(s.expected)},
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
        "metadata": None
        if m is None
        else {
            "key_hex": m.key.hex(),
            "old_hex": m.old.hex(),
            "new_hex": m.new.hex(),
            "group_number_old": m.group_number_old,
            "group_number_new": m.group_number_new,
        },
        "conflicts": [
            {**text_and_hex("group", c.group), "differences": list(c.differences), "resolution": c.resolution}
            for c in s.conflicts
        ],
        "notes": list(s.notes),
    }


def plan_json(
    m: Migration, plan: Plan, path: str, dry_run: bool, result: RunResult | None = None, lazy: bool = False
) -> dict[str, Any]:
    """The schema-1 document; ``lazy`` builds each stream's records only while dump() writes them."""
    streams = (stream_plan_json(s, lazy) for s in plan.streams)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "path": path,
        "dry_run": dry_run,
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


def plan_document(m: Migration, plan: Plan, path: str, dry_run: bool, result: RunResult | None = None) -> Document:
    doc = Document(f"kvfix migrate {path} --to {plan.target}{' --dry-run' if dry_run else ''}")
    sm = plan.summary()
    doc.line(f"migration {m.id}: {m.description}")
    doc.line(
        f"{sm['streams']} streams: {sm['streams_to_migrate']} to migrate, "
        f"{sm['streams_in_target_layout']} already {plan.target}, {sm['streams_without_groups']} without groups"
    )
    doc.line(
        f"{sm['rewrites']} rewrites · {sm['drops']} drops · {sm['metadata_updates']} metadata updates · "
        f"{sm['conflicts']} conflicts ({sm['unresolved_conflicts']} unresolved)"
    )
    if plan.empty:
        doc.line(f"nothing to do: no live stream holds {plan.source} group records")
    doc.table(
        "Streams",
        ["stream", "rewrites", "drops", "group_number", "conflicts", "notes"],
        [
            [
                _where(s),
                len(s.rewrites),
                len(s.drops),
                "-" if s.metadata is None else f"{s.metadata.group_number_old} -> {s.metadata.group_number_new}",
                ", ".join(f"{show(c.group)}: {c.resolution or 'REFUSED'}" for c in s.conflicts) or "-",
                "; ".join(s.notes) or "-",
            ]
            for s in plan.streams
        ],
    )
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
    conflicts = [(s, c) for s in plan.streams for c in s.conflicts]
    if conflicts:
        doc.table(
            "Conflicts (group in both layouts)",
            ["stream", "group", "resolution", "differences"],
            [
                [_where(s), show(c.group), c.resolution or "refused (use --on-conflict)", "; ".join(c.differences)]
                for s, c in conflicts
            ],
        )
    if plan.skipped:
        doc.table(
            "Skipped (left as they are)",
            ["stream", "records", "reason"],
            [[f"{show(k.namespace or b'')}/{show(k.key or b'')}", k.records, k.reason] for k in plan.skipped],
        )
    if result is not None:
        doc.line(f"backup: {show_path(result.backup) if result.backup is not None else 'none (--no-backup)'}")
        a = result.applied
        state = f"stopped: {a.stopped}" if a.stopped else "done"
        verdict = "ok" if result.verified else "FAILED" if result.problems else f"not run ({result.unverified})"
        doc.line(f"applied {a.done} of {a.total} streams ({state}); verify: {verdict}")
        for p in result.problems:
            doc.line(f"problem: {p}")
    return doc


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
