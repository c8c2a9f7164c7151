"""The operator's path, resolved once into the real directories every later step uses."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

from kvfix.errors import NotRocksDB, PathMissing, Unreadable, WriteRefused
from kvfix.textsafe import show_path


@dataclass(frozen=True)
class DataDir:
    """A Kvrocks data directory: what the operator typed and the real RocksDB directory.

    ``db`` has every symlink and ``..`` resolved, so containment checks (a backup inside
    the database) and default locations cannot be fooled by how the path was written.
    """

    given: str
    db: Path

    @property
    def kvrocks_dir(self) -> Path:
        """The server's ``dir`` (the parent of ``db/``), or the RocksDB directory itself."""
        return self.db.parent if self.db.name == "db" else self.db

    def shown(self) -> str:
        return show_path(self.db)


def resolve(path: str | os.PathLike[str]) -> DataDir:
    """The RocksDB directory for a Kvrocks ``dir`` or its ``dir/db``; never creates anything."""
    p = Path(path)
    try:
        if not p.exists():
            raise PathMissing(f"{show_path(p)}: no such file or directory")
        if not p.is_dir():
            raise NotRocksDB(f"{show_path(p)}: not a directory (give a Kvrocks dir or its db/ directory)")
        for candidate in (p, p / "db"):
            if (candidate / "CURRENT").is_file():
                return DataDir(os.fspath(path), Path(os.path.realpath(candidate)))
    except OSError as exc:  # pathlib raises on EACCES (a chmod 000 dir or parent), not only ENOENT
        raise Unreadable(f"{show_path(exc.filename or p)}: cannot read: {exc.strerror}") from exc
    raise NotRocksDB(f"{show_path(p)}: not a RocksDB directory (no CURRENT file in it or in {show_path(p / 'db')})")


def real(path: Path) -> Path:
    """``path`` with symlinks and ``..`` resolved, also when its last parts do not exist yet."""
    return Path(os.path.realpath(path))


def inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def backup_target(data: DataDir, parent: Path | None, now: _dt.datetime | None = None) -> Path:
    """``<kvrocks dir>.kvfix-backup-<UTC>`` in ``parent`` (default: beside the data directory).

    Refused when it would sit inside the database directory, or hold it: a backup there
    would be written into what it backs up.
    """
    anchor = data.kvrocks_dir
    stamp = (now or _dt.datetime.now(_dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    base = real(parent if parent is not None else anchor.parent) / f"{anchor.name}.kvfix-backup-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{n}")
        n += 1
    if inside(candidate, data.db) or inside(data.db, candidate):
        raise WriteRefused(
            f"backup location {show_path(candidate)} is inside the database {data.shown()}: "
            "nothing written; give --backup-dir outside it"
        )
    return candidate
