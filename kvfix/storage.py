"""The one module that touches rocksdict (and so RocksDB).

Read-only opens never hand rocksdict the user's directory: rocksdict creates a missing
path and writes ``rocksdict-config.json`` into whatever it opens, even read-only.  We
open a private *shadow* directory of symlinks to the database's files instead, so the
data directory keeps every byte and every name, also on read-only media.

Read-write opens (migrate, repair) go to the real directory, after a lock check, with
options pinned for what Kvrocks 2.9 (RocksDB 8.11) and 2.10 (9.3) can read, and remove
what rocksdict adds there.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Checkpoint,
    ChecksumType,
    DBCompressionType,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from kvfix.errors import DatabaseLocked, NotKvrocks, NotRocksDB, PathMissing, Unreadable

ROCKSDICT_CONFIG = "rocksdict-config.json"
KVROCKS_REQUIRED_CFS = ("metadata",)
#: SST format 5 is read by every RocksDB since 6.6, so Kvrocks 2.9 (8.11) and 2.10 (9.3) alike.
PINNED_SST_FORMAT_VERSION = 5
_SHADOW_SKIP = ("LOCK", ROCKSDICT_CONFIG)
FILE_OPENING_THREADS = max(1, min(4, os.cpu_count() or 1))
#: Table cache size: SST files held open at once (RocksDB's default -1 opens all of them).
MAX_OPEN_FILES = 512


def resolve_db_path(path: str | os.PathLike[str]) -> Path:
    """The RocksDB directory for a Kvrocks ``dir`` or its ``dir/db``; never creates anything."""
    p = Path(path)
    try:
        if not p.exists():
            raise PathMissing(f"{p}: no such file or directory")
        if not p.is_dir():
            raise NotRocksDB(f"{p}: not a directory (give a Kvrocks dir or its db/ directory)")
        for candidate in (p, p / "db"):
            if (candidate / "CURRENT").is_file():
                return candidate.absolute()
    except OSError as exc:  # pathlib raises on EACCES (e.g. a chmod 000 dir or parent), not only ENOENT
        raise Unreadable(f"{exc.filename or p}: cannot read: {exc.strerror}") from exc
    raise NotRocksDB(f"{p}: not a RocksDB directory (no CURRENT file in it or in {p / 'db'})")


def lock_holder(db_path: Path) -> int | None:
    """PID of the process holding RocksDB's LOCK (a running server), or None.

    F_GETLK needs only a read-only descriptor, so this works on read-only media too.
    """
    lock = db_path / "LOCK"
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"{lock}: cannot open: {exc.strerror}") from exc
    try:
        query = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        l_type, _, _, _, pid = struct.unpack("hhqqi4x", answer)
    finally:
        os.close(fd)
    return None if l_type == fcntl.F_UNLCK else pid


def ensure_unlocked(db_path: Path) -> None:
    pid = lock_holder(db_path)
    if pid is not None:
        raise DatabaseLocked(
            f"{db_path / 'LOCK'} is held by process {pid} (a running Kvrocks server?): "
            "stop the server first, or point kvfix at a backup or checkpoint"
        )


def _raw() -> Options:
    """Options for bytes keys; file opening on a few threads, not RocksDB's default 16.

    RocksDB opens every SST file of every column family at start-up, each family with
    its own pool of ``max_file_opening_threads`` threads: with the default 16 and
    Kvrocks' 7 families, starting those threads was half of a small scan's time
    (5.5 ms of open against 2.3 ms with 2 threads, benchmarks/bench.py).  A bounded
    table cache (``MAX_OPEN_FILES``) opens at most 16 files up front and the rest when
    read, and keeps a database of thousands of SST files within a 1024-descriptor ulimit;
    a read-write open of a 447 MB database took 6 ms instead of 10.
    """
    opts = Options(raw_mode=True)
    opts.set_max_file_opening_threads(FILE_OPENING_THREADS)
    opts.set_max_open_files(MAX_OPEN_FILES)
    # Table properties read at open only feed compaction decisions; kvfix never compacts.
    opts.set_skip_stats_update_on_db_open(True)
    return opts


@dataclass
class Database:
    """An open database: column-family handles by name, raw bytes keys and values."""

    path: Path
    db: Rdict
    column_families: tuple[str, ...]
    read_only: bool

    def cf(self, name: str) -> Rdict | None:
        if name not in self.column_families:
            return None
        return self.db.get_column_family(name)

    def iterator(self, name: str):
        """A raw RdictIter over one column family, or None when the family is absent.

        (rocksdict 0.3.29 ignores iterate bounds in raw mode, so callers seek and compare.)
        """
        cf = self.cf(name)
        if cf is None:
            return None
        ro = ReadOptions()
        ro.fill_cache(False)
        return cf.iter(ro)

    def items(self, name: str, from_key: bytes | None = None):
        """Every (key, value) of one column family in key order (from ``from_key`` on), or None
        when the family is absent.

        rocksdict's items() is its fastest way to read keys and values (one call per record
        instead of key()/value()/next()); deep walks use it, seeking walks use iterator().
        """
        cf = self.cf(name)
        if cf is None:
            return None
        ro = ReadOptions()
        ro.fill_cache(False)
        return cf.items(from_key=from_key, read_opt=ro)

    def get(self, name: str, key: bytes) -> bytes | None:
        cf = self.cf(name)
        return None if cf is None else cf.get(key)

    def write(self, batch: WriteBatch, *, sync: bool = True) -> None:
        wo = WriteOptions()
        wo.sync = sync
        self.db.write(batch, wo)

    def batch(self) -> WriteBatch:
        return WriteBatch(raw_mode=True)

    def state(self) -> tuple[str, int]:
        """(IDENTITY, latest sequence number): equal tokens mean no write happened in between.

        Every write to a RocksDB database, a server's included, takes a new sequence
        number, and read-only and read-write opens of the same files report the same one
        (checked on every fixture); IDENTITY tells a different database with the same
        number apart.  migrate and repair compare the token taken when planning (read-only)
        with the one under the write lock, and re-plan only when they differ.
        """
        try:
            identity = (self.path / "IDENTITY").read_text(errors="replace").strip()
        except OSError:
            identity = ""
        return identity, self.db.latest_sequence_number()

    def handle(self, name: str):
        return self.db.get_column_family_handle(name)

    def flush_all(self) -> None:
        for name in self.column_families:
            self.db.get_column_family(name).flush(True)

    def checkpoint(self, target: Path) -> None:
        Checkpoint(self.db).create_checkpoint(str(target))


def _list_cfs(path: Path, shown: Path | None = None) -> tuple[str, ...]:
    """Column families at path; errors name ``shown`` (the user's directory, not a shadow)."""
    try:
        return tuple(Rdict.list_cf(str(path), _raw()))
    except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status text
        raise NotRocksDB(f"{shown or path}: not a readable RocksDB database ({_one_line(exc)})") from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _check_kvrocks(path: Path, cfs: tuple[str, ...]) -> None:
    missing = [c for c in KVROCKS_REQUIRED_CFS if c not in cfs]
    if missing:
        raise NotKvrocks(
            f"{path}: a RocksDB database but not Kvrocks (no {', '.join(missing)} column family; has {', '.join(cfs)})"
        )


def _make_shadow(db_path: Path, shadow: Path) -> None:
    """Symlinks to the database's files, without LOCK, info logs and OPTIONS files.

    A read-only open reads neither LOCK nor OPTIONS files, but rocksdict parses the latest
    OPTIONS file on every open and then discards it when options are given (about 1 ms,
    a quarter of opening a Kvrocks database); without one it takes ours at once.
    """
    for entry in os.scandir(db_path):
        name = entry.name
        if name in _SHADOW_SKIP or name.startswith(("LOG", "OPTIONS-")):
            continue
        if entry.is_file():
            os.symlink(entry.path, shadow / entry.name)


@contextmanager
def open_read_only(path: str | os.PathLike[str]) -> Iterator[Database]:
    """Open a Kvrocks database read-only through a shadow directory (see module doc)."""
    db_path = resolve_db_path(path)
    if not os.access(db_path, os.R_OK | os.X_OK):
        raise Unreadable(f"{db_path}: permission denied")
    ensure_unlocked(db_path)
    with tempfile.TemporaryDirectory(prefix="kvfix-ro-") as tmp:
        shadow = Path(tmp) / "db"
        shadow.mkdir()
        _make_shadow(db_path, shadow)
        cfs = _list_cfs(shadow, db_path)
        _check_kvrocks(db_path, cfs)
        opts = _raw()
        opts.set_db_log_dir(tmp)
        try:
            rdict = Rdict(
                str(shadow),
                options=opts,
                column_families={c: _raw() for c in cfs},
                access_type=AccessType.read_only(),
            )
        except Exception as exc:
            raise Unreadable(f"{db_path}: RocksDB could not open it read-only ({_one_line(exc)})") from exc
        try:
            yield Database(db_path, rdict, cfs, read_only=True)
        finally:
            rdict.close()


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
    # SST files with the options above (uncompressed: a compressed database could grow
    # several times over), and closing would wait for them.  Kvrocks builds its options
    # from kvrocks.conf, not from the OPTIONS file this open leaves, and compacts as it
    # always does once it runs.  With compactions off, level-0 files must never stall
    # writes, so the triggers are out of reach (a migration adds one file per 64 MiB).
    opts.set_disable_auto_compactions(True)
    opts.set_level_zero_slowdown_writes_trigger(1 << 30)
    opts.set_level_zero_stop_writes_trigger(1 << 30)
    opts.set_db_log_dir(log_dir)
    opts.set_keep_log_file_num(1)
    return opts


@contextmanager
def open_read_write(path: str | os.PathLike[str]) -> Iterator[Database]:
    """Open the real directory read-write; refuses a live database; cleans up after rocksdict."""
    db_path = resolve_db_path(path)
    if not os.access(db_path, os.W_OK):
        raise Unreadable(f"{db_path}: not writable")
    ensure_unlocked(db_path)
    cfs = _list_cfs(db_path)
    _check_kvrocks(db_path, cfs)
    with tempfile.TemporaryDirectory(prefix="kvfix-log-") as log_dir:
        opts = _pinned_options(log_dir)
        try:
            rdict = Rdict(str(db_path), options=opts, column_families={c: _pinned_options(log_dir) for c in cfs})
        except Exception as exc:
            text = _one_line(exc)
            if "lock" in text.lower():
                raise DatabaseLocked(f"{db_path / 'LOCK'}: database is in use ({text}); stop the server first") from exc
            raise Unreadable(f"{db_path}: RocksDB could not open it for writing ({text})") from exc
        try:
            yield Database(db_path, rdict, cfs, read_only=False)
        finally:
            rdict.close()
            # Kvrocks never writes this file; rocksdict does on every open.  Removed even if it
            # was there before: a kvfix run killed mid-way leaves one that no later run could
            # tell from a user's file.
            (db_path / ROCKSDICT_CONFIG).unlink(missing_ok=True)


def make_checkpoint(db: Database, backup_dir: Path) -> Path:
    """A RocksDB checkpoint (hard links where possible) of the open database."""
    backup_dir.parent.mkdir(parents=True, exist_ok=True)
    if backup_dir.exists():
        raise Unreadable(f"{backup_dir}: backup target already exists")
    try:
        db.checkpoint(backup_dir)
    except Exception as exc:
        shutil.rmtree(backup_dir, ignore_errors=True)
        raise Unreadable(f"{backup_dir}: checkpoint failed ({_one_line(exc)})") from exc
    (backup_dir / ROCKSDICT_CONFIG).unlink(missing_ok=True)
    return backup_dir


KVROCKS_CFS = ("default", "metadata", "zset_score", "pubsub", "propagate", "stream", "search")


@contextmanager
def create_database(path: str | os.PathLike[str], column_families: tuple[str, ...] = KVROCKS_CFS) -> Iterator[Database]:
    """A new, empty database with Kvrocks' column families (tests, benchmarks, examples).

    Refuses an existing path; written with the same pinned options as migrate.
    """
    db_path = Path(path)
    if db_path.exists():
        raise Unreadable(f"{db_path}: already exists")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kvfix-log-") as log_dir:
        opts = _pinned_options(log_dir)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        cfs = {c: _pinned_options(log_dir) for c in column_families if c != "default"}
        rdict = Rdict(str(db_path), options=opts, column_families=cfs)
        try:
            yield Database(db_path.absolute(), rdict, tuple(column_families), read_only=False)
            rdict.flush_wal(True)
        finally:
            rdict.close()
            (db_path / ROCKSDICT_CONFIG).unlink(missing_ok=True)
