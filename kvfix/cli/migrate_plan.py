"""migrate's planning pass as the command runs it: what the run shows, and its plan file.

One walk plans every stream and hands each stream's plan to what the run shows (the JSON
document, spooled; the --records rows) and to the plan file being written or compared,
then drops it (kvfix.migrations.tally keeps the summary).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.cli.options import resolve_format
from kvfix.errors import WriteRefused
from kvfix.migrations import planfile
from kvfix.migrations.base import Migration, Plan, PlanOptions
from kvfix.migrations.plan_parts import SecondPart
from kvfix.migrations.spool import WriteSpool
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.progress import progress_for
from kvfix.render.document import current_view
from kvfix.render.migrate_json import PlanJson
from kvfix.render.migrate_report import RecordRows
from kvfix.render.plan_outputs import PartOutputs
from kvfix.store.database import Database
from kvfix.store.paths import DataDir
from kvfix.textsafe import show_path


@dataclass(frozen=True)
class MigrateRun:
    """What a dry or a real run was asked for (--plan's saved options replace the command line's)."""

    path: str
    to: str
    fmt: str | None
    migration: Migration
    options: PlanOptions
    yes: bool
    backup_dir: Path | None
    no_backup: bool


class Shown:
    """What a run shows, fed each stream's plan while planning: the JSON document (spooled) or,
    with --records, the text rows of every rewrite; a summary needs neither."""

    def __init__(self, run: MigrateRun) -> None:
        view = current_view()
        self.json = self.rows = None
        if resolve_format(run.fmt) == "json":
            self.json = PlanJson(run.migration, show_path(run.path), view.records, view.pretty)
        elif view.records:
            self.rows = RecordRows()

    def add(self, sp: StreamPlan) -> None:
        if self.json is not None:
            self.json.add(sp)
        elif self.rows is not None:
            self.rows.add(sp)


def planned_run(
    run: MigrateRun, db: Database, data: DataDir, plan_file: Path | None, save_plan: Path | None, keep: bool = False
) -> Planned:
    """One walk: the plan's summary, what the run shows, a saved plan written or compared."""
    shown = Shown(run)
    header = plan_header(run, db.state()[0])
    check = None if plan_file is None else planfile.PlanFileCheck(plan_file, header)
    writer = None if save_plan is None else planfile.PlanFileWriter(save_plan)
    spool = WriteSpool() if keep else None

    def on_stream(sp: StreamPlan) -> None:
        shown.add(sp)
        if spool is not None:
            spool.add(run.migration.unit(sp))
        if check is not None:
            check.add(planfile.migration_lines(sp))
        if writer is not None:
            writer.add(planfile.migration_lines(sp))

    # Without --records rows, many streams may be planned in two processes.
    lines = writer if writer is not None else check
    parts = PartOutputs(shown.json, lines) if shown.json is not None or lines is not None else None
    second = SecondPart(run.migration, spool, keep, parts) if shown.rows is None else None
    try:
        with progress_for("planning") as progress:
            plan = run.migration.plan(db, run.options, current_view().limit, on_stream, progress, second)
        if writer is not None:
            writer.finish(header, plan_info(plan, data))
            click.echo(f"kvfix: plan saved to {show_path(writer.path)}; apply it with --plan", err=True)
        if check is not None:
            planfile.refuse_difference(check.path, check.finish(), "--dry-run --save-plan")
        if spool is not None:
            _finish_spool(spool)
    except BaseException:
        if writer is not None:
            writer.abort()
        if spool is not None:
            spool.close()
        raise
    return Planned(plan, shown, spool)


def _finish_spool(spool: WriteSpool) -> None:
    spool.finish()
    if spool.given_up is not None and not spool.usable:
        click.echo(
            f"kvfix: note: the writes kept from planning were given up ({spool.given_up}); "
            "they are planned again as they are written",
            err=True,
        )


@dataclass(frozen=True)
class Planned:
    plan: Plan
    shown: Shown
    #: A real run's writes, made while planning (kvfix.migrations.spool.WriteSpool).
    spool: WriteSpool | None = None


def plan_header(run: MigrateRun, identity: str) -> dict[str, Any]:
    """What applying a plan file compares."""
    options = run.options
    return {
        "command": "migrate",
        "migration": run.migration.id,
        "options": {
            "to": run.to,
            "on_conflict": options.on_conflict,
            "cluster": options.cluster,
            **({} if options.scope.everything else {"scope": options.scope.options()}),
        },
        "db_identity": identity,
    }


def plan_info(plan: Plan, data: DataDir) -> dict[str, Any]:
    """What a plan file's header holds for people."""
    assert plan.db_state is not None
    return {"db_path": data.shown(), "planned_at_sequence": str(plan.db_state[1]), "summary": plan.summary()}


def saved_options(plan_file: Path) -> tuple[str, str, bool | None, Scope]:
    header = planfile.read_header(plan_file)
    opts = header.get("options") or {}
    if header.get("command") != "migrate" or opts.get("to") not in ("prefixed", "legacy"):
        raise WriteRefused(f"{show_path(plan_file)}: not a migrate plan; nothing written")
    try:
        scope = saved_scope(opts.get("scope"))
    except (TypeError, ValueError, AttributeError) as exc:
        raise WriteRefused(f"{show_path(plan_file)}: its scope does not read ({exc}); nothing written") from None
    return opts["to"], opts.get("on_conflict", "refuse"), opts.get("cluster"), scope


def saved_scope(saved: dict[str, Any] | None) -> Scope:
    """The Scope a plan file's header records (Scope.options(): the filters in hex)."""
    if saved is None:
        return EVERYTHING
    ns, match = saved.get("namespace_hex"), saved.get("match_hex")
    return Scope(
        None if ns is None else bytes.fromhex(ns),
        frozenset(bytes.fromhex(k) for k in saved.get("streams_hex") or ()),
        None if match is None else bytes.fromhex(match),
    )
