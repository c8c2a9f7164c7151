"""kvfix backups and kvfix restore: the backups migrate and repair made, and putting one back."""

from __future__ import annotations

from pathlib import Path

import click

from kvfix.cli.options import emit, handle_errors, output_options
from kvfix.cli.writing import confirm_or_refuse
from kvfix.render.document import Document
from kvfix.store.paths import resolve
from kvfix.store.restore import list_backups, restore
from kvfix.textsafe import show_path


@click.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "--in",
    "where",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="Look in this directory (the --backup-dir given to migrate) instead of beside PATH.",
)
@output_options
@handle_errors
def backups(path: str, where: Path | None, fmt: str | None) -> int:
    """List the backups kvfix made of PATH's database, newest first, with sizes and dates.

    \b
    Examples:
      kvfix backups /var/lib/kvrocks
      kvfix backups /var/lib/kvrocks --in /backups --format json
    """
    data = resolve(path)
    found = list_backups(data, where)
    doc = Document(f"kvfix backups {data.shown()}")
    doc.table(
        f"Backups ({len(found)})",
        ["taken (UTC)", "path", "files", "bytes", "complete"],
        [[b.taken_at, show_path(b.path), b.files, b.bytes, "yes" if b.complete else "NO"] for b in found],
    )
    if found:
        doc.line(f"restore the newest: kvfix restore {show_path(found[0].path)} {show_path(path)}")
    rows = [
        {"path": show_path(b.path), "taken_at": b.taken_at, "files": b.files, "bytes": b.bytes, "complete": b.complete}
        for b in found
    ]
    emit(fmt, lambda: doc, lambda: {"schema": 1, "db": data.shown(), "backups": rows})
    return 0


@click.command(name="restore")
@click.argument("backup", type=click.Path(path_type=str))
@click.argument("path", type=click.Path(path_type=str))
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed without a terminal).")
@handle_errors
def restore_cmd(backup: str, path: str, yes: bool) -> int:
    """Put BACKUP (made by kvfix migrate or check --repair) in place of PATH's database.

    Refuses a database a running server holds. Checks that the backup opens, copies it
    beside db/ (SST files hard-linked) and checks the copy, then moves the current db/
    aside (never deleted) and the copy into its place.

    \b
    Examples:
      kvfix restore /var/lib/kvrocks.kvfix-backup-20261201T231011Z /var/lib/kvrocks
    """
    data = resolve(path)
    confirm_or_refuse(f"Replace {data.shown()} with {show_path(backup)} (the current one is kept aside)?", yes)
    aside = restore(Path(backup), data)
    click.echo(
        f"kvfix: restored {show_path(backup)} into {data.shown()}; the replaced database is at {show_path(aside)}",
        err=True,
    )
    return 0
