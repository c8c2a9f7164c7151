"""kvfix migrate: rewrite stream consumer-group records into another layout, without losing a byte."""

from __future__ import annotations

import click

from kvfix.cli.options import cluster_option, emit, fail, handle_errors, output_options, resolve_format
from kvfix.errors import EXIT_INTERRUPTED, VerifyFailed, WriteRefused
from kvfix.migrations import MIGRATIONS, for_target
from kvfix.migrations.base import ON_CONFLICT_CHOICES, PlanOptions
from kvfix.migrations.run import execute
from kvfix.progress import progress_for
from kvfix.render import render
from kvfix.render.migrate_report import list_document, list_json, plan_document, plan_json
from kvfix.storage import open_read_only
from kvfix.textsafe import show
from kvfix.writes import confirm_or_refuse, stdin_is_terminal, write_options


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
@write_options
@output_options
@cluster_option
@handle_errors
def migrate(
    path: str,
    to: str,
    on_conflict: str,
    list_only: bool,
    yes: bool,
    dry_run: bool,
    backup_dir,
    no_backup: bool,
    fmt: str | None,
    cluster: bool | None,
) -> int:
    """Move stream consumer-group records of PATH (a Kvrocks dir or dir/db) into one layout.

    Refuses a database held by a running server. Takes a RocksDB checkpoint first, writes
    one atomic synced batch per stream, then re-reads and verifies. --dry-run prints the
    exact plan and changes nothing.
    """
    if list_only:
        with open_read_only(path) as db:
            rows = [(m, m.status(db, cluster), m.revert().status(db, cluster)) for m in MIGRATIONS]
        emit(fmt, lambda: list_document(path, rows), lambda: list_json(path, rows))
        return 0
    migration = for_target(to)  # type: ignore[arg-type]
    options = PlanOptions(on_conflict, cluster)  # type: ignore[arg-type]
    with open_read_only(path) as db:
        plan = migration.plan(db, options)
        db_path = db.path
    if dry_run or plan.empty:
        emit(
            fmt,
            lambda: plan_document(migration, plan, path, dry_run),
            lambda: plan_json(migration, plan, path, dry_run, lazy=True),
        )
        return 0
    if plan.blocked:
        emit(
            fmt,
            lambda: plan_document(migration, plan, path, True),
            lambda: plan_json(migration, plan, path, True, lazy=True),
        )
        groups = [f"{show(s.key)}/{show(c.group)}" for s in plan.streams for c in s.conflicts if c.resolution is None]
        raise WriteRefused(
            f"{len(groups)} groups exist in both layouts ({', '.join(groups[:5])}); nothing written; "
            "choose --on-conflict keep-prefixed or keep-legacy (the other side's records are deleted)"
        )
    if not yes and stdin_is_terminal() and resolve_format(fmt) != "json":
        render(plan_document(migration, plan, path, True), resolve_format(fmt))
    sm = plan.summary()
    confirm_or_refuse(
        f"Rewrite {sm['rewrites']} records and drop {sm['drops']} in {sm['streams_to_migrate']} streams of {db_path}?",
        yes,
    )
    with progress_for("migrating") as progress:
        result = execute(
            path,
            migration,
            plan,
            options,
            backup_dir=backup_dir,
            no_backup=no_backup,
            on_backup=lambda saved: click.echo(f"kvfix: backup (RocksDB checkpoint) at {saved}", err=True),
            progress=progress,
        )
    saved, applied, problems = result.backup, result.applied, result.problems
    emit(
        fmt,
        lambda: plan_document(migration, plan, path, False, result),
        lambda: plan_json(migration, plan, path, False, result, lazy=True),
    )
    if problems:
        where = f"; the backup is at {saved}" if saved else ""
        raise VerifyFailed(f"verification failed: {problems[0]} ({len(problems)} problems){where}")
    if applied.interrupted:
        fail(
            f"interrupted: {applied.done} of {applied.total} streams migrated, each stream wholly in one layout; "
            "run the same command again to finish",
            EXIT_INTERRUPTED,
        )
    return 0
