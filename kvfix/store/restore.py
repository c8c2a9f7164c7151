"""Listing kvfix's backups of a data directory, and putting one back.

A restore never deletes anything: the backup is copied (SST files hard-linked) into a new
directory beside ``db/`` and checked, then the current ``db/`` is renamed aside and the
copy renamed into its place, all while RocksDB's LOCK is held, so a server cannot start
on a half-restored directory.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kvfix.errors import WriteRefused
from kvfix.store.backup import make_backup
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only
from kvfix.store.paths import DataDir, resolve
from kvfix.textsafe import show_path

_STAMP = re.compile(r"\.kvfix-backup-(\d{8}T\d{6}Z)(-\d+)?$")


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    taken_at: str  # ISO UTC time from the name
    files: int
    bytes: int  # apparent size (hard-linked SST files count in full)
    complete: bool  # has CURRENT, IDENTITY and a MANIFEST


def list_backups(data: DataDir, where: Path | None = None) -> list[BackupInfo]:
    """kvfix's backups of ``data`` beside its Kvrocks dir (or in ``where``), newest first."""
    parent = where if where is not None else data.kvrocks_dir.parent
    prefix = f"{data.kvrocks_dir.name}.kvfix-backup-"
    out = []
    for entry in os.scandir(parent):
        m = _STAMP.search(entry.name)
        if not (entry.name.startswith(prefix) and m and entry.is_dir(follow_symlinks=False)):
            continue
        names = os.listdir(entry.path)
        size = sum(os.stat(os.path.join(entry.path, n)).st_size for n in names)
        stamp = _dt.datetime.strptime(m[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.UTC).isoformat()
        complete = {"CURRENT", "IDENTITY"} <= set(names) and any(n.startswith("MANIFEST-") for n in names)
        out.append(BackupInfo(Path(entry.path), stamp, len(names), size, complete))
    return sorted(out, key=lambda b: (b.taken_at, b.path.name), reverse=True)


def restore(backup: Path, data: DataDir, now: _dt.datetime | None = None) -> Path:
    """Put ``backup`` in place of ``data.db``; returns where the replaced database was moved."""
    source = resolve(backup)
    if source.db == data.db:
        raise WriteRefused(f"{data.shown()} is the backup itself; nothing changed")
    stamp = (now or _dt.datetime.now(_dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    staging = data.db.with_name(f"{data.db.name}.kvfix-restoring-{stamp}")
    aside = data.db.with_name(f"{data.db.name}.kvfix-replaced-{stamp}")
    if staging.exists() or aside.exists():
        raise WriteRefused(f"{show_path(aside)} already exists; nothing changed; try again in a second")
    with HeldLock(data.db):
        with open_read_only(source) as db:  # the backup must open and read as a database
            want = (db.state(), db.live_sst_files())
        make_backup(source, staging)
        with open_read_only(DataDir(str(staging), staging)) as db:
            if (db.state(), db.live_sst_files()) != want:
                raise WriteRefused(f"the copy at {show_path(staging)} does not open as the backup; nothing changed")
        os.rename(data.db, aside)
        os.rename(staging, data.db)
        _fsync_dir(data.db.parent)
    return aside


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
