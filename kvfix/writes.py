"""The write machinery every kvfix command that changes a database shares (migrate, check --repair).

Small on purpose; the contract:

- :func:`write_options` - click decorator adding ``--yes/-y``, ``--dry-run``, ``--backup-dir DIR``
  and ``--no-backup`` (keyword arguments ``yes``, ``dry_run``, ``backup_dir``, ``no_backup``).
- :func:`confirm_or_refuse` - returns when the operator agreed (or gave ``--yes``); raises
  :class:`~kvfix.errors.WriteRefused` (exit 2) when they said no, or when stdin is not a
  terminal and ``--yes`` was not given.
- :func:`backup` - a RocksDB checkpoint of an open read-write database before the first
  write; returns its path, or None with ``--no-backup``.  Default location: beside the data
  directory, ``<kvrocks dir>.kvfix-backup-<UTC timestamp>`` (or ``<db dir>.kvfix-backup-...``
  when the database directory is not named ``db``).
- :class:`WriteOp` and :func:`apply_units` - each unit (a list of ops, typically one stream)
  becomes ONE synced WriteBatch, so after a crash each unit is wholly applied or not at all.
  Ctrl-C (SIGINT) during the loop is deferred: the current batch is finished, the loop
  stops and :class:`Applied` says how far it got.
- :func:`foreign_files` - names a read-write open added to a database directory that are
  not RocksDB's own files (rocksdict-config.json, LOG, ...); must be empty after a write.

All reads and writes go through :mod:`kvfix.storage` (the only module importing rocksdict).
"""

from __future__ import annotations

import datetime as _dt
import re
import signal
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import click

from kvfix.errors import WriteRefused
from kvfix.storage import Database, make_checkpoint

# --- options and confirmation ------------------------------------------------------------


def write_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--yes/-y, --dry-run, --backup-dir DIR, --no-backup (applied in that order in --help)."""
    for decorator in reversed(
        (
            click.option(
                "--yes", "-y", "yes", is_flag=True, help="Do not ask for confirmation (needed without a terminal)."
            ),
            click.option(
                "--dry-run", is_flag=True, help="Print the exact plan a real run would execute; change nothing."
            ),
            click.option(
                "--backup-dir",
                type=click.Path(path_type=Path, file_okay=False),
                default=None,
                help="Where to put the RocksDB checkpoint taken before the first write "
                "(default: beside the data directory, <dir>.kvfix-backup-<UTC time>).",
            ),
            click.option("--no-backup", is_flag=True, help="Skip the checkpoint on purpose."),
        )
    ):
        func = decorator(func)
    return func


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def confirm_or_refuse(question: str, yes: bool) -> None:
    """Return if the write may start; raise WriteRefused otherwise (see module doc)."""
    if yes:
        return
    if not stdin_is_terminal():
        raise WriteRefused("refusing to write without confirmation: no terminal to ask on; pass --yes")
    if not click.confirm(question, default=False, err=True):
        raise WriteRefused("cancelled; nothing was written")


# --- backup ------------------------------------------------------------------------------


def default_backup_path(db_path: Path, parent: Path | None = None, now: _dt.datetime | None = None) -> Path:
    """``<kvrocks dir>.kvfix-backup-<UTC>`` beside the data directory (or in ``parent``), never inside it."""
    anchor = db_path.parent if db_path.name == "db" else db_path
    stamp = (now or _dt.datetime.now(_dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = (parent or anchor.parent) / f"{anchor.name}.kvfix-backup-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    return candidate


def backup(db: Database, backup_dir: Path | None, no_backup: bool) -> Path | None:
    """Checkpoint ``db`` (open read-write); returns its path, or None when no_backup.

    ``backup_dir`` that does not exist becomes the checkpoint; one that exists gets a
    stamped checkpoint directory inside it; None means the default beside the data directory.
    """
    if no_backup:
        return None
    if backup_dir is None:
        target = default_backup_path(db.path)
    elif Path(backup_dir).exists():
        target = default_backup_path(db.path, parent=Path(backup_dir))
    else:
        target = Path(backup_dir)
    return make_checkpoint(db, target.absolute())


# --- batches -----------------------------------------------------------------------------


class WriteOp(NamedTuple):
    """One put (value given) or delete (value None) in one column family."""

    cf: str
    key: bytes
    value: bytes | None = None


#: What write_unit takes: a WriteOp, or a plain (cf, key, value) tuple where a plan
#: builds thousands (a plain tuple builds several times faster than a named one).
Op = WriteOp | tuple[str, bytes, bytes | None]


@dataclass(frozen=True)
class Applied:
    done: int
    total: int
    interrupted: bool

    @property
    def complete(self) -> bool:
        return self.done == self.total and not self.interrupted


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """While active, SIGINT only sets a flag; yields a function telling whether it came."""
    hit = {"flag": False}

    def handler(signum: int, frame: object) -> None:
        hit["flag"] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: nothing to defer
        yield lambda: False
        return
    try:
        yield lambda: hit["flag"]
    finally:
        signal.signal(signal.SIGINT, previous)


def write_unit(db: Database, ops: Sequence[Op]) -> None:
    """One atomic, synced WriteBatch; ops are applied in order (a later put wins over a delete)."""
    batch = db.batch()
    put, delete = batch.put, batch.delete
    handles: dict[str, Any] = {}
    for cf, key, value in ops:
        handle = handles.get(cf)
        if handle is None:
            handle = handles[cf] = db.handle(cf)
        if value is None:
            delete(key, handle)
        else:
            put(key, value, handle)
    db.write(batch, sync=True)


def apply_units(
    db: Database,
    units: Collection[Sequence[Op]],
    on_done: Callable[[int, int], None] | None = None,
) -> Applied:
    """Write each unit as one synced batch, in order; stop cleanly after a Ctrl-C."""
    total = len(units)
    done = 0
    with deferred_interrupt() as interrupted:
        for ops in units:
            if interrupted():
                return Applied(done, total, True)
            if ops:
                write_unit(db, ops)
            done += 1
            if on_done is not None:
                on_done(done, total)
        return Applied(done, total, interrupted())


# --- what a write may leave behind ---------------------------------------------------------

ROCKSDB_FILE = re.compile(r"^(\d+\.(sst|log|blob)|MANIFEST-\d+|OPTIONS-\d+|CURRENT|IDENTITY|LOCK)$")


def file_names(db_path: Path) -> set[str]:
    return {p.name for p in db_path.iterdir()}


def foreign_files(db_path: Path, before: set[str]) -> list[str]:
    """Names added to db_path since ``before`` that are not RocksDB's own data files."""
    return sorted(n for n in file_names(db_path) - before if not ROCKSDB_FILE.match(n))
