"""migrate's plan and result as JSON (schema 2), written as planning goes.

Each stream's object is encoded when the stream is planned and waits in a temporary
file (in memory while small) until the plan's totals are known; then the document is
written: its head, the streams, the totals and the result.  Per stream it holds counts
per group and kind; every rewrite and drop with its old and new key in hex comes with
``--records``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from kvfix.migrations.base import Migration, Plan
from kvfix.migrations.plan_parts import PlanSink
from kvfix.migrations.run import RunResult
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.render.jsonout import DocumentWriter, ElementSpool, Lazy, safe_int, text_and_hex
from kvfix.textsafe import show_path

SCHEMA = 2


def _opt_hex(prefix: str, data: bytes | None) -> dict[str, Any]:
    return {prefix: None, f"{prefix}_hex": None} if data is None else text_and_hex(prefix, data)


def _by_group(s: StreamPlan) -> list[dict[str, Any]]:
    """Rewrites and drops counted per group and source kind (one object per group, not per record)."""
    return [{**text_and_hex("name", name), "rewrites": rw, "drops": dr} for name, rw, dr in s.by_group()]


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
            for r in s.rewrites()
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
            for d in s.drops()
        ),
    }


def stream_plan_json(s: StreamPlan, records: bool = False) -> dict[str, Any]:
    """One stream's plan; ``records`` adds every rewrite and drop."""
    m = s.metadata
    out: dict[str, Any] = {
        **text_and_hex("namespace", s.namespace),
        **text_and_hex("key", s.key),
        "slot": s.slot,
        "version": str(s.version),
        "prefix_hex": s.prefix.hex(),
        "counts": {"rewrites": s.rewrite_count, "drops": s.drop_count, "records_after": s.records_after},
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
        out.update(_record_lists(s, Lazy))
    return out


def _result_json(result: RunResult) -> dict[str, Any]:
    return {
        "streams_applied": result.applied.done,
        "streams_planned": result.applied.total,
        "interrupted": result.applied.interrupted,
        "stopped": result.applied.stopped,
        "verified": result.verified,
        "unverified_reason": result.unverified,
        "problems": list(result.problems),
        "foreign_files": list(result.foreign_files),
    }


class PlanJson:
    """The schema-2 document of one run: fed each stream's plan while planning, written once at the end."""

    def __init__(self, m: Migration, path: str, records: bool, pretty: bool) -> None:
        self.m, self.path, self.records, self.pretty = m, path, records, pretty
        self._spool = ElementSpool(pretty)

    def add(self, sp: StreamPlan) -> None:
        self._spool.add(stream_plan_json(sp, self.records))

    def fork(self, workdir: str) -> PlanJson:
        """An empty document part for a second process's streams, in a file of ``workdir`` (it pickles)."""
        twin = PlanJson.__new__(PlanJson)
        twin.m, twin.path, twin.records, twin.pretty = self.m, self.path, self.records, self.pretty
        twin._spool = ElementSpool(self.pretty, Path(workdir) / "plan-streams.json")
        return twin

    def join(self, later: PlanSink) -> None:
        """Its streams after ours (they all sort after them)."""
        assert isinstance(later, PlanJson)
        self._spool.extend(later._spool)

    def write(self, out: IO[str], plan: Plan, dry_run: bool, result: RunResult | None = None) -> None:
        m = self.m
        doc = DocumentWriter(out, self.pretty)
        head = {
            "schema": SCHEMA,
            "path": self.path,
            "dry_run": dry_run,
            "records": self.records,
            "migration": {"id": m.id, "description": m.description, "source": plan.source, "target": plan.target},
            "on_conflict": plan.on_conflict,
            "cluster_slots": plan.cluster,
        }
        for key, value in head.items():
            doc.member(key, value)
        doc.open_array("streams")
        self._spool.copy_to(doc)
        doc.close_array()
        for key, value in self._tail(plan, result).items():
            doc.member(key, value)
        doc.close()

    @staticmethod
    def _tail(plan: Plan, result: RunResult | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "blocked": plan.blocked,
            "summary": plan.summary(),
            "skipped": [
                {
                    **_opt_hex("namespace", k.namespace),
                    **_opt_hex("key", k.key),
                    "reason": k.reason,
                    "records": k.records,
                }
                for k in plan.skipped
            ],
            "backup": None if result is None or result.backup is None else show_path(result.backup),
            "result": None if result is None else _result_json(result),
        }
        if not plan.scope.everything:
            out["scope"] = plan.scope.options()
        return out
