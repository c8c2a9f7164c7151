"""Walking the stream column family, one key incarnation (prefix) at a time.

By default the walk does not read every entry.  A legacy group record's first 8 bytes
are its group-name length, at most Kvrocks' proto-max-bulk-len (512 MiB), so legacy
records can only sit at subkeys whose first u64 is <= NAME_LIMIT; prefixed records
(and entries with ms = 2^64-1) start with 0xFF*8.  Per prefix we read those two
regions and seek over the entries between them, so the cost grows with streams and
group records, not entries.  ``deep=True`` reads everything.

What the fast walk skips is exactly the subkeys whose first u64 (zero-padded) lies in
(NAME_LIMIT, 2^64-1): no reading of such a subkey is a group record, so every group
record, every entry at ms = 2^64-1 and everything at a small alias id is read either
way.  Only --deep sees a malformed record sitting *among* the entries (an entry with a
damaged value, a short junk key): finding those means reading every entry.

Records come in chunks (lists of whole (key, value) pairs of one prefix) so the
analyzer's per-record loop has no generator step per record; the deep walk reads with
rocksdict's items() (its fastest key+value iteration) in ``islice`` slices and finds
prefix ends by bisection, so it does no Python work per record at all.
"""

from __future__ import annotations

import gc
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter

from kvfix.codec.errors import CodecError
from kvfix.codec.keys import decode_internal_key, successor
from kvfix.codec.stream import PREFIX_MARK
from kvfix.store.database import Database
from kvfix.store.reading import CheckedIterator

#: proto-max-bulk-len default: no group name can be longer, so no legacy record sorts higher.
NAME_LIMIT = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Prefix:
    namespace: bytes
    user_key: bytes
    version: int
    slot: int | None
    raw: bytes


@dataclass(frozen=True, slots=True)
class BadKey:
    """A stream column family key that is not an internal key under this cluster mode."""

    key: bytes
    value: bytes
    error: str


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic GC around a walk.

    A walk allocates a tuple per record (rocksdict's items()) and frees it at once by
    reference counting; the cyclic collector would still run every 700 allocations and
    re-scan the young objects, about 10% of a deep walk.  Walks create no reference
    cycles, so nothing is left for the collector when it resumes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


#: Records per chunk handed to the analyzer (bounded memory, few Python calls per record).
CHUNK = 4096


def walk_stream_cf(db: Database, cluster: bool, deep: bool) -> Iterator[Prefix | tuple[bytes, bytes] | BadKey]:
    """Yield a Prefix, then (subkey, value) pairs of that prefix, then the next Prefix ..."""
    n = 0
    for item in walk_stream_chunks(db, cluster, deep):
        if isinstance(item, list):
            for key, value in item:
                yield key[n:], value
        else:
            if isinstance(item, Prefix):
                n = len(item.raw)
            yield item


def walk_stream_chunks(
    db: Database, cluster: bool, deep: bool, start: bytes | None = None, stop: bytes | None = None
) -> Iterator[Prefix | BadKey | list[tuple[bytes, bytes]]]:
    """Like walk_stream_cf, but a prefix's records come as lists of whole (key, value) pairs.

    Every key in a list starts with the last Prefix's ``raw`` (the subkey is
    ``key[len(raw):]``); lists hold at most CHUNK records and are never empty.  With
    ``start``/``stop`` only keys in [start, stop) are read (parallel deep scans split the
    column family; a range that starts inside a prefix yields that Prefix first).
    """
    if deep:
        yield from _deep_chunks(db, cluster, start, stop)
    else:
        yield from _fast_chunks(db, cluster, start, stop)


def _prefix_of(key: bytes, cluster: bool) -> Prefix:
    ik = decode_internal_key(key, cluster)
    return Prefix(ik.namespace, ik.user_key, ik.version, ik.slot, key[: len(key) - len(ik.subkey)])


def _fast_chunks(
    db: Database, cluster: bool, start: bytes | None = None, stop: bytes | None = None
) -> Iterator[Prefix | BadKey | list[tuple[bytes, bytes]]]:
    it = db.iterator("stream")
    if it is None:
        return
    if start is None:
        it.seek_to_first()
    else:
        it.seek(start)
    while it.valid():
        key = it.key()
        if stop is not None and key >= stop:
            return
        try:
            prefix = _prefix_of(key, cluster)
        except CodecError as exc:
            yield BadKey(key, it.value(), str(exc))
            it.next()
            continue
        yield prefix
        raw = prefix.raw
        end = successor(raw)
        if stop is not None and (end is None or stop < end):
            end = stop
        # Legacy records: subkeys whose first u64 is <= NAME_LIMIT sort below this key.
        yield from _region(db, it, _bound(raw + _AFTER_NAME_LIMIT, end))
        it.seek(raw + PREFIX_MARK)
        yield from _region(db, it, end)
        if end is None or end == stop:
            return
        it.seek(end)


#: The subkey just above any legacy record: u64(NAME_LIMIT + 1).
_AFTER_NAME_LIMIT = (NAME_LIMIT + 1).to_bytes(8, "big")
#: Records read through the seeking iterator before a region switches to items() slices.
_FEW = 32


def _bound(a: bytes, b: bytes | None) -> bytes | None:
    return a if b is None or a < b else b


def _region(db: Database, it: CheckedIterator, end: bytes | None) -> Iterator[list[tuple[bytes, bytes]]]:
    """Chunks of the records from the iterator's position up to ``end`` (exclusive).

    The first few come through the iterator (most regions are empty or short, and a
    fresh items() iterator costs about 10 µs); a longer region continues with rocksdict's
    items() in growing slices cut by bisection, with no Python work per record.  A slice
    reads at most its own length past the region's end.
    """
    chunk: list[tuple[bytes, bytes]] = []
    while it.valid():
        key = it.key()
        if end is not None and key >= end:
            break
        chunk.append((key, it.value()))
        if len(chunk) == _FEW:
            it.next()
            if it.valid() and (end is None or it.key() < end):
                yield chunk
                yield from _sliced(db, it.key(), end)
                return
            break
        it.next()
    if chunk:
        yield chunk


def _sliced(db: Database, first: bytes, end: bytes | None) -> Iterator[list[tuple[bytes, bytes]]]:
    if end is None:  # to the end of the column family: slices, no per-record check
        return db.chunks("stream", first, CHUNK)
    return db.range_chunks("stream", first, end, CHUNK)


def _deep_chunks(
    db: Database, cluster: bool, start: bytes | None = None, stop: bytes | None = None
) -> Iterator[Prefix | BadKey | list[tuple[bytes, bytes]]]:
    """One sequential pass with rocksdict's items(), in slices of CHUNK records.

    Keys under one prefix are contiguous (bytewise order), so when a slice's first and
    last keys start with the prefix, all of it does; otherwise bisect finds where the
    prefix ends.  No Python work per record here.
    """
    slices = db.chunks("stream", start, CHUNK)
    raw: bytes | None = None
    buf: list[tuple[bytes, bytes]] = []
    pos = 0
    last = False
    while True:
        if pos >= len(buf):
            if last:
                return
            buf = next(slices, [])
            pos = 0
            if stop is not None and buf and buf[-1][0] >= stop:
                buf = buf[: bisect_left(buf, stop, key=itemgetter(0))]
                last = True
            if not buf:
                return
        if raw is not None:
            if buf[-1][0].startswith(raw):
                end = len(buf)
            else:
                r = raw
                end = bisect_left(buf, True, pos, len(buf), key=lambda kv: not kv[0].startswith(r))
            if end > pos:
                yield buf if pos == 0 and end == len(buf) else buf[pos:end]
                pos = end
                continue
        key, value = buf[pos]
        try:
            prefix = _prefix_of(key, cluster)
        except CodecError as exc:
            yield BadKey(key, value, str(exc))
            raw = None
            pos += 1
            continue
        yield prefix
        raw = prefix.raw
