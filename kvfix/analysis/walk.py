"""Walking the stream column family, one key incarnation (prefix) at a time.

By default the walk does not read every entry.  A legacy group record's first 8 bytes
are its group-name length, at most Kvrocks' proto-max-bulk-len (512 MiB), so legacy
records can only sit at subkeys whose first u64 is <= NAME_LIMIT; prefixed records
(and entries with ms = 2^64-1) start with 0xFF*8.  Per prefix we read those two
regions and seek over the entries between them, so the cost grows with streams and
group records, not entries.  ``deep=True`` reads everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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


def walk_stream_cf(db: Database, cluster: bool, deep: bool) -> Iterator[Prefix | tuple[bytes, bytes] | BadKey]:
    """Yield a Prefix, then (subkey, value) pairs of that prefix, then the next Prefix ..."""
    it = db.iterator("stream")
    if it is None:
        return
    it.seek_to_first()
    while it.valid():
        key = it.key()
        try:
            ik = decode_internal_key(key, cluster)
        except CodecError as exc:
            yield BadKey(key, it.value(), str(exc))
            it.next()
            continue
        raw = key[: len(key) - len(ik.subkey)]
        yield Prefix(ik.namespace, ik.user_key, ik.version, ik.slot, raw)
        n = len(raw)
        skipped = False
        while it.valid():
            key = it.key()
            if not key.startswith(raw):
                break
            if not deep and not skipped and read_u64(key, n) > NAME_LIMIT:
                skipped = True  # jump over the entries to the 0xFF*8 region of this prefix
                it.seek(raw + PREFIX_MARK)
                continue
            yield key[n:], it.value()
            it.next()
