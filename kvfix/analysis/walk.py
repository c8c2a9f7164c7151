"""Walking the stream column family, one key incarnation (prefix) at a time.

By default the walk does not read every entry.  A legacy group record's first 8 bytes
are its group-name length, at most Kvrocks' proto-max-bulk-len (512 MiB), so legacy
records can only sit at subkeys whose first u64 is <= NAME_LIMIT; prefixed records
(and entries with ms = 2^64-1) start with 0xFF*8.  Per prefix we read those two
regions and seek over the entries between them, so the cost grows with streams and
group records, not entries.  ``deep=True`` reads everything.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from kvfix.codec.errors import CodecError
from kvfix.codec.ints import read_u64
from kvfix.codec.keys import decode_internal_key
from kvfix.codec.stream import PREFIX_MARK
from kvfix.storage import Database

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


def walk_stream_chunks(db: Database, cluster: bool, deep: bool) -> Iterator[Prefix | BadKey | list[tuple[bytes, bytes]]]:
    """Like walk_stream_cf, but a prefix's records come as lists of whole (key, value) pairs.

    Every key in a list starts with the last Prefix's ``raw`` (the subkey is
    ``key[len(raw):]``); lists hold at most CHUNK records and are never empty.
    """
    if deep:
        yield from _deep_chunks(db, cluster)
    else:
        yield from _fast_chunks(db, cluster)


def _prefix_of(key: bytes, cluster: bool) -> Prefix:
    ik = decode_internal_key(key, cluster)
    return Prefix(ik.namespace, ik.user_key, ik.version, ik.slot, key[: len(key) - len(ik.subkey)])


def _fast_chunks(db: Database, cluster: bool) -> Iterator[Prefix | BadKey | list[tuple[bytes, bytes]]]:
    it = db.iterator("stream")
    if it is None:
        return
    it.seek_to_first()
    while it.valid():
        key = it.key()
        try:
            prefix = _prefix_of(key, cluster)
        except CodecError as exc:
            yield BadKey(key, it.value(), str(exc))
            it.next()
            continue
        yield prefix
        raw = prefix.raw
        n = len(raw)
        skipped = False
        chunk: list[tuple[bytes, bytes]] = []
        while it.valid():
            key = it.key()
            if not key.startswith(raw):
                break
            if not skipped and read_u64(key, n) > NAME_LIMIT:
                skipped = True  # jump over the entries to the 0xFF*8 region of this prefix
                it.seek(raw + PREFIX_MARK)
                continue
            chunk.append((key, it.value()))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
            it.next()
        if chunk:
            yield chunk


def _deep_chunks(db: Database, cluster: bool) -> Iterator[Prefix | BadKey | list[tuple[bytes, bytes]]]:
    """One sequential pass with rocksdict's items(), in slices of CHUNK records.

    Keys under one prefix are contiguous (bytewise order), so when a slice's first and
    last keys start with the prefix, all of it does; otherwise bisect finds where the
    prefix ends.  No Python work per record here.
    """
    items = db.items("stream")
    if items is None:
        return
    items = iter(items)
    raw: bytes | None = None
    buf: list[tuple[bytes, bytes]] = []
    pos = 0
    while True:
        if pos >= len(buf):
            buf = list(islice(items, CHUNK))
            pos = 0
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
