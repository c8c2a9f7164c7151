"""kvfix migrate: rewrite stream consumer-group records into another layout, without losing a byte."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kvfix.analysis.scope import Scope
from kvfix.cli.migrate_plan import MigrateRun, Planned, planned_run, saved_options
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
from kvfix.migrations import MIGRATIONS, for_target
from kvfix.migrations.base import ON_CONFLICT_CHOICES, PlanOptions
from kvfix.migrations.run import Applied, MigrationJob, RunResult, execute
from kvfix.progress import progress_for
from kvfix.render import render
from kvfix.render.migrate_report import list_document, list_json, plan_document
from kvfix.signals import NAMES
from kvfix.store.files import Fingerprint, fingerprint
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only
from kvfix.store.paths import DataDir, resolve
from kvfix.testpoints import reached
from kvfix.textsafe import counted, show_path


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
        to, on_conflict, cluster, scope = saved_options(plan_file)
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


def _dry_run(run: MigrateRun, save_plan: Path | None) -> int:
    """--dry-run: plan read-only (no LOCK), perhaps save the plan, show it; writes nothing."""
    with open_read_only(run.path) as db:
        planned = planned_run(run, db, resolve(run.path), None, save_plan)
    _show(run, planned, True)
    return 0


def _real_run(run: MigrateRun, plan_file: Path | None) -> int:
    """Holding the LOCK from planning to the report: plan, confirm, back up, write, verify, report."""
    data = resolve(run.path)
    with HeldLock(data.db) as lock:
        planned_files = fingerprint(data.db)
        planned, problems = _plan(run, data, lock, plan_file)
        try:
            if planned.plan.empty:
                return _nothing_to_write(run, data, planned, problems)
            backup_to = _confirm(run, data, planned)
            result = _write(run, data, lock, planned, planned_files, backup_to)
        finally:
            if planned.spool is not None:
                planned.spool.close()
        if not _report(run, planned, result):
            return 0
    release = "--target 2.9" if run.to == "legacy" else "--target 2.10"
    click.echo(f"kvfix: next: kvfix scan {show_path(run.path)} {release} (the release you will start)", err=True)
    return 0


def _plan(run: MigrateRun, data: DataDir, lock: HeldLock, plan_file: Path | None) -> tuple[Planned, list[str]]:
    """The plan (a read-only open under the LOCK), checked against --plan's file; with nothing to
    write, what verifying what an earlier (perhaps interrupted) run left found."""
    with open_read_only(data, lock=lock) as db:
        planned = planned_run(run, db, data, plan_file, None, keep=True)
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
    run: MigrateRun, data: DataDir, lock: HeldLock, planned: Planned, planned_files: Fingerprint, backup_to: Path | None
) -> RunResult:
    """Back up, write and verify (kvfix.migrations.run.execute), with a progress bar."""
    with progress_for("migrating") as progress:
        return execute(
            data,
            lock,
            MigrationJob(run.migration, planned.plan, run.options, planned.spool),
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
