"""Executing a plan on a data directory: lock, re-check, back up, apply, verify.

The library form of ``kvfix migrate`` after its plan was shown (and confirmed): the
CLI calls :func:`execute`, and so does the benchmark, so what is timed is what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kvfix.analysis.walk import paused_gc
from kvfix.errors import WriteRefused
from kvfix.migrations.base import Migration, Plan, PlanOptions
from kvfix.progress import Progress
from kvfix.storage import open_read_only, open_read_write, resolve_db_path
from kvfix.writes import Applied, backup, file_names, foreign_files


@dataclass(frozen=True)
class RunResult:
    """What a real run did (None for --dry-run)."""

    backup: Path | None
    applied: Applied
    problems: tuple[str, ...]
    foreign_files: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return not self.problems


def execute(
    path: str | Path,
    migration: Migration,
    plan: Plan,
    options: PlanOptions,
    *,
    backup_dir: Path | None = None,
    no_backup: bool = False,
    on_backup: Callable[[Path], None] | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Apply ``plan`` (made read-only by ``migration.plan``) to the database at ``path``.

    Under the write lock, the plan stands only if the database is unchanged since it was
    made (same IDENTITY and sequence number; otherwise it is computed again and must be
    equal), so what was shown is what is written.  Then a checkpoint, one synced batch
    per stream, and a verification on a read-only reopen.
    """
    with paused_gc():  # a plan holds a few tuples per record; collecting them finds no cycles
        return _execute(path, migration, plan, options, backup_dir, no_backup, on_backup, progress or Progress())


def _execute(
    path: str | Path,
    migration: Migration,
    plan: Plan,
    options: PlanOptions,
    backup_dir: Path | None,
    no_backup: bool,
    on_backup: Callable[[Path], None] | None,
    progress: Progress,
) -> RunResult:
    db_path = resolve_db_path(path)
    before = file_names(db_path)  # before rocksdict's open, which may add a file of its own
    with open_read_write(path) as db:
        if (plan.db_state is None or db.state() != plan.db_state) and migration.plan(db, options) != plan:
            raise WriteRefused("the database changed since it was planned; nothing written; run again")
        saved = backup(db, backup_dir, no_backup)
        if saved is not None and on_backup is not None:
            on_backup(saved)
        applied = migration.apply(
            db, plan, on_done=lambda done, total: progress.update(streams=done, total_streams=total)
        )
    with open_read_only(path) as db:
        problems = migration.verify(db, plan, None if applied.complete else applied.done)
    foreign = foreign_files(db_path, before)
    problems += [f"foreign file left in {db_path}: {name}" for name in foreign]
    return RunResult(saved, applied, tuple(problems), tuple(foreign))
