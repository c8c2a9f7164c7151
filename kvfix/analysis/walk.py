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
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kvfix.analysis.keyspace import Keyspace, LiveStream, decode_live
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.codec.errors import CodecError
from kvfix.codec.ints import u64
from kvfix.codec.keys import (
    MetadataKey,
    decode_internal_key,
    decode_metadata_key,
    key_prefix,
    key_prefix_len,
    successor,
)
from kvfix.codec.metadata import stream_version
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


@dataclass(frozen=True, slots=True)
class Visit:
    """A live stream: its records (lists of whole (key, value) pairs, each key starting with
    ``raw``) follow until the next event that is not a list."""

    live: LiveStream
    raw: bytes
    #: The stream's metadata record as stored.
    metadata: bytes = b""


@dataclass(frozen=True, slots=True)
class Garbage:
    """A key incarnation in the stream column family that is no live stream's: "stale" (the
    key has metadata, of another version or type) or "orphan" (none); its records counted."""

    prefix: Prefix
    owner: str
    records: int
    bytes: int
    #: A dead version of a key that is a live stream now (counted in that stream's report too).
    of_live: bool = False


@dataclass(frozen=True, slots=True)
class BadMetadata:
    """A stream's metadata record that does not decode (its records follow as Garbage)."""

    key: MetadataKey
    error: str


Event = Visit | Garbage | BadKey | BadMetadata | list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Half:
    """Which part of the walk one process takes (a parallel deep scan, :mod:`kvfix.analysis.scan`).

    ``first``: the streams whose metadata key sorts before ``at`` (and, with ``inside``, the
    records of the stream at ``at`` below that stream column family key); otherwise the rest.
    """

    at: bytes
    first: bool
    inside: bytes | None = None


def walk_keyspace(
    db: Database, ks: Keyspace, deep: bool, half: Half | None = None, scope: Scope = EVERYTHING
) -> Iterator[Event]:
    """Every live stream in metadata key order, each followed by its records' chunks, and the
    garbage of the stream column family, each incarnation where the key order puts it.

    Live streams come from the metadata column family (one pass, no stream held); a
    stream's records are read by seeking to its prefix.  Garbage is found between them:
    after each live stream's records (and at the start) the walk reads on while the next
    incarnation is not a live one (``ks.live``), so every key of the column family is
    seen once and nothing is held per stream.  With a ``scope``, only the streams in it and
    their dead versions (see :mod:`kvfix.analysis.scope`).
    """
    it = db.iterator("stream")
    if it is None:
        if half is None:
            yield from _without_records(db, ks, scope)
        return
    whole = scope.everything
    if whole and (half is None or half.first):
        it.seek_to_first()
        yield from _garbage(db, it, ks)
    for chunk in db.chunks("metadata", None if half is None or half.first else half.at):
        for raw_key, raw_value in chunk:
            if half is not None and half.first and _past(raw_key, half):
                return
            found = _stream_metadata(raw_key, raw_value, ks)
            if found is not None and (whole or scope.wants(found[0].namespace, found[0].user_key)):
                yield from _stream(db, it, ks, found, raw_key, raw_value, deep, half, whole)
            if half is not None and half.first and raw_key == half.at:
                return


def _without_records(db: Database, ks: Keyspace, scope: Scope) -> Iterator[Visit | BadMetadata]:
    """The live streams of a database with no stream column family (none has a record)."""
    for chunk in db.chunks("metadata"):
        for raw_key, raw_value in chunk:
            found = _stream_metadata(raw_key, raw_value, ks)
            if found is None or not scope.wants(found[0].namespace, found[0].user_key):
                continue
            mkey, head, version = found
            live = decode_live(mkey, raw_value)
            yield BadMetadata(mkey, BAD_METADATA) if live is None else Visit(live, head + u64(version), raw_value)


def _stream_metadata(raw_key: bytes, raw_value: bytes, ks: Keyspace) -> tuple[MetadataKey, bytes, int] | None:
    """A stream's metadata record: its key, key prefix (every version's) and version; None
    for other types and for keys that do not decode (the survey reported those)."""
    version = stream_version(raw_value)
    if version is None:
        return None
    try:
        mkey = decode_metadata_key(raw_key, ks.cluster)
    except CodecError:
        return None
    return mkey, key_prefix(mkey.namespace, mkey.user_key, mkey.slot), version


#: What a stream whose metadata value does not decode is reported with.
BAD_METADATA = "stream metadata does not decode"


def _past(raw_key: bytes, half: Half) -> bool:
    """The first half's walk is over at this metadata key (the stream at ``at`` is read in
    part when the halves split inside it)."""
    return raw_key > half.at or (raw_key == half.at and half.inside is None)


def _stream(
    db: Database,
    it: CheckedIterator,
    ks: Keyspace,
    found: tuple[MetadataKey, bytes, int],
    raw_key: bytes,
    raw_value: bytes,
    deep: bool,
    half: Half | None,
    garbage: bool = True,
) -> Iterator[Event]:
    """One live stream (its metadata record, decoded by :func:`_stream_metadata`): the Visit,
    its records, its dead versions, and (``garbage``) the incarnations after it."""
    mkey, head, version = found
    raw = head + u64(version)
    end = successor(raw)
    start, stop = raw, end
    second_inside = half is not None and half.inside is not None and raw_key == half.at and not half.first
    if half is not None and half.inside is not None and raw_key == half.at:
        if half.first:
            stop = half.inside
        else:
            start = half.inside
    at_start = False
    if not second_inside:
        if not _at(it, head):
            it.seek(head)
        yield from _versions(it, ks, head, raw)
        at_start = True  # at the first key >= raw (= start)
    live = decode_live(mkey, raw_value)
    if live is None:
        yield BadMetadata(mkey, BAD_METADATA)
        yield _count(it, Prefix(mkey.namespace, mkey.user_key, version, mkey.slot, raw), "stale")
        at_end = True
    else:
        yield Visit(live, raw, raw_value)
        at_end = yield from _records(db, it, raw, start, stop, deep, at_start)
    if end is None or stop is not end:
        return  # the end of the column family, or the other half reads on from here
    if not at_end:
        it.seek(end)
    yield from _versions(it, ks, head, None)
    if garbage:
        yield from _garbage(db, it, ks)


def _at(it: CheckedIterator, head: bytes) -> bool:
    """Whether the iterator is at a key starting with ``head``: then at the first such key.

    The walk moves the iterator only forward through the keys of other incarnations and
    seeks only into the incarnation it visits, so it can reach a key incarnation's range
    only by reading on into it from below (no key of one user key starts with another's
    ``head``, which holds the key's length): a seek to ``head`` would land there too.
    """
    return it.valid() and it.key().startswith(head)


def _versions(it: CheckedIterator, ks: Keyspace, head: bytes, until: bytes | None) -> Iterator[Garbage | BadKey]:
    """The live key's other (dead) versions from the iterator's position, below ``until``."""
    for prefix in _incarnations(it, ks, head, until):
        yield prefix if isinstance(prefix, BadKey) else _count(it, prefix, "stale", of_live=True)


def _incarnations(
    it: CheckedIterator, ks: Keyspace, head: bytes = b"", until: bytes | None = None
) -> Iterator[Prefix | BadKey]:
    """The key incarnation at the iterator, again after the caller moved it past one (with
    :func:`_count`), while keys start with ``head`` and sort below ``until``; a key that is
    no internal key is passed over.  Keys are compared before they are decoded: most walks
    stop at the first one."""
    while it.valid():
        key = it.key()
        if not key.startswith(head) or (until is not None and key >= until):
            return
        try:
            yield _prefix_of(key, ks.cluster)
        except CodecError as exc:
            yield BadKey(key, it.value(), str(exc))
            it.next()


def _records(
    db: Database, it: CheckedIterator, raw: bytes, start: bytes, stop: bytes | None, deep: bool, at_start: bool
) -> Generator[list[tuple[bytes, bytes]], None, bool]:
    """A live stream's record chunks from ``start`` to ``stop``; the fast walk skips the
    subkeys no group record can have (see the module's docstring).  ``at_start``: the
    iterator is at the first key >= ``start``.  Returns whether it ends at the first key
    >= ``stop`` (else it is left anywhere before)."""
    if not at_start:
        it.seek(start)
    if deep:
        return (yield from _region(db, it, stop))
    legacy_end = raw + _AFTER_NAME_LIMIT
    if stop is not None and stop < legacy_end:
        legacy_end = stop
    positioned = True
    if start < legacy_end:
        positioned = yield from _region(db, it, legacy_end)
    marked = raw + PREFIX_MARK
    if stop is None or marked < stop:
        if not (positioned and it.valid() and it.key() >= marked):
            it.seek(max(marked, start))
        positioned = yield from _region(db, it, stop)
    return positioned


def group_record_region(db: Database, raw: bytes, layout: str) -> Iterator[list[tuple[bytes, bytes]]]:
    """The chunks of the region of one stream incarnation where its ``layout`` group records
    sit (what the fast walk reads), from an iterator made by this call: they show the
    database as it was then, whatever is written while they are read."""
    if layout == "legacy":
        return db.range_chunks("stream", raw, raw + _AFTER_NAME_LIMIT, CHUNK)
    end = successor(raw)
    if end is None:
        return db.chunks("stream", raw + PREFIX_MARK, CHUNK)
    return db.range_chunks("stream", raw + PREFIX_MARK, end, CHUNK)


def _garbage(db: Database, it: CheckedIterator, ks: Keyspace) -> Iterator[Garbage | BadKey]:
    """From the iterator's position, every incarnation up to the next live one (or the end)."""
    if it.valid():
        key = it.key()
        n = key_prefix_len(key, ks.cluster)
        if n is not None and key[:n] in ks.live:
            return  # the next key is a live stream's (the common case): its visit reads every version
    for prefix in _incarnations(it, ks):
        if isinstance(prefix, BadKey):
            yield prefix
            continue
        if prefix.raw[: len(prefix.raw) - 8] in ks.live:
            return  # a live stream's key: its visit reads every version
        has_metadata = db.get("metadata", MetadataKey(prefix.namespace, prefix.user_key, prefix.slot).encode())
        yield _count(it, prefix, "stale" if has_metadata is not None else "orphan")


def _count(it: CheckedIterator, prefix: Prefix, owner: str, of_live: bool = False) -> Garbage:
    """Count one incarnation's records and their bytes (whole key + value, as stats counts
    them); the iterator ends past them."""
    raw = prefix.raw
    count = size = 0
    if not _at(it, raw):
        it.seek(raw)
    while it.valid():
        key = it.key()
        if not key.startswith(raw):
            break
        count += 1
        size += len(key) + len(it.value())
        it.next()
    return Garbage(prefix, owner, count, size, of_live)


def _prefix_of(key: bytes, cluster: bool) -> Prefix:
    ik = decode_internal_key(key, cluster)
    return Prefix(ik.namespace, ik.user_key, ik.version, ik.slot, key[: len(key) - len(ik.subkey)])


#: The subkey just above any legacy record: u64(NAME_LIMIT + 1).
_AFTER_NAME_LIMIT = (NAME_LIMIT + 1).to_bytes(8, "big")
#: Records read through the seeking iterator before a region switches to items() slices.
_FEW = 32


def _region(db: Database, it: CheckedIterator, end: bytes | None) -> Generator[list[tuple[bytes, bytes]], None, bool]:
    """Chunks of the records from the iterator's position up to ``end`` (exclusive).

    The first few come through the iterator (most regions are empty or short, and a
    fresh items() iterator costs about 10 µs); a longer region continues with rocksdict's
    items() in growing slices cut by bisection, with no Python work per record.  A slice
    reads at most its own length past the region's end.  Returns whether the iterator is
    left at the first key >= ``end`` (False after the items() slices).
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
                return False
            break
        it.next()
    if chunk:
        yield chunk
    return True


def _sliced(db: Database, first: bytes, end: bytes | None) -> Iterator[list[tuple[bytes, bytes]]]:
    if end is None:  # to the end of the column family: slices, no per-record check
        return db.chunks("stream", first, CHUNK)
    return db.range_chunks("stream", first, end, CHUNK)
