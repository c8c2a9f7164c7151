"""An open database: bytes in, bytes out, every read checked (see :mod:`kvfix.store.reading`)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, cast

from rocksdict import ReadOptions, WriteBatch, WriteOptions

from kvfix.errors import ReadError
from kvfix.store.reading import CheckedIterator, Pair, chunks, describe_failure, range_chunks, status_error
from kvfix.textsafe import show_path

#: One write: a put (value given) or a delete (value None) in one column family.
Op = tuple[str, bytes, bytes | None]


def _read_options() -> ReadOptions:
    ro = ReadOptions()
    cast(Any, ro).fill_cache(False)  # one pass over everything: caching would only evict
    ro.set_verify_checksums(True)
    return ro


def _end_error(it: Any, start: bytes | None, last: bytes | None) -> str | None:
    """Why an iteration from ``start`` that read up to ``last`` stopped short, if it did:
    RocksDB's status, or more data after ``last`` (``it`` sees what the reader saw)."""
    if last is not None:
        it.seek(last + b"\x00")  # the smallest key after the last one read
    elif start is not None:
        it.seek(start)
    else:
        it.seek_to_first()
    error = status_error(it)
    if error is None and it.valid():
        error = "the iteration stopped before the end of the data"
    return error


@dataclass
class Database:
    """Column families by name, raw bytes keys and values.

    ``salvage``: a failed read is recorded in ``read_errors`` and read as the end of its
    range instead of raising, for a report clearly marked partial.
    """

    path: Path
    _rdict: Any
    column_families: tuple[str, ...]
    read_only: bool
    salvage: bool = False
    #: Directory RocksDB was given (a shadow for read-only opens): mapped back in messages.
    opened_at: Path | None = None
    read_errors: list[str] = field(default_factory=list)
    #: A secondary instance over a running server's directory: the view as of its open.
    live: bool = False
    #: Why closing failed (after a full disk), if it did.
    close_error: str | None = None
    #: Column family handles by name (rocksdict makes a new object per lookup, ~2 µs).
    _handles: dict[str, Any] = field(default_factory=dict, repr=False)
    #: Read options for point reads (one per read would cost more than a read from cache).
    _get_options: ReadOptions = field(default_factory=_read_options, repr=False)

    # --- errors ---------------------------------------------------------------------------

    def shown(self, text: str) -> str:
        """RocksDB's text with the shadow directory replaced by the operator's directory."""
        if self.opened_at is not None and self.opened_at != self.path:
            text = text.replace(str(self.opened_at), str(self.path))
        return text

    def failed(self, cf: str, error: str, after: bytes | None) -> bool:
        message = f"{show_path(self.path)}: read error in {self.shown(describe_failure(cf, error, after))}"
        if not self.salvage:
            raise ReadError(message)
        self.read_errors.append(message)
        return False

    # --- reading --------------------------------------------------------------------------

    def _cf(self, name: str) -> Any:
        cf = self._handles.get(name)
        if cf is None and name in self.column_families:
            cf = self._handles[name] = self._rdict.get_column_family(name)
        return cf

    def iterator(self, name: str) -> CheckedIterator | None:
        """A seeking iterator over one column family (None when the family is absent)."""
        cf = self._cf(name)
        return None if cf is None else CheckedIterator(cf.iter(_read_options()), name, self.failed)

    def _end_check(self, name: str, start: bytes | None) -> Any:
        # Made with the reading iterator, so it sees the database as that one does: records
        # written while a range is read (a migration's own parts) are not missing data.
        it = self._cf(name).iter(_read_options())

        def check(last: bytes | None) -> None:
            error = _end_error(it, start, last)
            if error is not None:
                self.failed(name, error, last)

        return check

    def keys_between(self, name: str, start: bytes, end: bytes, limit: int, step: int = 1024) -> list[bytes] | None:
        """Up to ``limit`` keys k with start <= k < end, in key order: one range read where
        many point reads would cost more; read ``step`` keys at a time, so at most that
        many past ``end``.  None when the read failed in salvage mode (not recorded: the
        caller reads those keys again one by one, which reports it)."""
        cf = self._cf(name)
        if cf is None:
            return []
        it = cf.iter(_read_options())
        keys = iter(cf.keys(from_key=start, read_opt=_read_options()))
        got: list[bytes] = []
        while len(got) < limit:
            want = min(step, limit - len(got))
            part = list(islice(keys, want))
            got += part
            if part and part[-1] >= end:
                break
            if len(part) < want:  # ran out: the family's end, or a failed read
                last = got[-1] if got else None
                error = _end_error(it, start, last)
                if error is not None:
                    if not self.salvage:
                        self.failed(name, error, last)
                    return None
                break
        return got[: bisect_left(got, end)]

    def chunks(self, name: str, start: bytes | None = None, size: int = 4096) -> Iterator[list[Pair]]:
        """Lists of (key, value), in key order from ``start`` to the family's end."""
        cf = self._cf(name)
        if cf is None:
            return iter(())
        items = iter(cf.items(from_key=start, read_opt=_read_options()))
        return chunks(items, size, self._end_check(name, start))

    def range_chunks(self, name: str, start: bytes, end: bytes, size: int = 4096) -> Iterator[list[Pair]]:
        """Lists of (key, value) with start <= key < end."""
        cf = self._cf(name)
        if cf is None:
            return iter(())
        items = iter(cf.items(from_key=start, read_opt=_read_options()))
        return range_chunks(items, end, size, self._end_check(name, start))

    def get(self, name: str, key: bytes) -> bytes | None:
        cf = self._cf(name)
        if cf is None:
            return None
        try:
            return cf.get(key, read_opt=self._get_options)
        except Exception as exc:
            self.failed(name, " ".join(str(exc).split()), None)
            return None

    def get_many(self, name: str, keys: list[bytes], unreadable: list[int] | None = None) -> list[bytes | None]:
        """Point reads of ``keys`` in one MultiGet (about a third of the cost of one get each).

        RocksDB's batch fails as a whole when one key's read fails; in salvage mode the
        batch is then read again key by key, so only the keys that really fail are lost:
        their positions go to ``unreadable`` (their value reads None, which is no answer).
        """
        cf = self._cf(name)
        if cf is None or not keys:
            return [None] * len(keys)
        try:
            return list(cf.get(keys, read_opt=self._get_options))
        except Exception as exc:
            if not self.salvage:
                self.failed(name, " ".join(str(exc).split()), None)
        out: list[bytes | None] = []
        for i, key in enumerate(keys):
            try:
                out.append(cf.get(key, read_opt=self._get_options))
            except Exception as exc:
                self.failed(name, " ".join(str(exc).split()), None)
                out.append(None)
                if unreadable is not None:
                    unreadable.append(i)
        return out

    def state(self) -> tuple[str, int]:
        """(IDENTITY, latest sequence number): equal tokens mean no write happened in between.

        Every write to a RocksDB database, a server's included, takes a new sequence
        number, and read-only and read-write opens of the same files report the same one
        (checked on every fixture); IDENTITY tells a different database with the same
        number apart.
        """
        try:
            identity = (self.path / "IDENTITY").read_text(errors="replace").strip()
        except OSError:
            identity = ""
        return identity, self._rdict.latest_sequence_number()

    def live_sst_files(self) -> dict[str, int]:
        """SST files the MANIFEST references: name -> size."""
        return {f["name"].lstrip("/"): f["size"] for f in self._rdict.live_files()}

    # --- writing --------------------------------------------------------------------------

    def write(self, ops: Iterable[Op], *, sync: bool = True) -> None:
        """One atomic WriteBatch; ops are applied in order (a later put wins over a delete)."""
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        handles: dict[str, Any] = {}
        for cf, key, value in ops:
            handle = handles.get(cf)
            if handle is None:
                handle = handles[cf] = self._rdict.get_column_family_handle(cf)
            if value is None:
                delete(key, handle)
            else:
                put(key, value, handle)
        wo = WriteOptions()
        wo.sync = sync
        self._rdict.write(batch, wo)

    def flush_all(self) -> None:
        for name in self.column_families:
            self._rdict.get_column_family(name).flush(True)

    def close(self) -> None:
        self._handles.clear()  # no handle may outlive the close (each holds the database)
        self._rdict.close()
