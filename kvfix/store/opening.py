"""Opening a Kvrocks database: read-only through a shadow directory, read-write under a held lock.

Read-only opens never hand rocksdict the user's directory: rocksdict creates a missing
path and writes ``rocksdict-config.json`` into whatever it opens, even read-only.  They
open a private *shadow* directory of symlinks to the database's files instead, so the
data directory keeps every byte and every name, also on read-only media.

Every open asks RocksDB for its checks: paranoid checks, block checksums on every read,
and write-ahead-log recovery that tolerates only a torn last record (what a crash
leaves) and refuses damage in the middle of a log, which RocksDB's default recovery
would silently treat as the end of the data.  After the open, every SST file in the
directory must be one the MANIFEST references: a truncated MANIFEST otherwise opens as
a smaller, healthy-looking database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rocksdict import (
    AccessType,
    BlockBasedOptions,
    ChecksumType,
    DBCompressionType,
    DBRecoveryMode,
    Options,
    Rdict,
)

from kvfix.errors import DatabaseLocked, NotKvrocks, NotRocksDB, ReadError, Unreadable, WriteRefused
from kvfix.store.database import Database
from kvfix.store.lock import HeldLock, ensure_unlocked
from kvfix.store.paths import DataDir, resolve
from kvfix.store.versions import kvfix_rocksdb, writer_of
from kvfix.textsafe import show_path

ROCKSDICT_CONFIG = "rocksdict-config.json"
KVROCKS_REQUIRED_CFS = ("metadata",)
KVROCKS_CFS = ("default", "metadata", "zset_score", "pubsub", "propagate", "stream", "search")
#: SST format 5 is read by every RocksDB since 6.6, so Kvrocks 2.9 (8.11) and 2.10 (9.3) alike.
PINNED_SST_FORMAT_VERSION = 5
_SHADOW_SKIP = ("LOCK", ROCKSDICT_CONFIG)
FILE_OPENING_THREADS = max(1, min(4, os.cpu_count() or 1))
#: Table cache size: SST files held open at once (RocksDB's default -1 opens all of them).
MAX_OPEN_FILES = 512


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split())[:400]


def _raw(recovery: str = "tolerate_corrupted_tail_records") -> Options:
    """Options for bytes keys, with RocksDB's checks on and few file-opening threads.

    RocksDB opens SST files at start-up on ``max_file_opening_threads`` threads per
    column family (default 16, with Kvrocks' 7 families half of a small scan's time); a
    bounded table cache keeps thousands of SST files within a 1024-descriptor ulimit.
    """
    opts = Options(raw_mode=True)
    opts.set_max_file_opening_threads(FILE_OPENING_THREADS)
    opts.set_max_open_files(MAX_OPEN_FILES)
    opts.set_skip_stats_update_on_db_open(True)  # table statistics only feed compactions
    opts.set_paranoid_checks(True)
    opts.set_wal_recovery_mode(getattr(DBRecoveryMode, recovery)())
    return opts


def _list_cfs(path: Path, shown: Path) -> tuple[str, ...]:
    try:
        return tuple(Rdict.list_cf(str(path), _raw()))
    except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
        text = _one_line(exc).replace(str(path), str(shown))
        raise NotRocksDB(f"{show_path(shown)}: not a readable RocksDB database ({text})") from exc


def _check_kvrocks(path: Path, cfs: tuple[str, ...]) -> None:
    missing = [c for c in KVROCKS_REQUIRED_CFS if c not in cfs]
    if missing:
        raise NotKvrocks(
            f"{show_path(path)}: a RocksDB database but not Kvrocks "
            f"(no {', '.join(missing)} column family; has {', '.join(cfs)})"
        )


def _make_shadow(db_path: Path, shadow: Path) -> None:
    """Symlinks to the database's files, without LOCK, info logs and OPTIONS files.

    A read-only open reads neither LOCK nor OPTIONS files, but rocksdict parses the latest
    OPTIONS file on every open and then discards it when options are given.
    """
    for entry in os.scandir(db_path):
        name = entry.name
        if name in _SHADOW_SKIP or name.startswith(("LOG", "OPTIONS-")):
            continue
        if entry.is_file():
            os.symlink(entry.path, shadow / entry.name)


def wal_files(db_path: Path) -> list[str]:
    return sorted(n for n in os.listdir(db_path) if n.endswith(".log") and n[:-4].isdigit())


@contextmanager
def signals_to_main_thread() -> Iterator[None]:
    """Around every open: SIGINT and SIGTERM blocked in the opening (main) thread.

    RocksDB starts its background threads while a database opens, and they inherit the
    opening thread's signal mask; with these two blocked there, the kernel can only hand
    them to the main thread, so Python's handler sees a signal at once.  (A signal that a
    background thread took was seen only when that thread next ran: on a loaded machine,
    a batch later.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _open(at: Path, cfs: tuple[str, ...], log_dir: str, recovery: str, access: Any) -> Any:
    opts = _raw(recovery)
    opts.set_db_log_dir(log_dir)
    with signals_to_main_thread():
        return Rdict(str(at), options=opts, column_families={c: _raw(recovery) for c in cfs}, access_type=access)


def _open_checked(data: DataDir, shadow: Path, cfs: tuple[str, ...], log_dir: str, salvage: bool) -> Database:
    """Open read-only; damage in the middle of a WAL is an error (or, salvaging, recorded)."""
    errors: list[str] = []
    try:
        rdict = _open(shadow, cfs, log_dir, "tolerate_corrupted_tail_records", AccessType.read_only())
    except Exception as exc:
        text = _one_line(exc).replace(str(shadow), str(data.db))
        try:  # RocksDB's default recovery stops at the damage: if that opens, the damage is in a log
            rdict = _open(shadow, cfs, log_dir, "point_in_time", AccessType.read_only())
        except Exception:
            kind = ReadError if "Corruption" in text or "checksum" in text else Unreadable
            raise kind(f"{data.shown()}: read error: RocksDB could not open it read-only ({text})") from exc
        logs = ", ".join(wal_files(data.db)) or "the write-ahead log"
        errors.append(
            f"{data.shown()}: read error in {logs}: damaged before its end ({text}); "
            "every write after the damage is unreadable"
        )
        if not salvage:
            rdict.close()
            raise ReadError(errors[0] + "; --salvage reports what precedes it, marked partial") from exc
    db = Database(data.db, rdict, cfs, read_only=True, salvage=salvage, opened_at=shadow, read_errors=errors)
    try:
        check_files(db)
    except BaseException:
        db.close()
        raise
    return db


#: Opens of a live directory tried before giving up (the server may delete a file between
#: kvfix listing the directory and RocksDB opening it).
LIVE_ATTEMPTS = 3


def _open_live(data: DataDir, cfs: tuple[str, ...], tmp: str) -> Database:
    """A RocksDB secondary instance over a shadow of the live directory, as of this open.

    The secondary keeps its own files (info log, its MANIFEST reading) in ``tmp``; with
    ``max_open_files = -1`` (which secondaries require) every SST file is opened now, so a
    compaction that deletes one afterwards does not take it away from this view.
    """
    last: Exception | None = None
    for attempt in range(LIVE_ATTEMPTS):
        shadow = Path(tmp) / f"live-{attempt}"
        secondary = Path(tmp) / f"secondary-{attempt}"
        shadow.mkdir()
        secondary.mkdir()
        _make_shadow(data.db, shadow)
        opts = _raw()
        opts.set_max_open_files(-1)
        opts.set_db_log_dir(str(secondary))
        try:
            with signals_to_main_thread():
                rdict = Rdict(
                    str(shadow),
                    options=opts,
                    column_families={c: _raw() for c in cfs},
                    access_type=AccessType.secondary(str(secondary)),
                )
        except Exception as exc:  # a file went away underneath: list the directory again
            last = exc
            continue
        return Database(data.db, rdict, cfs, read_only=True, opened_at=shadow, live=True)
    text = _one_line(last or "").replace(str(tmp), "<kvfix temporary directory>")
    raise Unreadable(
        f"{data.shown()}: could not open a live view after {LIVE_ATTEMPTS} attempts while the server "
        f"changed its files ({text}); try again"
    )


def check_files(db: Database) -> None:
    """Every SST file on disk must be referenced by the MANIFEST (else: data the open cannot see)."""
    live = db.live_sst_files()
    on_disk = {n: (db.path / n).stat().st_size for n in os.listdir(db.path) if n.endswith(".sst")}
    stray = sorted(set(on_disk) - set(live))
    if stray:
        size = sum(on_disk[n] for n in stray)
        db.failed(
            "*",
            f"{len(stray)} SST files ({size:,} bytes: {', '.join(stray[:5])}) are not referenced by the MANIFEST: "
            "a damaged or truncated MANIFEST hides their records (a crash can leave such files too)",
            None,
        )


@contextmanager
def open_read_only(
    path: str | os.PathLike[str] | DataDir,
    *,
    salvage: bool = False,
    lock: HeldLock | None = None,
    live: bool = False,
    parent_holds_lock: bool = False,
) -> Iterator[Database]:
    """Open a Kvrocks database read-only through a shadow directory (see module doc).

    ``lock``: the caller holds the LOCK itself (a writer verifying), so no lock check;
    ``parent_holds_lock``: so does the process that started this one (its second process).
    ``live``: the directory of a running server (its LOCK held): a secondary instance.
    """
    data = path if isinstance(path, DataDir) else resolve(path)
    if not os.access(data.db, os.R_OK | os.X_OK):
        raise Unreadable(f"{data.shown()}: permission denied")
    if lock is None and not live and not parent_holds_lock:
        ensure_unlocked(data.db, live_hint=True)
    with tempfile.TemporaryDirectory(prefix="kvfix-ro-") as tmp:
        shadow = Path(tmp) / "db"
        shadow.mkdir()
        _make_shadow(data.db, shadow)
        cfs = _list_cfs(shadow, data.db)
        _check_kvrocks(data.db, cfs)
        db = _open_live(data, cfs, tmp) if live else _open_checked(data, shadow, cfs, tmp, salvage)
        try:
            yield db
        finally:
            db.close()


def _pinned_options(log_dir: str) -> Options:
    """Options for writes that Kvrocks 2.9 (RocksDB 8.11) and 2.10 (9.3) can read back."""
    opts = _raw()
    opts.create_if_missing(False)
    opts.create_missing_column_families(False)
    table = BlockBasedOptions()
    table.set_format_version(PINNED_SST_FORMAT_VERSION)
    # CRC32c: the checksum every RocksDB release reads (newer defaults moved to XXH3).
    table.set_checksum_type(ChecksumType.crc32c())
    opts.set_block_based_table_factory(table)
    opts.set_compression_type(DBCompressionType.none())
    # Nothing a 2.9 server would have to know about: no blob files, no recycled WAL files.
    opts.set_enable_blob_files(False)
    opts.set_recycle_log_file_num(0)
    # No compactions while kvfix holds the database: they would rewrite the server's own
    # SST files with the options above (uncompressed), and closing would wait for them.
    # Kvrocks builds its options from kvrocks.conf, not from the OPTIONS file this open
    # leaves.  With compactions off, level-0 files must never stall writes.
    opts.set_disable_auto_compactions(True)
    opts.set_level_zero_slowdown_writes_trigger(1 << 30)
    opts.set_level_zero_stop_writes_trigger(1 << 30)
    opts.set_db_log_dir(log_dir)
    opts.set_keep_log_file_num(1)
    return opts


def leftover_config(db_path: Path) -> bool:
    """Whether ``rocksdict-config.json`` is there from an earlier kvfix run (killed mid-way).

    Kvrocks never writes it; rocksdict writes it on every open, and rocksdict would
    overwrite it.  A file of that name that rocksdict did not write is refused.
    """
    path = db_path / ROCKSDICT_CONFIG
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as exc:
        raise WriteRefused(f"{show_path(path)}: not a file rocksdict wrote ({exc}); move it away first") from exc
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not (isinstance(doc, dict) and "raw_mode" in doc):
        raise WriteRefused(
            f"{show_path(path)}: not a file rocksdict wrote; move it away first (rocksdict overwrites it)"
        )
    return True


def refuse_newer_writer(data: DataDir) -> None:
    """Never write into a database a newer RocksDB wrote (see kvfix.store.versions)."""
    writer = writer_of(data.db)
    if writer is not None and writer.newer_than_kvfix:
        raise WriteRefused(
            f"{data.shown()} was written by RocksDB {writer.text} ({writer.options_file}), newer than kvfix's "
            f"{kvfix_rocksdb()}: kvfix does not write into it; nothing written"
        )


@contextmanager
def open_read_write(data: DataDir, lock: HeldLock) -> Iterator[Database]:
    """Open the real directory read-write (``lock`` held); removes what rocksdict adds."""
    if not os.access(data.db, os.W_OK):
        raise Unreadable(f"{data.shown()}: not writable")
    refuse_newer_writer(data)
    cfs = _list_cfs(data.db, data.db)
    _check_kvrocks(data.db, cfs)
    leftover_config(data.db)
    try:
        with tempfile.TemporaryDirectory(prefix="kvfix-log-") as log_dir:
            opts = _pinned_options(log_dir)
            try:
                with signals_to_main_thread():
                    rdict = Rdict(
                        str(data.db), options=opts, column_families={c: _pinned_options(log_dir) for c in cfs}
                    )
            except Exception as exc:
                text = _one_line(exc)
                if "lock" in text.lower():
                    raise DatabaseLocked(f"{show_path(lock.path)}: database is in use ({text})") from exc
                raise Unreadable(f"{data.shown()}: RocksDB could not open it for writing ({text})") from exc
            db = Database(data.db, rdict, cfs, read_only=False, opened_at=data.db)
            try:
                yield db
            finally:
                # Everything of kvfix's is gone before the close, which releases the LOCK
                # (POSIX locks belong to the process); it is taken back at once.
                (data.db / ROCKSDICT_CONFIG).unlink(missing_ok=True)
                close_quietly(db)
                with contextlib.suppress(OSError):
                    lock.reacquire()
    finally:
        if (data.db / ROCKSDICT_CONFIG).exists():  # a failed open: rocksdict may have written it
            (data.db / ROCKSDICT_CONFIG).unlink(missing_ok=True)


def close_quietly(db: Database) -> None:
    """Close after writes; a failing close (a full disk) must not hide what the run did.

    Every batch was synced to the write-ahead log, so what was written is on disk either
    way; the run's own result says what happened (a failed write or flush)."""
    try:
        db.close()
    except Exception as exc:
        db.close_error = _one_line(exc)


@contextmanager
def create_database(path: str | os.PathLike[str], column_families: tuple[str, ...] = KVROCKS_CFS) -> Iterator[Database]:
    """A new, empty database with Kvrocks' column families (tests, benchmarks, examples).

    Refuses an existing path; written with the same pinned options as migrate.
    """
    db_path = Path(path)
    if db_path.exists():
        raise Unreadable(f"{show_path(db_path)}: already exists")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kvfix-log-") as log_dir:
        opts = _pinned_options(log_dir)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        cfs = {c: _pinned_options(log_dir) for c in column_families if c != "default"}
        with signals_to_main_thread():
            rdict = Rdict(str(db_path), options=opts, column_families=cfs)
        db = Database(db_path.absolute(), rdict, tuple(column_families), read_only=False)
        try:
            yield db
            rdict.flush_wal(True)
        finally:
            db.close()
            (db_path / ROCKSDICT_CONFIG).unlink(missing_ok=True)


@contextmanager
def open_writable(path: str | os.PathLike[str]) -> Iterator[Database]:
    """Resolve ``path``, hold its LOCK and open it read-write (tests, tools, examples)."""
    data = resolve(path)
    with HeldLock(data.db) as lock, open_read_write(data, lock) as db:
        yield db
