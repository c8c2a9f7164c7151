"""kvfix migrate: rewrite stream consumer-group records into another layout, without losing a byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kvfix.cli.options import cluster_option, emit, handle_errors, resolve_format, summary_output_options
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
from kvfix.migrations.run import MigrationJob, execute
from kvfix.progress import progress_for
from kvfix.render import render
from kvfix.render.migrate_report import list_document, list_json, plan_document, plan_json
from kvfix.signals import NAMES
from kvfix.store.files import fingerprint
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only
from kvfix.store.paths import DataDir, resolve
from kvfix.testpoints import reached
from kvfix.textsafe import counted, show, show_path


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
    check_write_options(backup_dir, no_backup)
    if save_plan is not None and not dry_run:
        raise click.UsageError("--save-plan goes with --dry-run (a real run applies a saved plan with --plan)")
    if plan_file is not None and dry_run:
        raise click.UsageError("--plan applies a saved plan; it does not go with --dry-run")
    if plan_file is not None:
        to, on_conflict, cluster = _saved_options(plan_file)
    if list_only:
        with open_read_only(path) as db:
            rows = [(m, m.status(db, cluster), m.revert().status(db, cluster)) for m in MIGRATIONS]
        emit(fmt, lambda: list_document(show_path(path), rows), lambda: list_json(show_path(path), rows))
        return 0
    migration = for_target(to)  # type: ignore[arg-type]
    options = PlanOptions(on_conflict, cluster)  # type: ignore[arg-type]
    if dry_run:
        with open_read_only(path) as db:
            plan = migration.plan(db, options)
            identity = db.state()[0]
        if save_plan is not None:
            header, info = _plan_header(migration, plan, to, options, identity, resolve(path))
            planfile.save(save_plan, header, info, planfile.migration_lines(plan), planfile.migration_lines(plan))
            click.echo(f"kvfix: plan saved to {show_path(save_plan)}; apply it with --plan", err=True)
        _show(fmt, migration, plan, path, True)
        return 0
    data = resolve(path)
    with HeldLock(data.db) as lock:
        planned_files = fingerprint(data.db)
        with open_read_only(data, lock=lock) as db:
            plan = migration.plan(db, options)
            reached("plan")
            if plan_file is not None:
                _check_saved(plan_file, migration, plan, to, options, db.state()[0], data)
            if plan.empty:  # nothing to write: verify what an earlier (perhaps interrupted) run left
                problems = migration.verify(db, plan, None)
        if plan.empty:
            remove_leftover_config(data)
            _show(fmt, migration, plan, path, False)
            if problems:
                raise VerifyFailed(f"verification failed: {problems[0]} ({counted(len(problems), 'problem')})")
            click.echo(
                f"kvfix: nothing to migrate; verified: no live stream holds {plan.source} group records", err=True
            )
            return 0
        _refuse_blocked(fmt, migration, plan, path)
        target = backup_location(data, backup_dir, no_backup)
        if not yes and stdin_is_terminal() and resolve_format(fmt) != "json":
            render(plan_document(migration, plan, show_path(path), True), resolve_format(fmt))
        sm = plan.summary()
        confirm_or_refuse(
            f"Rewrite {sm['rewrites']} records and drop {sm['drops']} in {sm['streams_to_migrate']} streams "
            f"of {data.shown()}?",
            yes,
        )
        with progress_for("migrating") as progress:
            result = execute(
                data,
                lock,
                MigrationJob(migration, plan, options),
                planned_files=planned_files,
                backup_to=target,
                on_backup=lambda saved: click.echo(f"kvfix: {restore_hint(data, saved)}", err=True),
                progress=progress,
            )
        try:
            emit(
                fmt,
                lambda: plan_document(migration, plan, show_path(path), False, result),
                lambda: plan_json(migration, plan, show_path(path), False, result, lazy=True),
            )
        except Interrupted as exc:  # the work is done: only the report was cut short
            raise_for_run(result)
            click.echo(
                f"\nkvfix: all {result.applied.done} streams written and verified; "
                f"the report was interrupted ({NAMES.get(exc.signum, 'a signal')})",
                err=True,
            )
            return 0
        raise_for_run(result)  # the LOCK is held until the report is out
    release = "--target 2.9" if to == "legacy" else "--target 2.10"
    click.echo(f"kvfix: next: kvfix scan {show_path(path)} {release} (the release you will start)", err=True)
    return 0


def _show(fmt: str | None, migration: Migration, plan: Plan, path: str, dry_run: bool) -> None:
    emit(
        fmt,
        lambda: plan_document(migration, plan, show_path(path), dry_run),
        lambda: plan_json(migration, plan, show_path(path), dry_run, lazy=True),
    )


def _refuse_blocked(fmt: str | None, migration: Migration, plan: Plan, path: str) -> None:
    if not plan.blocked:
        return
    _show(fmt, migration, plan, path, False)  # a real run, refused: not a dry run
    groups = [f"{show(s.key)}/{show(c.group)}" for s in plan.streams for c in s.conflicts if c.resolution is None]
    raise WriteRefused(
        f"{len(groups)} groups exist in both layouts ({', '.join(groups[:5])}); nothing written; "
        "choose --on-conflict keep-prefixed or keep-legacy (the other side's records are deleted)"
    )


def _plan_header(
    migration: Migration, plan: Plan, to: str, options: PlanOptions, identity: str, data: DataDir
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what applying the file compares, what is there for people)."""
    header = {
        "command": "migrate",
        "migration": migration.id,
        "options": {"to": to, "on_conflict": options.on_conflict, "cluster": options.cluster},
        "db_identity": identity,
    }
    assert plan.db_state is not None
    info = {"db_path": data.shown(), "planned_at_sequence": str(plan.db_state[1]), "summary": plan.summary()}
    return header, info


def _saved_options(plan_file: Path) -> tuple[str, str, bool | None]:
    header = planfile.read_header(plan_file)
    opts = header.get("options") or {}
    if header.get("command") != "migrate" or opts.get("to") not in ("prefixed", "legacy"):
        raise WriteRefused(f"{show_path(plan_file)}: not a migrate plan; nothing written")
    return opts["to"], opts.get("on_conflict", "refuse"), opts.get("cluster")


def _check_saved(
    plan_file: Path, migration: Migration, plan: Plan, to: str, options: PlanOptions, identity: str, data: DataDir
) -> None:
    header, _ = _plan_header(migration, plan, to, options, identity, data)
    planfile.refuse_unless_same(plan_file, header, planfile.migration_lines(plan), "--dry-run --save-plan")
