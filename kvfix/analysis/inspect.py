"""inspect: decode one user key completely (metadata and every record of its live version).

Records are read from the subkey families only (``default``, ``zset_score``, ``stream``);
the ``propagate``, ``pubsub`` and ``search`` families are never read here, and ``index``
only by point lookups of a TimeSeries key's own label entries (to cross-check them).
At most ``limit`` records per family are decoded and kept; the rest are only counted, so a
huge key costs time, not memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kvfix.analysis.inspect_records import DECODERS, Record, hash_ttl_field
from kvfix.analysis.inspect_records import iso_ms as iso_ms  # re-exported for the renderer
from kvfix.analysis.inspect_summary import check_label_index, hash_mode, summarise
from kvfix.analysis.keyspace import choose_cluster
from kvfix.analysis.keyspace import now_ms as _now_ms
from kvfix.codec.errors import CodecError
from kvfix.codec.hash_ttl import HashFieldExpiryTail, decode_hash_tail
from kvfix.codec.keys import MetadataKey, decode_internal_key, key_prefix, slot_of, successor
from kvfix.codec.metadata import KeyType, Metadata, decode_metadata
from kvfix.codec.topk import TOPK_TYPE_ID, TopKTail, decode_topk_tail
from kvfix.codec.types import JsonTail, TypeTail, decode_type_tail
from kvfix.store.database import Database
from kvfix.textsafe import show_path

SUBKEY_CFS = ("default", "zset_score", "stream")
DEFAULT_LIMIT = 1000


@dataclass
class CfCount:
    live: int = 0
    shown: int = 0
    dead_version: int = 0
    undecoded: int = 0
    bytes: int = 0


@dataclass
class InspectReport:
    path: str
    cluster: bool
    namespace: bytes
    key: bytes
    slot: int | None
    now_ms: int
    limit: int
    raw_metadata_key: bytes
    raw_metadata: bytes
    metadata: Metadata | None = None
    metadata_error: str | None = None
    tail: TypeTail | HashFieldExpiryTail | TopKTail | None = None
    tail_error: str | None = None
    records: list[Record] = field(default_factory=list)
    counts: dict[str, CfCount] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: A compact value like the server's reply (manifest ``value``); None when not decodable.
    value: Any = None
    truncated: bool = False

    @property
    def state(self) -> str:
        m = self.metadata
        if m is None:
            return "undecodable"
        if m.is_dead():
            return "dead"
        if m.is_expired(self.now_ms):
            return "expired"
        return "live"

    @property
    def pttl(self) -> int | None:
        """As PTTL answers: -1 no expiry, -2 expired or dead, else milliseconds left."""
        m = self.metadata
        if m is None:
            return None
        if self.state in ("dead", "expired"):
            return -2
        return -1 if m.expire_ms == 0 else m.expire_ms - self.now_ms

    def count(self, cf: str) -> CfCount:
        return self.counts.setdefault(cf, CfCount())


def iso_us(us: int) -> str:
    try:
        return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"(out of range: {us} us)"


def inspect_key(
    db: Database,
    key: bytes,
    *,
    namespace: bytes = b"__namespace",
    cluster: bool | None = None,
    limit: int = DEFAULT_LIMIT,
    now_ms: int | None = None,
) -> InspectReport | None:
    """The decoded key, or None when it has no metadata record."""
    use_cluster, _ = choose_cluster(db, cluster)
    slot = slot_of(key) if use_cluster else None
    mkey = MetadataKey(namespace, key, slot).encode()
    raw = db.get("metadata", mkey)
    if raw is None:
        return None
    now = _now_ms() if now_ms is None else now_ms
    rep = InspectReport(show_path(db.path), use_cluster, namespace, key, slot, now, limit, mkey, raw)
    try:
        rep.metadata = meta = decode_metadata(raw)
    except CodecError as exc:
        rep.metadata_error = str(exc)
        rep.problems.append(f"metadata does not decode: {exc}")
        return rep
    _decode_tail(rep, meta)
    if meta.extra_flags and hash_mode(meta) != "pr2402":
        rep.notes.append(
            f"metadata flag bits 0x{meta.extra_flags:02x} are set: an encoding newer than this kvfix; records shown raw"
        )
    if not meta.known_type:
        rep.notes.append(f"type {meta.type_id} is not one this kvfix knows: metadata shown raw, records not decoded")
    _read_records(db, rep, meta)
    if meta.type_id == KeyType.TIMESERIES and meta.known_type:
        check_label_index(db, rep)
    return rep


def _tail_of(meta: Metadata) -> TypeTail | HashFieldExpiryTail | TopKTail | None:
    if meta.type_id == KeyType.HASH and meta.tail and not meta.extra_flags:
        return decode_hash_tail(meta.tail)
    if meta.type_id == TOPK_TYPE_ID and meta.known_type:
        return decode_topk_tail(meta.tail)
    return decode_type_tail(meta.type_id, meta.tail)


def _decode_tail(rep: InspectReport, meta: Metadata) -> None:
    if meta.type_id == KeyType.STRING:
        rep.value = meta.tail
        return
    try:
        rep.tail = _tail_of(meta)
    except CodecError as exc:
        rep.tail_error = str(exc)
        rep.notes.append(f"{meta.type_name} metadata tail not decoded ({exc}); shown raw")
        return
    if isinstance(rep.tail, JsonTail):
        if rep.tail.format == 0:
            try:
                rep.value = json.loads(rep.tail.payload)
            except ValueError as exc:
                rep.problems.append(f"JSON payload does not parse: {exc}")
        else:
            rep.notes.append(f"JSON stored as {rep.tail.format_name}: payload shown raw, not decoded")
    elif meta.type_id in (KeyType.BLOOM, KeyType.HYPERLOGLOG, KeyType.TDIGEST):
        rep.notes.append(f"{meta.type_name} data records are counted and shown raw, not decoded")
    elif meta.type_id == TOPK_TYPE_ID and meta.known_type:
        rep.notes.append("topk records are classified and shown raw: their layout is still changing in Kvrocks")


def _iter_prefix(db: Database, cf: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every record of ``cf`` whose key starts with ``prefix``, in key order."""
    stop = successor(prefix)
    chunks = db.chunks(cf, prefix) if stop is None else db.range_chunks(cf, prefix, stop)
    for chunk in chunks:
        yield from chunk


def _read_records(db: Database, rep: InspectReport, meta: Metadata) -> None:
    prefix = key_prefix(rep.namespace, rep.key, rep.slot)
    decoder = DECODERS.get(meta.type_id) if meta.known_type and not meta.extra_flags else None
    decoder = _hash_decoder(rep, meta, decoder)
    state: dict[str, Any] = {"now_ms": rep.now_ms}
    for cf in SUBKEY_CFS:
        for raw_key, raw_value in _iter_prefix(db, cf, prefix):
            c = rep.count(cf)
            try:
                ik = decode_internal_key(raw_key, rep.cluster)
            except CodecError:
                c.undecoded += 1
                continue
            if ik.user_key != rep.key or ik.namespace != rep.namespace:
                continue  # a longer key sharing the prefix cannot happen (key_len is in it), but be safe
            if meta.version is None or ik.version != meta.version:
                c.dead_version += 1
                continue
            c.live += 1
            c.bytes += len(raw_key) + len(raw_value)
            if c.shown >= rep.limit:
                rep.truncated = True
                continue
            rec = None
            if decoder is not None:
                try:
                    rec = decoder(cf, ik.subkey, raw_value, state)
                except CodecError as exc:
                    rec = Record(cf, "undecodable", {"error": str(exc), "subkey": ik.subkey}, raw_key, raw_value)
                    rep.problems.append(f"{cf} record {ik.subkey.hex()}: {exc}")
            if rec is None:
                c.undecoded += 1
                rec = Record(cf, "raw", {"subkey": ik.subkey, "length": len(raw_value)}, raw_key, raw_value)
            rec.raw_key, rec.raw_value = raw_key, raw_value
            rep.records.append(rec)
            c.shown += 1
    for cf, c in rep.counts.items():
        if c.dead_version:
            rep.notes.append(f"{c.dead_version} {cf} records of dead versions of this key (waiting for compaction)")
    if rep.truncated:
        rep.notes.append(f"more than --limit {rep.limit} records in a column family: the rest are counted, not shown")
    summarise(rep, meta)


def _hash_decoder(rep: InspectReport, meta: Metadata, decoder):
    """The field decoder for this hash's encoding; None (raw) for encodings kvfix does not decode."""
    mode = hash_mode(meta)
    if mode == "ttl":
        return hash_ttl_field
    if mode == "pr2402":
        rep.notes.append(
            "hash field expiration of the unreleased layout (PR #2402, flag bit 0x40), not the one Kvrocks "
            "released: field values carry an expire prefix; fields counted and shown raw"
        )
        return None
    if mode == "odd":
        rep.notes.append(
            f"hash metadata has {len(meta.tail)} bytes after size that are not the hash field expiration "
            "layout: fields counted and shown raw"
        )
        return None
    return decoder
