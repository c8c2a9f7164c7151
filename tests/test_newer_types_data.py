"""A synthetic database of the encodings Kvrocks added after 2.10 (shared by the test_newer_types_* tests).

Every record is built with kvfix's own encoders from the layouts the Kvrocks sources define
(see the docstrings of kvfix.codec.hash_ttl, .timeseries, .topk, .databases).  The database
also has the ``index`` column family TimeSeries labels are indexed in.
"""

from __future__ import annotations

from pathlib import Path

from stats_inspect_data import FUTURE_MS, NS, PAST_MS, Builder

from kvfix.codec.hash_ttl import FIELD_EXPIRATION_MODE, HashFieldExpiryTail, HashFieldValue
from kvfix.codec.keys import MetadataKey
from kvfix.codec.metadata import KeyType, Metadata
from kvfix.codec.timeseries import (
    TSChunk,
    TSChunkKey,
    TSDownstreamKey,
    TSDownstreamRule,
    TSLabelIndexKey,
    TSLabelKey,
    make_chunk,
)
from kvfix.codec.topk import TOPK_TYPE_ID, TopKSubkey, TopKTail, encode_topk_subkey
from kvfix.codec.types import TimeSeriesTail
from kvfix.store.opening import KVROCKS_CFS, create_database

INDEX_CF = "index"
TS_LABELS = {b"sensor": b"a-1", b"room": b"kitchen"}
TS_CHUNKS = {1000: [(1000, 1.5), (2000, -3.0)], 3000: [(3000, 4.25)]}
AVG_RULE = TSDownstreamRule(7, 60_000, 0, 0, (2,), (5.75,))
TOPK = TopKTail(3, 8, 7, 0.9)
HEAP_ITEMS = [b"alpha", b"beta", b"gamma"]


def hash_ttl(b: Builder, key: bytes, fields: dict[bytes, tuple[bytes, int]], ns: bytes = NS, **tail: int) -> int:
    """A field-expiration hash; persist/lower/upper follow the fields unless given."""
    v = b.version()
    ttls = [e for _, e in fields.values() if e]
    t = HashFieldExpiryTail(
        FIELD_EXPIRATION_MODE,
        tail.get("persist", len(fields) - len(ttls)),
        tail.get("lower", min(ttls, default=0)),
        tail.get("upper", max(ttls, default=0)),
    )
    size = tail.get("size", len(fields))
    b.meta(key, Metadata(KeyType.HASH, True, 0, v, size, tail=t.encode()), ns)
    for f, (value, expire) in fields.items():
        b.sub(key, v, f, HashFieldValue(expire, value).encode(), ns=ns)
    return v


def timeseries(
    b: Builder,
    key: bytes,
    chunks: dict[int, TSChunk],
    labels: dict[bytes, bytes],
    index: bool = True,
    rules: dict[bytes, TSDownstreamRule] | None = None,
    source: bytes = b"",
) -> int:
    v = b.version()
    last = max((c.samples[-1][0] for c in chunks.values() if c.samples), default=0)
    tail = TimeSeriesTail(0, 1024, 0, 2, source, last)
    b.meta(key, Metadata(KeyType.TIMESERIES, True, 0, v, len(chunks), tail=tail.encode()))
    for first_ts, chunk in chunks.items():
        b.sub(key, v, TSChunkKey(first_ts).encode(), chunk.encode())
    for label, value in labels.items():
        b.sub(key, v, TSLabelKey(label).encode(), value)
        if index:
            b.db.raw.append((INDEX_CF, TSLabelIndexKey(NS, label, value, key).encode(), b""))
    for dst, rule in (rules or {}).items():
        b.sub(key, v, TSDownstreamKey(dst).encode(), rule.encode())
    return v


def topk(b: Builder, key: bytes, tail: TopKTail = TOPK, size: int = 0) -> int:
    v = b.version()
    b.meta(key, Metadata(TOPK_TYPE_ID, True, 0, v, size, tail=tail.encode()))
    b.sub(key, v, encode_topk_subkey(TopKSubkey("buckets")), b"\x00" * (8 * tail.width * tail.depth))
    b.sub(key, v, encode_topk_subkey(TopKSubkey("heap")), b"\x00" * (24 * tail.k))
    b.sub(key, v, encode_topk_subkey(TopKSubkey("heap_size")), b"3")
    for j, item in enumerate(HEAP_ITEMS):
        b.sub(key, v, encode_topk_subkey(TopKSubkey("heap_item", j)), item)
    return v


def newer_database(path: Path, cluster: bool = False) -> Path:
    b = Builder(cluster=cluster)
    fields = {b"p": (b"persistent", 0), b"live": (b"later", FUTURE_MS), b"gone": (b"earlier", PAST_MS)}
    hash_ttl(b, b"hfe", fields)
    hash_ttl(b, b"hfe_bad_persist", {b"p": (b"x", 0)}, persist=0)
    hash_ttl(b, b"hfe_stale_size", {b"p": (b"x", 0)}, size=2, persist=1)
    b.hash(b"plain", {b"f": b"v"})
    chunks = {ts: make_chunk(samples) for ts, samples in TS_CHUNKS.items()}
    timeseries(b, b"ts", chunks, TS_LABELS, rules={b"ts_avg": AVG_RULE})
    timeseries(b, b"ts_avg", {}, {}, source=b"ts")
    timeseries(b, b"ts_noindex", {5: make_chunk([(5, 0.5)])}, {b"only": b"here"}, index=False)
    timeseries(b, b"ts_packed", {7: TSChunk(1, 4, payload=b"\x01\x02\x03")}, {})
    topk(b, b"tk")
    topk(b, b"tk16", TopKTail(2, 5, 4, 0.5, width_bits=16))
    # Databases as SELECT maps them (redis-databases) and a look-alike that is not one.
    b.string(b"in-db3", b"three", ns=b"db3")
    b.string(b"in-db01", b"not a database", ns=b"db01")
    # An index entry of a type Kvrocks does not define.
    b.db.raw.append((INDEX_CF, bytes([len(NS)]) + NS + b"\x05whatever", b""))
    return write(b, path)


def write(b: Builder, path: Path) -> Path:
    """Like SynthDB.write, with the index column family as well."""
    db = b.db
    with create_database(path, (*KVROCKS_CFS, INDEX_CF)) as out:
        ops = [("metadata", MetadataKey(ns, key, db.slot(key)).encode(), meta.encode()) for ns, key, meta in db.keys]
        out.write([*ops, *db.raw])
        out.flush_all()
    return path
