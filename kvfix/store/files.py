"""The files of a database directory: what RocksDB owns, and a fingerprint of them."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROCKSDB_FILE = re.compile(r"^(\d+\.(sst|log|blob)|MANIFEST-\d+|OPTIONS-\d+|CURRENT|IDENTITY|LOCK)$")

#: name -> (size, mtime in ns) of every file but LOCK.
Fingerprint = dict[str, tuple[int, int]]


def file_names(db_path: Path) -> set[str]:
    return {p.name for p in db_path.iterdir()}


def foreign_files(db_path: Path, before: set[str], ignore: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Names added to db_path since ``before`` that are not RocksDB's own data files."""
    return sorted(n for n in file_names(db_path) - before - set(ignore) if not ROCKSDB_FILE.match(n))


def fingerprint(db_path: Path) -> Fingerprint:
    """What the files on disk are: a plan is applied only to the files it was made from."""
    out: Fingerprint = {}
    for entry in os.scandir(db_path):
        if entry.name != "LOCK" and entry.is_file(follow_symlinks=False):
            st = entry.stat(follow_symlinks=False)
            out[entry.name] = (st.st_size, st.st_mtime_ns)
    return out


def first_difference(before: Fingerprint, now: Fingerprint) -> str | None:
    for name in sorted(before.keys() | now.keys()):
        if name not in now:
            return f"{name} was removed"
        if name not in before:
            return f"{name} appeared"
        if before[name] != now[name]:
            return f"{name} changed"
    return None
