"""RocksDB's LOCK file: who holds it, and holding it ourselves for a whole write run.

RocksDB locks ``<db>/LOCK`` with a POSIX record lock (fcntl F_SETLK).  Such a lock
belongs to the process and is released when the process closes *any* descriptor of
the file, so while kvfix holds it no other descriptor of LOCK may be opened and closed:
:func:`lock_holder` is for read-only commands, :class:`HeldLock` for writers.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path
from types import TracebackType

from kvfix.errors import DatabaseLocked, Unreadable
from kvfix.textsafe import show_path

_FLOCK = "hhqqi4x"


def _query(fd: int) -> int | None:
    answer = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    l_type, _, _, _, pid = struct.unpack(_FLOCK, answer)
    return None if l_type == fcntl.F_UNLCK else pid


def lock_holder(db_path: Path) -> int | None:
    """PID of the process holding RocksDB's LOCK (a running server), or None.

    F_GETLK needs only a read-only descriptor, so this works on read-only media too.
    """
    lock = db_path / "LOCK"
    if lock.is_dir():
        raise Unreadable(f"{show_path(lock)}: is a directory, not RocksDB's lock file; move it away first")
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unreadable(f"{show_path(lock)}: cannot open: {exc.strerror}") from exc
    try:
        return _query(fd)
    finally:
        os.close(fd)


def locked_message(db_path: Path, pid: int | None, live_hint: bool = False) -> str:
    who = f"process {pid}" if pid else "another process"
    hint = "; or add --live for a read-only view of the running server" if live_hint else ""
    return (
        f"{show_path(db_path / 'LOCK')} is held by {who} (a running Kvrocks server?): "
        f"stop the server first, or point kvfix at a backup{hint}"
    )


def ensure_unlocked(db_path: Path, live_hint: bool = False) -> None:
    pid = lock_holder(db_path)
    if pid is not None:
        raise DatabaseLocked(locked_message(db_path, pid, live_hint))


class HeldLock:
    """RocksDB's LOCK, held by kvfix from planning to the end of verification.

    A server started meanwhile fails to take it (Kvrocks then refuses to start) instead
    of opening the database between kvfix's writes and its verification.  kvfix's own
    read-write open in the same process takes the same lock without conflict.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path / "LOCK"
        self._fd: int | None = None

    def __enter__(self) -> HeldLock:
        if self.path.is_dir():
            raise Unreadable(f"{show_path(self.path)}: is a directory, not RocksDB's lock file; move it away first")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise Unreadable(f"{show_path(self.path)}: cannot open for locking: {exc.strerror}") from exc
        try:
            fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        except OSError as exc:
            pid = _query(fd) if exc.errno in (errno.EACCES, errno.EAGAIN) else None
            os.close(fd)
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise DatabaseLocked(locked_message(self.path.parent, pid)) from exc
            raise Unreadable(f"{show_path(self.path)}: cannot lock: {exc.strerror}") from exc
        self._fd = fd
        return self

    def reacquire(self) -> None:
        """Take the lock again after RocksDB's close released it (POSIX locks are per process)."""
        if self._fd is not None:
            fcntl.fcntl(self._fd, fcntl.F_SETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
