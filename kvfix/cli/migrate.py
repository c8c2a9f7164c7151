"""kvfix migrate: rewrite stream consumer-group records into another layout, without losing a byte."""

from __future__ import annotations

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
from kvfix.progress import progress_for
from kvfix.render import render
from kvfix.render.migrate_report import list_document, list_json, plan_document, plan_json
from kvfix.signals import NAMES
from kvfix.store.database import Database
from kvfix.store.files import Fingerprint, fingerprint
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only
from kvfix.store.paths import DataDir, resolve
from kvfix.testpoints import reached
from kvfix.textsafe import counted, show, show_path


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


def _dry_run(run: MigrateRun, save_plan: Path | None) -> int:
    """--dry-run: plan read-only (no LOCK), perhaps save the plan, show it; writes nothing."""
    with open_read_only(run.path) as db:
        plan = run.migration.plan(db, run.options)
        identity = db.state()[0]
    if save_plan is not None:
        header, info = _plan_header(run, plan, identity, resolve(run.path))
        planfile.save(save_plan, header, info, planfile.migration_lines(plan), planfile.migration_lines(plan))
        click.echo(f"kvfix: plan saved to {show_path(save_plan)}; apply it with --plan", err=True)
    _show(run, plan, True)
    return 0


def _real_run(run: MigrateRun, plan_file: Path | None) -> int:
    """Holding the LOCK from planning to the report: plan, confirm, back up, write, verify, report."""
    data = resolve(run.path)
    with HeldLock(data.db) as lock:
        planned_files = fingerprint(data.db)
        plan, problems = _plan(run, data, lock, plan_file)
        if plan.empty:
            return _nothing_to_write(run, data, plan, problems)
        backup_to = _confirm(run, data, plan)
        result = _write(run, data, lock, plan, planned_files, backup_to)
        if not _report(run, plan, result):
            return 0
    release = "--target 2.9" if run.to == "legacy" else "--target 2.10"
    click.echo(f"kvfix: next: kvfix scan {show_path(run.path)} {release} (the release you will start)", err=True)
    return 0


def _plan(run: MigrateRun, data: DataDir, lock: HeldLock, plan_file: Path | None) -> tuple[Plan, list[str]]:
    """The plan (a read-only open under the LOCK), checked against --plan's file; with nothing to
    write, what verifying what an earlier (perhaps interrupted) run left found."""
    with open_read_only(data, lock=lock) as db:
        plan = run.migration.plan(db, run.options)
        reached("plan")
        if plan_file is not None:
            _check_saved(plan_file, run, plan, db, data)
        problems = run.migration.verify(db, plan, None) if plan.empty else []
    return plan, problems


def _nothing_to_write(run: MigrateRun, data: DataDir, plan: Plan, problems: list[str]) -> int:
    """A real run with an empty plan: still removes a leftover config file, shows the plan and verifies."""
    remove_leftover_config(data)
    # JSON's result: nothing planned, nothing written, and what the verification found.
    result = RunResult(backup=None, applied=Applied(0, 0), problems=tuple(problems))
    _show(run, plan, False, json_result=result)
    if problems:
        raise VerifyFailed(f"verification failed: {problems[0]} ({counted(len(problems), 'problem')})")
    click.echo(f"kvfix: nothing to migrate; verified: no live stream holds {plan.source} group records", err=True)
    return 0


def _confirm(run: MigrateRun, data: DataDir, plan: Plan) -> Path | None:
    """Refuse an unresolved conflict, check the backup location, show the plan (on a terminal), ask."""
    _refuse_blocked(run, plan)
    backup_to = backup_location(data, run.backup_dir, run.no_backup)
    if not run.yes and stdin_is_terminal() and resolve_format(run.fmt) != "json":
        render(plan_document(run.migration, plan, show_path(run.path), True), resolve_format(run.fmt))
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


def _report(run: MigrateRun, plan: Plan, result: RunResult) -> bool:
    """The result (the LOCK is still held), then raise unless every stream was written and verified;
    False when a signal cut the report short after a complete run."""
    path = show_path(run.path)
    try:
        emit(
            run.fmt,
            lambda: plan_document(run.migration, plan, path, False, result),
            lambda: plan_json(run.migration, plan, path, False, result, lazy=True),
        )
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


def _show(run: MigrateRun, plan: Plan, dry_run: bool, json_result: RunResult | None = None) -> None:
    """The plan (a dry run's, a refused or an empty real run's); ``json_result`` goes to JSON only."""
    emit(
        run.fmt,
        lambda: plan_document(run.migration, plan, show_path(run.path), dry_run),
        lambda: plan_json(run.migration, plan, show_path(run.path), dry_run, json_result, lazy=True),
    )


def _refuse_blocked(run: MigrateRun, plan: Plan) -> None:
    if not plan.blocked:
        return
    _show(run, plan, False)  # a real run, refused: not a dry run
    groups = [f"{show(s.key)}/{show(c.group)}" for s in plan.streams for c in s.conflicts if c.resolution is None]
    raise WriteRefused(
        f"{counted(len(groups), 'group')} {'exists' if len(groups) == 1 else 'exist'} in both layouts "
        f"({', '.join(groups[:5])}); nothing written; "
        "choose --on-conflict keep-prefixed or keep-legacy (the other side's records are deleted)"
    )


def _plan_header(run: MigrateRun, plan: Plan, identity: str, data: DataDir) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what applying the file compares, what is there for people)."""
    options = run.options
    header = {
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
    assert plan.db_state is not None
    info = {"db_path": data.shown(), "planned_at_sequence": str(plan.db_state[1]), "summary": plan.summary()}
    return header, info


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


def _check_saved(plan_file: Path, run: MigrateRun, plan: Plan, db: Database, data: DataDir) -> None:
    """Refuse unless the plan made now is the saved one (same options, database and lines)."""
    header, _ = _plan_header(run, plan, db.state()[0], data)
    planfile.refuse_unless_same(plan_file, header, planfile.migration_lines(plan), "--dry-run --save-plan")
