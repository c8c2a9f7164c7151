"""The backup kvfix takes before its first write: the files the server left, as they are.

Taken before the read-write open, because that open replays the write-ahead log,
flushes it and deletes the old log, MANIFEST and OPTIONS files: a checkpoint taken after
it would hold RocksDB's reading of the originals, not the originals.  SST and blob files
are immutable, so hard links share their bytes (copies where links are not possible);
every other file (logs, MANIFEST, OPTIONS, CURRENT, IDENTITY) is copied byte for byte
and synced.  The backup is a RocksDB directory: restore it by putting it where db/ was.
"""

from __future__ import annotations

import errno
import filecmp
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from kvfix.errors import BackupFailed
from kvfix.store.paths import DataDir
from kvfix.textsafe import show_path

#: Never part of a backup: the lock, RocksDB's info logs, rocksdict's config.
_SKIP_PREFIXES = ("LOG",)
_SKIP = ("LOCK", "rocksdict-config.json")
_LINKABLE = (".sst", ".blob")


#: RocksDB's subdirectory of archived write-ahead logs (Kvrocks keeps them for replication).
ARCHIVE = "archive"


def _members(db_path: Path) -> list[str]:
    """The files a backup holds, as paths relative to the database directory."""
    names = []
    for entry in os.scandir(db_path):
        if entry.is_dir(follow_symlinks=False) and entry.name == ARCHIVE:
            names += [f"{ARCHIVE}/{e.name}" for e in os.scandir(entry.path) if e.is_file(follow_symlinks=False)]
        elif (
            entry.is_file(follow_symlinks=False)
            and entry.name not in _SKIP
            and not entry.name.startswith(_SKIP_PREFIXES)
        ):
            names.append(entry.name)
    return sorted(names)


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _put(src: Path, dst: Path) -> bool:
    """Hard link an immutable file, else copy it; returns whether it was linked."""
    if src.suffix in _LINKABLE or src.parent.name == ARCHIVE:  # archived logs are never written again
        try:
            os.link(src, dst)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
    shutil.copyfile(src, dst)
    _fsync(dst)
    return False


def make_backup(data: DataDir, target: Path, on_file: Callable[[int, int], None] | None = None) -> Path:
    """Copy the database's files to ``target`` (a new directory) and check the copy.

    On any failure (disk full included) the partial backup is removed and
    :class:`BackupFailed` says why; the data directory is never touched.
    """
    names = _members(data.db)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.mkdir()
        if any(n.startswith(f"{ARCHIVE}/") for n in names):
            (target / ARCHIVE).mkdir()
    except OSError as exc:
        raise BackupFailed(
            f"cannot create backup directory {show_path(target)}: {exc.strerror}; nothing written"
        ) from exc
    try:
        linked = set()
        for i, name in enumerate(names, 1):
            if _put(data.db / name, target / name):
                linked.add(name)
            if on_file is not None:
                on_file(i, len(names))
        _fsync(target, directory=True)
        _fsync(target.parent, directory=True)
        _compare(data.db, target, names, linked)
    except BaseException as exc:
        shutil.rmtree(target, ignore_errors=True)
        if isinstance(exc, OSError):
            why = "no space left on the device" if exc.errno == errno.ENOSPC else exc.strerror
            raise BackupFailed(f"backup to {show_path(target)} failed: {why}; nothing written") from exc
        raise
    return target


def _compare(src: Path, dst: Path, names: list[str], linked: set[str]) -> None:
    for name in names:
        a, b = src / name, dst / name
        same = os.path.samefile(a, b) if name in linked else filecmp.cmp(a, b, shallow=False)
        if not same:
            raise BackupFailed(f"backup file {show_path(b)} differs from {show_path(a)}; nothing written")
    if _members(dst) != names:
        raise BackupFailed(f"backup {show_path(dst)} does not hold exactly the database's files; nothing written")
