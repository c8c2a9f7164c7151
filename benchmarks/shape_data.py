"""Generating the databases of benchmarks/shapes.py: encoded bytes in large batches.

No per-record objects: keys and values come from kvfix's codec encoders and go to the
store in WriteBatches of BATCH_RECORDS records, so millions of records generate in seconds.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Records per generating WriteBatch.
BATCH_RECORDS = 200_000

ID_PACK = struct.Struct(">QQ").pack
EPOCH_MS = 1_793_491_200_000  # kvfix.synth.BULK_EPOCH_MS: 2026-11-01, as XADD * would write


@dataclass(frozen=True)
class StreamsSpec:
    """Streams alike: ``entries`` entries, ``groups`` legacy groups, each with ``consumers``
    consumers and ``pel`` PEL records (the group's PEL points at entries from g * pel on)."""

    name: bytes
    streams: int
    entries: int
    groups: int
    consumers: int = 1
    pel: int = 0  # per group


class Loader:
    """Ops buffered into WriteBatches of ``BATCH_RECORDS`` (unsynced; flushed at the end)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.ops: list[tuple[str, bytes, bytes]] = []
        self.written = 0

    def flush(self) -> None:
        if self.ops:
            self.db.write(self.ops, sync=False)
            self.written += len(self.ops)
            self.ops = []

    def maybe_flush(self) -> None:
        if len(self.ops) >= BATCH_RECORDS:
            self.flush()


def _entry_id(i: int) -> tuple[int, int]:
    return EPOCH_MS + i // 3, i % 3  # three entries per millisecond, like a busy XADD *


def _entry_values() -> list[bytes]:
    from kvfix.codec.stream import EntryValue

    return [EntryValue((b"sensor", b"%d" % i, b"reading", b"%d.%02d" % (i, i % 100))).encode() for i in range(997)]


def _group_records(spec: StreamsSpec) -> Iterator[tuple[bytes, bytes]]:
    """(subkey, value) of every legacy group, consumer and PEL record of one stream."""
    from kvfix.codec.metadata import StreamId
    from kvfix.codec.stream import ConsumerKey, ConsumerValue, GroupKey, GroupValue, PelKey, PelValue, encode_subkey

    last = StreamId(*_entry_id(spec.entries - 1))
    consumers = [b"consumer-%d" % c for c in range(spec.consumers)]
    pel_values = [PelValue(EPOCH_MS, 1, c).encode() for c in consumers]
    for g in range(spec.groups):
        name = b"group-%05d" % g
        yield encode_subkey(GroupKey("legacy", name)), GroupValue(len(consumers), spec.pel, last, -1, 0).encode()
        owned = dict.fromkeys(consumers, 0)
        head = encode_subkey(PelKey("legacy", name, StreamId(0, 0)))[:-16]
        for j in range(spec.pel if consumers else 0):
            owner = j % len(consumers)
            owned[consumers[owner]] += 1
            yield head + ID_PACK(*_entry_id((g * spec.pel + j) % spec.entries)), pel_values[owner]
        for c in consumers:
            cv = ConsumerValue(owned[c], EPOCH_MS, EPOCH_MS)
            yield encode_subkey(ConsumerKey("legacy", name, c)), cv.encode()


def _stream_body(spec: StreamsSpec) -> Iterator[tuple[bytes, bytes]]:
    values = _entry_values()
    for i in range(spec.entries):
        yield ID_PACK(*_entry_id(i)), values[i % len(values)]
    yield from _group_records(spec)


def write_streams(loader: Loader, spec: StreamsSpec, version_base: int) -> dict[str, int]:
    """Write ``spec.streams`` streams; counts of what was written."""
    from kvfix.codec.keys import InternalKey, MetadataKey
    from kvfix.codec.metadata import KeyType, Metadata, StreamId, StreamTail
    from kvfix.synth import DEFAULT_NS

    first, last = StreamId(*_entry_id(0)), StreamId(*_entry_id(spec.entries - 1))
    tail = StreamTail(last, first, StreamId(0, 0), first, last, spec.entries, spec.groups)
    per_stream = spec.entries + spec.groups * (1 + spec.consumers + spec.pel)
    body = list(_stream_body(spec)) if per_stream <= 50_000 else None
    ops = loader.ops
    for s in range(spec.streams):
        key = b"%s:%07d" % (spec.name, s)
        version = version_base + s
        prefix = InternalKey(DEFAULT_NS, key, version, b"").prefix()
        meta = Metadata(KeyType.STREAM, True, 0, version, spec.entries, stream=tail)
        ops.append(("metadata", MetadataKey(DEFAULT_NS, key).encode(), meta.encode()))
        for sub, value in body if body is not None else _stream_body(spec):
            ops.append(("stream", prefix + sub, value))
            if body is None and len(ops) >= BATCH_RECORDS:
                loader.flush()
                ops = loader.ops
        loader.maybe_flush()
        ops = loader.ops
    n = spec.streams
    return {
        "streams": n,
        "entries": n * spec.entries,
        "groups": n * spec.groups,
        "consumers": n * spec.groups * spec.consumers,
        "pel": n * spec.groups * spec.pel,
    }


def write_plain_keys(loader: Loader, keys: int, version_base: int) -> dict[str, int]:
    """A third strings, a third 2-field hashes, a third 3-member zsets (as benchmarks/stats_1m.py)."""
    from kvfix.codec.keys import InternalKey, MetadataKey
    from kvfix.codec.metadata import KeyType, Metadata
    from kvfix.codec.types import ZsetScoreKey, encode_zset_member_value
    from kvfix.synth import DEFAULT_NS as NS

    for i in range(keys):
        key, version, ops = b"key:%09d" % i, version_base + i, loader.ops
        mkey = MetadataKey(NS, key).encode()
        if i % 3 == 0:
            ops.append(("metadata", mkey, Metadata(KeyType.STRING, True, 0, None, None, tail=b"v%d" % i).encode()))
        elif i % 3 == 1:
            ops.append(("metadata", mkey, Metadata(KeyType.HASH, True, 0, version, 2).encode()))
            ops.extend(("default", InternalKey(NS, key, version, f).encode(), b"x" * (i % 50)) for f in (b"a", b"b"))
        else:
            ops.append(("metadata", mkey, Metadata(KeyType.ZSET, True, 0, version, 3).encode()))
            for j, member in enumerate((b"m1", b"m2", b"m3")):
                score = float(i % 1000 + j)
                ops.append(("default", InternalKey(NS, key, version, member).encode(), encode_zset_member_value(score)))
                score_key = ZsetScoreKey(score, member).encode()
                ops.append(("zset_score", InternalKey(NS, key, version, score_key).encode(), b""))
        loader.maybe_flush()
    return {"plain_keys": keys}


def _specs(shape: str, n: int) -> tuple[list[StreamsSpec], int]:
    """The stream specs and the number of non-stream keys of shape ``shape`` at size ``n``."""
    if shape == "small-streams":
        return [StreamsSpec(b"small", n, 10, 1, 1, 1)], 0
    if shape == "huge-pel":
        return [StreamsSpec(b"pel", 1, max(1, n // 10), 10, 1, n // 10)], 0
    if shape == "many-groups":
        return [StreamsSpec(b"groups", 1, 2 * n, n, 1, 2)], 0
    if shape == "mixed":
        return [
            StreamsSpec(b"big", 2, 10_000 * n, 10, 1, 10),
            StreamsSpec(b"small", 1_000 * n, 10, 1, 1, 1),
            StreamsSpec(b"pel", 1, 1_000 * n, 10, 1, 1_000 * n),
            StreamsSpec(b"groups", 1, 200 * n, 100 * n, 1, 2),
        ], 10_000 * n
    raise ValueError(shape)


def generate(shape: str, size: int, db_path: Path) -> dict[str, int]:
    """Write the database of ``shape`` at ``size`` into the new directory ``db_path``."""
    from kvfix.store.opening import create_database
    from kvfix.synth import BASE_VERSION, BulkSpec, bulk_load

    if shape == "entries":
        counts = bulk_load(db_path, BulkSpec(entries=size))
        return {"streams": BulkSpec().streams, **counts, "plain_keys": 0}
    specs, plain = _specs(shape, size)
    totals: dict[str, int] = {}
    with create_database(db_path) as db:
        loader = Loader(db)
        version = BASE_VERSION
        for spec in specs:
            for k, v in write_streams(loader, spec, version).items():
                totals[k] = totals.get(k, 0) + v
            version += spec.streams
        totals.update(write_plain_keys(loader, plain, version))
        loader.flush()
        db.flush_all()
    return totals
