"""Executing a reviewed plan on a data directory: the one write path of migrate and repair.

The caller holds the database's LOCK from planning on (:class:`~kvfix.store.lock.HeldLock`)
and passes a :class:`Job`.  Then, in order: the files on disk must be the ones planned
from; a backup of those files is made and checked; the read-write open re-checks the
plan; each unit (one stream) is one atomic, synced batch, SIGINT and SIGTERM deferred to
the next unit; a flush; and a verification on a read-only open taken while the
read-write handle still holds the lock, so no server can slip in between.  Every way
this can stop early (a signal, a full disk, a failed read) ends in a :class:`RunResult`
that says how far it got; nothing is ever left half-written inside a unit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from kvfix.analysis.walk import paused_gc
from kvfix.errors import Interrupted, KvfixError, WriteRefused
from kvfix.migrations.base import Migration, Plan, PlanOptions, Split, Written
from kvfix.migrations.spool import WriteSpool
from kvfix.progress import Progress
from kvfix.signals import SIGNALS
from kvfix.store.backup import make_backup
from kvfix.store.database import Database, Op
from kvfix.store.files import Fingerprint, file_names, fingerprint, first_difference, foreign_files
from kvfix.store.lock import HeldLock
from kvfix.store.opening import ROCKSDICT_CONFIG, open_read_only, open_read_write, refuse_newer_writer
from kvfix.store.paths import DataDir
from kvfix.testpoints import reached
from kvfix.textsafe import show_path


class Job(Protocol):
    """What a write run needs from a plan (a migration's or a repair's)."""

    def total(self) -> int:
        """How many units the run writes."""
        ...

    def unchanged(self, db: Database) -> bool:
        """Under the write lock: does the database still give exactly this plan?"""
        ...

    def units(self, db: Database) -> Iterable[Sequence[Op] | Split]:
        """One unit each (a stream's whole change), in order: atomic, or a Split of atomic parts;
        may be planned again from ``db`` while they are written (each read before its write)."""
        ...

    def verify(self, db: Database, done: int | None, progress: Progress) -> list[str]:
        """Problems re-reading the database; ``done`` units written (None: all of them)."""
        ...


@dataclass
class MigrationJob:
    """A reviewed migration plan as the executor runs it (kvfix.migrations.run.Job).

    The writes made while planning (:class:`~kvfix.migrations.spool.WriteSpool`) are
    replayed when the database is in the state it was planned from.  Otherwise (or when
    the spool was given up) they are planned again from the read-write handle, stream by
    stream, as they are written: a stream is read before any write of its own and no
    write touches another stream's keys, so this gives the reviewed plan (same state
    token, or the same digest of every write), and no plan is ever held whole.
    """

    migration: Migration
    plan: Plan
    options: PlanOptions
    spool: WriteSpool | None = None
    written: Written | None = None

    def total(self) -> int:
        return self.plan.counts["streams_to_migrate"]

    def unchanged(self, db: Database) -> bool:
        if self.plan.db_state is not None and db.state() == self.plan.db_state:
            return True
        again = self.migration.plan(db, self.options, limit=1)
        return again.writes_sha256 == self.plan.writes_sha256 and again.counts == self.plan.counts

    def units(self, db: Database) -> Iterator[list[Op] | Split]:
        self.written = self.migration.written()
        spool, self.spool = self.spool, None
        if spool is not None and spool.usable and self.plan.db_state is not None and db.state() == self.plan.db_state:
            return spool.replay(self.written)
        if spool is not None:
            spool.close()  # planned from another state: plan again
        return self.migration.units(db, self.options, self.written)

    def verify(self, db: Database, done: int | None, progress: Progress) -> list[str]:
        written = self.written or self.migration.written()
        written.done = done
        problems = self.migration.verify(db, self.plan, written, progress)
        if done is None and written.sha.hexdigest() != self.plan.writes_sha256:
            problems.append("the writes made differ from the reviewed plan's (digest of every write)")
        return problems


@dataclass(frozen=True)
class Applied:
    done: int
    total: int
    #: Why the writes stopped before the end: "SIGTERM", "disk full: ...", or None.
    stopped: str | None = None
    signum: int | None = None

    @property
    def complete(self) -> bool:
        return self.done == self.total and self.stopped is None

    @property
    def interrupted(self) -> bool:
        return self.stopped is not None


@dataclass(frozen=True)
class RunResult:
    backup: Path | None
    applied: Applied
    problems: tuple[str, ...]
    #: Why verification did not run to its end (None: it did).
    unverified: str | None = None
    foreign_files: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return self.unverified is None and not self.problems


def execute(
    data: DataDir,
    lock: HeldLock,
    job: Job,
    *,
    planned_files: Fingerprint,
    backup_to: Path | None,
    on_backup: Callable[[Path], None] | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Back up, write and verify (see module doc); raises only before the first write."""
    progress = progress or Progress()
    refuse_newer_writer(data)
    diff = first_difference(planned_files, fingerprint(data.db))
    if diff is not None:
        raise WriteRefused(f"the files of {data.shown()} changed since planning ({diff}); nothing written; run again")
    saved = None
    if backup_to is not None:
        reached("backup")
        saved = take_backup(data, lock, backup_to)
        if on_backup is not None:
            on_backup(saved)
    SIGNALS.raise_if_received()
    before = file_names(data.db)
    # From here on a signal never escapes with the writes half-reported: it stops the
    # writes after the current unit, and only the verification read may be cut short.
    with SIGNALS.deferred():
        with paused_gc(), open_read_write(data, lock) as db:  # a plan holds tuples; no cycles to collect
            if not job.unchanged(db):
                raise WriteRefused("the database changed since it was planned; nothing written; run again")
            SIGNALS.raise_if_received()  # a signal during the re-check: nothing written yet
            applied = write_units(db, job.units(db), progress, job.total())
            flush_error = flush(db)
            with SIGNALS.interruptible():
                progress.phase("verifying")
                problems, unverified = verify(data, lock, job, applied, flush_error, progress)
            foreign = foreign_files(data.db, before - {ROCKSDICT_CONFIG}, ignore={ROCKSDICT_CONFIG})
        problems += [f"foreign file left in {data.shown()}: {name}" for name in foreign]
    return RunResult(saved, applied, tuple(problems), unverified, tuple(foreign))


def take_backup(data: DataDir, lock: HeldLock, target: Path) -> Path:
    """The original files, copied, then opened read-only and compared with the original."""
    saved = make_backup(data, target)
    try:
        with open_read_only(data, lock=lock) as original:
            want = (original.state(), original.live_sst_files(), original.column_families)
        with open_read_only(saved) as copy:
            got = (copy.state(), copy.live_sst_files(), copy.column_families)
    except KvfixError as exc:
        raise WriteRefused(
            f"the backup at {show_path(saved)} could not be checked ({exc.message}); nothing written"
        ) from exc
    if got != want:
        raise WriteRefused(f"the backup at {show_path(saved)} does not open as the original; nothing written")
    return saved


#: A synced batch holds whole units (streams) up to about this many records, so the number
#: of syncs grows with what is written, not with the number of streams; a unit larger than
#: this is one batch of its own.  (``KVFIX_BATCH_RECORDS=1``: one batch per unit, for tests.)
BATCH_RECORDS = int(os.environ.get("KVFIX_BATCH_RECORDS", "50000"))


def batches(units: Iterable[Sequence[Op] | Split], limit: int) -> Iterator[tuple[list[Op], int]]:
    """(ops, units completed by them): whole atomic parts, up to about ``limit`` records.

    A unit is one atomic part, or a :class:`~kvfix.migrations.base.Split` of several
    written in order; a unit counts as done with the batch that holds its last part.
    """
    ops: list[Op] = []
    n = 0
    for unit in units:
        for part in unit.parts if isinstance(unit, Split) else (unit,):
            if ops and len(ops) + len(part) > limit:
                yield ops, n
                ops, n = [], 0
            ops.extend(part)
        n += 1
    if n or ops:
        yield ops, n


def write_units(db: Database, units: Iterable[Sequence[Op] | Split], progress: Progress, total: int) -> Applied:
    """Whole units in synced batches; a signal stops after the current batch, a failed write at once."""
    done = written = records = 0
    progress.phase("writing")
    failed: list[str] = []
    with SIGNALS.deferred(), _closing(units):
        for ops, n in _until_failed(batches(units, BATCH_RECORDS), failed):
            if SIGNALS.received is not None:
                return Applied(done, total, SIGNALS.name(), SIGNALS.received)
            if ops:
                try:
                    db.write(ops, sync=True)
                except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status
                    return Applied(done, total, _io_reason(exc))
            done += n
            written += 1
            records += len(ops)
            progress.update(streams=done, records=records, total_streams=total)
            reached("batch", written)
    if failed:
        return Applied(done, total, failed[0])
    if SIGNALS.received is None and done != total:
        return Applied(done, total, f"read failed (the planned writes ended after {done} of {total} units)")
    return Applied(done, total, SIGNALS.name() if SIGNALS.received else None, SIGNALS.received)


def _until_failed(items: Iterator[tuple[list[Op], int]], failed: list[str]) -> Iterator[tuple[list[Op], int]]:
    """The batches until a read for them fails (its reason appended to ``failed``): nothing
    is written on a failed read, and what was written before it is still verified."""
    try:
        yield from items
    except KvfixError as exc:
        failed.append(f"read failed ({exc.message})")


@contextmanager
def _closing(units: Iterable[object]) -> Iterator[None]:
    """Close a generator of units however the writes end: its reads must end before the verification."""
    try:
        yield
    finally:
        close = getattr(units, "close", None)
        if close is not None:
            close()


def _io_reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if "No space left" in text or "ENOSPC" in text:
        return f"disk full ({text})"
    return f"write failed ({text})"


def flush(db: Database) -> str | None:
    """Move the written data from the write-ahead log into SST files; the reason it failed, or None."""
    reached("flush")
    with SIGNALS.deferred():
        try:
            db.flush_all()
        except Exception as exc:
            return _io_reason(exc)
    return None


def verify(
    data: DataDir, lock: HeldLock, job: Job, applied: Applied, flush_error: str | None, progress: Progress
) -> tuple[list[str], str | None]:
    """Verify on a read-only open; (problems, why verification did not run or finish)."""
    if SIGNALS.received is not None and applied.stopped is None:
        return [], f"{SIGNALS.name()} after the last write"
    try:
        reached("verify")
        with open_read_only(data, lock=lock) as db:
            problems = job.verify(db, None if applied.complete else applied.done, progress)
    except Interrupted as exc:
        SIGNALS.received = exc.signum
        return [], f"verification interrupted by {SIGNALS.name()}"
    except KvfixError as exc:
        return [], f"verification could not read the database ({exc.message})"
    if flush_error is not None:
        return problems, f"the flush after the writes failed: {flush_error}"
    return problems, None
