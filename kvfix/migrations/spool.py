"""A real run's writes, made while it plans and replayed when it writes: one walk less.

Planning reads every stream anyway; the write phase would otherwise read them all again
to make the same writes.  So each stream's unit (its ops, or a Split's parts, with the
fingerprint and the verification's integers for it) is encoded with marshal, in frames
of _FRAME streams compressed with zlib (level 1: keys share long prefixes, so a frame
shrinks several times for a few percent of the time), into a temporary file: in memory
up to SPOOL_MEMORY bytes, then on disk under ``TMPDIR``, unlinked from the start, so
nothing is left behind by a crash or a kill.

The spool is only an optimisation: it is given up (and the writes planned again from the
database, as without it) when its disk would be left with less than RESERVE_BYTES free,
when writing it fails, or when the database is not in the state it was planned from.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from kvfix.errors import ReadError
from kvfix.migrations.base import Split, Unit, Written, took
from kvfix.store.database import Op

#: Bytes kept in memory before the spool moves to a file.
SPOOL_MEMORY = int(os.environ.get("KVFIX_SPOOL_MEMORY", str(16 << 20)))
#: Free bytes the spool leaves on its file system (at least; or 5% of it, if more).
RESERVE_BYTES = int(os.environ.get("KVFIX_SPOOL_RESERVE", str(1 << 30)))
#: Records in one frame of the file.
_FRAME = 256
#: Ops in one frame (beyond one unit's): about one write batch at most in memory.
_FRAME_OPS = 8192
#: Bytes written between two looks at the free space.
_CHECK_EVERY = 8 << 20


class WriteSpool:
    """Units in planning order, encoded; :meth:`replay` gives them back once (see the module doc)."""

    def __init__(self, memory: int | None = None, reserve: int | None = None, path: Path | None = None) -> None:
        """``path``: a second process's spool, in a named file from the start (see :meth:`handoff`)."""
        size = SPOOL_MEMORY if memory is None else memory
        self._memory = size
        self._file: IO[bytes] | None
        if path is None:
            self._file = tempfile.SpooledTemporaryFile(max_size=size)  # noqa: SIM115  (closed by close)
        else:
            self._file = open(path, "w+b")  # noqa: SIM115  (closed by handoff or close)
        self._path = path
        #: Spools of a second process, replayed after this one's: (file, frames).
        self._later: list[tuple[IO[bytes], int]] = []
        self._reserve = RESERVE_BYTES if reserve is None else reserve
        self._pending: list[tuple[Any, ...]] = []
        self._pending_ops = 0
        self._frames = 0
        self._unchecked = 0
        self._finished = False
        self._seen_on_disk = False
        #: Why the spool was given up (None: it holds every unit added).
        self.given_up: str | None = None

    @property
    def usable(self) -> bool:
        return self._file is not None and self.given_up is None

    def add(self, unit: Unit) -> None:
        if self._file is None:
            return
        try:
            if isinstance(unit.ops, Split):
                self._put(("s", unit.fingerprint, unit.expectation))
                for part in unit.ops.parts:
                    self._put(("p", part))
                self._put(("e",))
            else:
                self._put(("u", unit.fingerprint, unit.expectation, unit.ops))
        except (OSError, ValueError) as exc:
            self.give_up(f"writing it failed: {getattr(exc, 'strerror', None) or exc}")

    def _put(self, record: tuple[Any, ...]) -> None:
        """Records go to the file in frames of up to _FRAME of them (a length, then one marshal
        of the list, compressed): reading a frame is one call, not one per record.  A frame
        holds at most about _FRAME_OPS ops beyond one unit's, so memory stays one batch."""
        self._pending.append(record)
        self._pending_ops += len(record[-1]) if record[0] in ("u", "p") else 0
        if len(self._pending) >= _FRAME or self._pending_ops >= _FRAME_OPS:
            self._flush()

    def _flush(self) -> None:
        assert self._file is not None
        if not self._pending:
            return
        data = zlib.compress(marshal.dumps(self._pending), 1)
        self._file.write(len(data).to_bytes(8, "little") + data)
        self._frames += 1
        self._pending, self._pending_ops = [], 0
        self._unchecked += len(data)
        if self._unchecked >= _CHECK_EVERY or (self._unchecked and not self._checked_on_disk()):
            self._unchecked = 0
            self._check_space()

    def _checked_on_disk(self) -> bool:
        """False once, when the spool has just moved to a file: look at the free space then."""
        rolled = self._counts_as_disk()
        if rolled and not self._seen_on_disk:
            self._seen_on_disk = True
            return False
        return True

    def _counts_as_disk(self) -> bool:
        """Past what one process keeps in memory: a second process's file is held to the same
        free-space rule only from that size on, as one process's spool would be."""
        assert self._file is not None
        rolled = getattr(self._file, "_rolled", None)
        return self._file.tell() >= self._memory if rolled is None else bool(rolled)

    def _check_space(self) -> None:
        assert self._file is not None
        if not self._counts_as_disk():
            return  # still in memory (or, a second process's, within what memory would hold)
        st = os.fstatvfs(self._file.fileno())
        if st.f_bavail * st.f_frsize < max(self._reserve, st.f_blocks * st.f_frsize // 20):
            raise OSError(f"its file system ({tempfile.gettempdir()}) is nearly full")

    def finish(self) -> None:
        """Planning is over: the last frame written and flushed (or the spool given up)."""
        if self._file is None:
            return
        try:
            self._flush()
            self._file.flush()
            self._finished = True
        except (OSError, ValueError) as exc:
            self.give_up(f"writing it failed: {getattr(exc, 'strerror', None) or exc}")

    def give_up(self, why: str) -> None:
        self.given_up = why
        self.close()

    def close(self) -> None:
        """Closed and gone (a failed flush of its last buffer is of no matter: it is deleted)."""
        f, self._file = self._file, None
        files = [f, *(later for later, _ in self._later)]
        self._later = []
        for each in files:
            if each is not None:
                with contextlib.suppress(OSError):
                    each.close()

    def handoff(self) -> dict[str, Any]:
        """A second process's spool, finished, as its parent takes it in (:meth:`join`)."""
        self.finish()
        state = {"path": str(self._path), "frames": self._frames, "given_up": self.given_up}
        self.close()
        return state

    def join(self, later: dict[str, Any] | None) -> None:
        """Replay a second process's spool after this one's (its streams sort after ours); its
        file is opened and unlinked here.  None, or one given up: this one is given up too."""
        if self._file is None:
            return
        if later is None or later["given_up"] is not None:
            why = "the second process's were not kept" if later is None else later["given_up"]
            self.give_up(why)
            return
        try:
            f = open(later["path"], "rb")  # noqa: SIM115  (closed by replay or close)
            os.unlink(later["path"])
        except OSError as exc:
            self.give_up(f"the second process's could not be opened: {exc.strerror or exc}")
            return
        self._later.append((f, later["frames"]))

    def replay(self, written: Written) -> Iterator[list[Op] | Split]:
        """The units, in order, each recorded in ``written`` as it is taken; the spool is
        closed when they end (or when the writes stop)."""
        f = self._file
        if f is None or not self._finished:
            raise ReadError("the writes kept from planning were replayed before they were complete")
        try:
            f.seek(0)
            yield from self._units(written, self._read(f, self._frames))
            for later, frames in self._later:
                yield from self._units(written, self._read(later, frames))
        finally:
            self.close()

    def _units(self, written: Written, records: Iterator[tuple[Any, ...]]) -> Iterator[list[Op] | Split]:
        for record in records:
            if record[0] == "u":
                yield took(written, Unit(record[1], record[2], record[3]))
            else:
                parts = self._parts(records)
                yield took(written, Unit(record[1], record[2], Split(parts)))
                for _ in parts:  # parts not taken: passed over to the next unit
                    pass

    def _read(self, f: IO[bytes], frames: int) -> Iterator[tuple[Any, ...]]:
        for _ in range(frames):
            try:
                size = int.from_bytes(f.read(8), "little")
                data = f.read(size)
                if len(data) != size:
                    raise EOFError(f"{len(data):,} of {size:,} bytes")
                frame = marshal.loads(zlib.decompress(data))
            except (EOFError, ValueError, TypeError, OSError, zlib.error) as exc:
                why = f"the writes kept from planning (a temporary file) could not be read back: {exc}"
                raise ReadError(why) from exc
            yield from frame

    @staticmethod
    def _parts(records: Iterator[tuple[Any, ...]]) -> Iterator[list[Op]]:
        for record in records:
            if record[0] == "e":
                return
            yield record[1]
