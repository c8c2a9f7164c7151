"""What the commands that write (migrate, check --repair) share on the command line."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kvfix.errors import RunInterrupted, Unverified, VerifyFailed, WriteFailed, WriteRefused
from kvfix.migrations.run import RunResult
from kvfix.signals import NAMES, SIGNALS
from kvfix.store.opening import ROCKSDICT_CONFIG, leftover_config
from kvfix.store.paths import DataDir, backup_target
from kvfix.textsafe import counted, show_path


def write_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--yes/-y, --dry-run, --backup-dir DIR, --no-backup (in that order in --help)."""
    for decorator in reversed(
        (
            click.option(
                "--yes", "-y", "yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
            ),
            click.option("--dry-run", is_flag=True, help="Show the plan a real run would execute; change nothing."),
            click.option(
                "--backup-dir",
                type=click.Path(path_type=Path, file_okay=False),
                default=None,
                help="Directory to put the backup in, created if missing (default: beside the data "
                "directory); the backup is <dir>.kvfix-backup-<UTC time> inside it.",
            ),
            click.option("--no-backup", is_flag=True, help="Skip the backup on purpose."),
        )
    ):
        func = decorator(func)
    return func


def check_write_options(backup_dir: Path | None, no_backup: bool) -> None:
    if backup_dir is not None and no_backup:
        raise click.UsageError("--backup-dir and --no-backup exclude each other")


def backup_location(data: DataDir, backup_dir: Path | None, no_backup: bool) -> Path | None:
    """Where this run's backup goes (checked before anything is written), or None."""
    return None if no_backup else backup_target(data, backup_dir)


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def confirm_or_refuse(question: str, yes: bool) -> None:
    """Return if the write may start; raise WriteRefused otherwise."""
    if yes:
        return
    if not stdin_is_terminal():
        raise WriteRefused("refusing to write without confirmation: no terminal to ask on; pass --yes")
    if not click.confirm(question, default=False, err=True):
        raise WriteRefused("cancelled; nothing was written")


def restore_hint(data: DataDir, backup: Path) -> str:
    """The exact commands that put the backup back (the backup is a RocksDB directory)."""
    db, saved = show_path(data.db), show_path(backup)
    return (
        f"backup at {saved}; to restore it, stop the server, then: "
        f"mv {shlex.quote(db)} {shlex.quote(db + '.kvfix-replaced')} && cp -a {shlex.quote(saved)} {shlex.quote(db)}"
    )


def raise_for_run(result: RunResult, noun: str = "streams") -> None:
    """Return when every unit was written and verified; otherwise raise what says how far it got."""
    a = result.applied
    where = f"; the backup is at {show_path(result.backup)}" if result.backup else ""
    if result.problems:
        raise VerifyFailed(
            f"verification failed: {result.problems[0]} ({counted(len(result.problems), 'problem')}){where}"
        )
    so_far = f"{a.done} of {a.total} {noun} written"
    state = " and verified" if result.unverified is None else f", not verified ({result.unverified})"
    each = ", each wholly in its old or its new form" if a.done < a.total else ""
    again = "run the same command again to " + ("finish" if a.done < a.total else "verify")
    if a.signum is not None or SIGNALS.received is not None:
        signum = a.signum if a.signum is not None else SIGNALS.received
        raise RunInterrupted(
            f"interrupted by {NAMES.get(signum or 0, 'a signal')}: {so_far}{state}{each}; {again}", signum
        )
    if a.stopped is not None:
        fix = "" if a.stopped.startswith("read failed") else "free space and "
        raise WriteFailed(f"{a.stopped}: {so_far}{state}{each}; {fix}{again}{where}")
    if result.unverified is not None:
        raise Unverified(f"{so_far}{state}; {again}{where}")


def remove_leftover_config(data: DataDir) -> None:
    """A run with nothing to write still removes rocksdict's file an earlier killed run left."""
    if leftover_config(data.db):
        (data.db / ROCKSDICT_CONFIG).unlink(missing_ok=True)
        click.echo(f"kvfix: removed {show_path(data.db / ROCKSDICT_CONFIG)} left by an earlier kvfix run", err=True)


def plan_file_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--save-plan FILE (with --dry-run) and --plan FILE: review a plan, then apply exactly it."""
    func = click.option(
        "--plan",
        "plan_file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        default=None,
        help="Apply exactly this saved plan (its options included), or refuse if the database no longer gives it.",
    )(func)
    return click.option(
        "--save-plan",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="With --dry-run: write the complete plan to this file (JSON Lines), for review and --plan.",
    )(func)
