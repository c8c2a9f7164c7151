"""kvfix migrate: rewrite stream consumer-group records into another layout, without losing a byte."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.cli.options import cluster_option, emit, handle_errors, resolve_format, scope_options, summary_output_options
from kvfix.cli.writing import (
    backup_location,
    check_write_options,
    confirm_or_refuse,
    plan_file_options,
    raise_for_run,
    remove_leftover_config,
    restore_hint,
    stdin_is_terminal,
    write_options,
)
from kvfix.errors import Interrupted, VerifyFailed, WriteRefused
from kvfix.migrations import MIGRATIONS, for_target, planfile
from kvfix.migrations.base import ON_CONFLICT_CHOICES, Migration, Plan, PlanOptions
from kvfix.migrations.run import Applied, MigrationJob, RunResult, execute
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.progress import progress_for
from kvfix.render import render
from kvfix.render.document import current_view
from kvfix.render.migrate_json import PlanJson
from kvfix.render.migrate_report import RecordRows, list_document, list_json, plan_document
from kvfix.signals import NAMES
from kvfix.store.database import Database
from kvfix.store.files import Fingerprint, fingerprint
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only
from kvfix.store.paths import DataDir, resolve
from kvfix.testpoints import reached
from kvfix.textsafe import counted, show_path


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


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "--to",
    "to",
    type=click.Choice(["prefixed", "legacy"]),
    default="prefixed",
    show_default=True,
    help="Target layout: prefixed (Kvrocks >= 2.10.1) or legacy (roll back to 2.8/2.9).",
)
@click.option(
    "--on-conflict",
    type=click.Choice(ON_CONFLICT_CHOICES),
    default="refuse",
    show_default=True,
    help="A group in both layouts: refuse, or keep one side (the other side's records are deleted).",
)
@click.option("--list", "list_only", is_flag=True, help="List known migrations and whether each applies to PATH.")
@plan_file_options
@write_options
@summary_output_options
@cluster_option
@scope_options
@handle_errors
def migrate(
    path: str,
    to: str,
    on_conflict: str,
    list_only: bool,
    save_plan: Path | None,
    plan_file: Path | None,
    yes: bool,
    dry_run: bool,
    backup_dir: Path | None,
    no_backup: bool,
    fmt: str | None,
    cluster: bool | None,
    scope: Scope,
) -> int:
    """Move stream consumer-group records of PATH (a Kvrocks dir or dir/db) into one layout.

    Refuses a database held by a running server and holds its LOCK until the end.
    Backs up the original files first, writes one atomic synced batch per stream, then
    re-reads and verifies.  --dry-run prints the exact plan and changes nothing.

    \b
    Examples:
      kvfix migrate /var/lib/kvrocks --dry-run --save-plan plan.jsonl
      kvfix migrate /var/lib/kvrocks --plan plan.jsonl
      kvfix migrate /var/lib/kvrocks --to legacy --yes     # roll back to 2.9
    """
    _validate_options(save_plan, plan_file, dry_run, backup_dir, no_backup)
    if plan_file is not None:
        to, on_conflict, cluster, scope = _saved_options(plan_file)
    if list_only:
        return _list(path, fmt, cluster)
    migration = for_target(to)  # type: ignore[arg-type]
    options = PlanOptions(on_conflict, cluster, scope)  # type: ignore[arg-type]
    run = MigrateRun(path, to, fmt, migration, options, yes, backup_dir, no_backup)
    if dry_run:
        return _dry_run(run, save_plan)
    return _real_run(run, plan_file)


def _validate_options(
    save_plan: Path | None, plan_file: Path | None, dry_run: bool, backup_dir: Path | None, no_backup: bool
) -> None:
    """The usage errors, in the order they are checked."""
    check_write_options(backup_dir, no_backup)
    if save_plan is not None and not dry_run:
        raise click.UsageError("--save-plan goes with --dry-run (a real run applies a saved plan with --plan)")
    if plan_file is not None and dry_run:
        raise click.UsageError("--plan applies a saved plan; it does not go with --dry-run")


def _list(path: str, fmt: str | None, cluster: bool | None) -> int:
    """--list: every known migration, and whether it (or its revert) applies to PATH."""
    with open_read_only(path) as db:
        rows = [(m, m.status(db, cluster), m.revert().status(db, cluster)) for m in MIGRATIONS]
    emit(fmt, lambda: list_document(show_path(path), rows), lambda: list_json(show_path(path), rows))
    return 0


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


def _planned(run: MigrateRun, db: Database, data: DataDir, plan_file: Path | None, save_plan: Path | None) -> Planned:
    """One walk: the plan's summary, what the run shows, a saved plan written or compared."""
    shown = Shown(run)
    header = _plan_header(run, db.state()[0])
    check = None if plan_file is None else planfile.PlanFileCheck(plan_file, header)
    writer = None if save_plan is None else planfile.PlanFileWriter(save_plan)

    def on_stream(sp: StreamPlan) -> None:
        shown.add(sp)
        if check is not None:
            check.add(planfile.migration_lines(sp))
        if writer is not None:
            writer.add(planfile.migration_lines(sp))

    try:
        with progress_for("planning") as progress:
            plan = run.migration.plan(db, run.options, current_view().limit, on_stream, progress)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.finish(header, _plan_info(plan, data))
        click.echo(f"kvfix: plan saved to {show_path(writer.path)}; apply it with --plan", err=True)
    if check is not None:
        planfile.refuse_difference(check.path, check.finish(), "--dry-run --save-plan")
    return Planned(plan, shown)


@dataclass(frozen=True)
class Planned:
    plan: Plan
    shown: Shown


def _dry_run(run: MigrateRun, save_plan: Path | None) -> int:
    """--dry-run: plan read-only (no LOCK), perhaps save the plan, show it; writes nothing."""
    with open_read_only(run.path) as db:
        planned = _planned(run, db, resolve(run.path), None, save_plan)
    _show(run, planned, True)
    return 0


def _real_run(run: MigrateRun, plan_file: Path | None) -> int:
    """Holding the LOCK from planning to the report: plan, confirm, back up, write, verify, report."""
    data = resolve(run.path)
    with HeldLock(data.db) as lock:
        planned_files = fingerprint(data.db)
        planned, problems = _plan(run, data, lock, plan_file)
        if planned.plan.empty:
            return _nothing_to_write(run, data, planned, problems)
        backup_to = _confirm(run, data, planned)
        result = _write(run, data, lock, planned.plan, planned_files, backup_to)
        if not _report(run, planned, result):
            return 0
    release = "--target 2.9" if run.to == "legacy" else "--target 2.10"
    click.echo(f"kvfix: next: kvfix scan {show_path(run.path)} {release} (the release you will start)", err=True)
    return 0


def _plan(run: MigrateRun, data: DataDir, lock: HeldLock, plan_file: Path | None) -> tuple[Planned, list[str]]:
    """The plan (a read-only open under the LOCK), checked against --plan's file; with nothing to
    write, what verifying what an earlier (perhaps interrupted) run left found."""
    with open_read_only(data, lock=lock) as db:
        planned = _planned(run, db, data, plan_file, None)
        reached("plan")
        problems = run.migration.verify(db, planned.plan, None) if planned.plan.empty else []
    return planned, problems


def _nothing_to_write(run: MigrateRun, data: DataDir, planned: Planned, problems: list[str]) -> int:
    """A real run with an empty plan: still removes a leftover config file, shows the plan and verifies."""
    remove_leftover_config(data)
    # JSON's result: nothing planned, nothing written, and what the verification found.
    result = RunResult(backup=None, applied=Applied(0, 0), problems=tuple(problems))
    _show(run, planned, False, json_result=result)
    if problems:
        raise VerifyFailed(f"verification failed: {problems[0]} ({counted(len(problems), 'problem')})")
    click.echo(
        f"kvfix: nothing to migrate; verified: no live stream holds {planned.plan.source} group records", err=True
    )
    return 0


def _confirm(run: MigrateRun, data: DataDir, planned: Planned) -> Path | None:
    """Refuse an unresolved conflict, check the backup location, show the plan (on a terminal), ask."""
    plan = planned.plan
    _refuse_blocked(run, planned)
    backup_to = backup_location(data, run.backup_dir, run.no_backup)
    if not run.yes and stdin_is_terminal() and resolve_format(run.fmt) != "json":
        doc = plan_document(run.migration, plan, show_path(run.path), True, records=planned.shown.rows)
        render(doc, resolve_format(run.fmt))
    sm = plan.summary()
    confirm_or_refuse(
        f"Rewrite {sm['rewrites']} records and drop {sm['drops']} in {sm['streams_to_migrate']} streams "
        f"of {data.shown()}?",
        run.yes,
    )
    return backup_to


def _write(
    run: MigrateRun, data: DataDir, lock: HeldLock, plan: Plan, planned_files: Fingerprint, backup_to: Path | None
) -> RunResult:
    """Back up, write and verify (kvfix.migrations.run.execute), with a progress bar."""
    with progress_for("migrating") as progress:
        return execute(
            data,
            lock,
            MigrationJob(run.migration, plan, run.options),
            planned_files=planned_files,
            backup_to=backup_to,
            on_backup=lambda saved: click.echo(f"kvfix: {restore_hint(data, saved)}", err=True),
            progress=progress,
        )


def _report(run: MigrateRun, planned: Planned, result: RunResult) -> bool:
    """The result (the LOCK is still held), then raise unless every stream was written and verified;
    False when a signal cut the report short after a complete run."""
    try:
        _show(run, planned, False, result)
    except Interrupted as exc:  # the work is done: only the report was cut short
        raise_for_run(result)
        click.echo(
            f"\nkvfix: all {result.applied.done} streams written and verified; "
            f"the report was interrupted ({NAMES.get(exc.signum, 'a signal')})",
            err=True,
        )
        return False
    raise_for_run(result)
    return True


def _show(
    run: MigrateRun,
    planned: Planned,
    dry_run: bool,
    result: RunResult | None = None,
    json_result: RunResult | None = None,
) -> None:
    """The plan (a dry run's, a refused or an empty real run's) or a real run's result;
    ``json_result`` goes to JSON only."""
    shown = planned.shown
    if shown.json is not None:
        shown.json.write(sys.stdout, planned.plan, dry_run, result or json_result)
        return
    doc = plan_document(run.migration, planned.plan, show_path(run.path), dry_run, result, records=shown.rows)
    render(doc, resolve_format(run.fmt))


def _refuse_blocked(run: MigrateRun, planned: Planned) -> None:
    plan = planned.plan
    if not plan.blocked:
        return
    _show(run, planned, False)  # a real run, refused: not a dry run
    n = plan.counts["unresolved_conflicts"]
    named = ", ".join(plan.refused) + (", …" if n > len(plan.refused) else "")
    raise WriteRefused(
        f"{counted(n, 'group')} {'exists' if n == 1 else 'exist'} in both layouts "
        f"({named}); nothing written; "
        "choose --on-conflict keep-prefixed or keep-legacy (the other side's records are deleted)"
    )


def _plan_header(run: MigrateRun, identity: str) -> dict[str, Any]:
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


def _plan_info(plan: Plan, data: DataDir) -> dict[str, Any]:
    """What a plan file's header holds for people."""
    assert plan.db_state is not None
    return {"db_path": data.shown(), "planned_at_sequence": str(plan.db_state[1]), "summary": plan.summary()}


def _saved_options(plan_file: Path) -> tuple[str, str, bool | None, Scope]:
    header = planfile.read_header(plan_file)
    opts = header.get("options") or {}
    if header.get("command") != "migrate" or opts.get("to") not in ("prefixed", "legacy"):
        raise WriteRefused(f"{show_path(plan_file)}: not a migrate plan; nothing written")
    try:
        scope = _saved_scope(opts.get("scope"))
    except (TypeError, ValueError, AttributeError) as exc:
        raise WriteRefused(f"{show_path(plan_file)}: its scope does not read ({exc}); nothing written") from None
    return opts["to"], opts.get("on_conflict", "refuse"), opts.get("cluster"), scope


def _saved_scope(saved: dict[str, Any] | None) -> Scope:
    """The Scope a plan file's header records (Scope.options(): the filters in hex)."""
    if saved is None:
        return EVERYTHING
    ns, match = saved.get("namespace_hex"), saved.get("match_hex")
    return Scope(
        None if ns is None else bytes.fromhex(ns),
        frozenset(bytes.fromhex(k) for k in saved.get("streams_hex") or ()),
        None if match is None else bytes.fromhex(match),
    )
