"""stats: key counts, sizes, the biggest keys and garbage, in bounded memory.

Two streaming passes, nothing per key held beyond the current one:

1. the ``metadata`` column family: per (namespace, type) live/expired/dead keys, 32- vs
   64-bit records and metadata bytes; single-KV keys (string, JSON) and unknown types
   go straight to the top-N heaps;
2. the subkey families (``default``, ``zset_score``, ``stream``) merged into one walk in
   key order: their keys all start ``ns | [slot] | key_len | key | version``, so every
   record of one user key arrives together, whatever its family.  When a new user key
   starts, its metadata is read with a point lookup; records of the live version count
   for the key and its type, others are garbage: *dead-version* (the metadata has another
   version, or is a single-KV type now) or *orphan* (no metadata at all).

Every other family (pubsub, propagate, search, index, unknown ones) is only counted:
records and bytes, never decoded and never shown (propagate may hold namespace tokens).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from kvfix.analysis.findings import Finding, finding
from kvfix.analysis.keyspace import choose_cluster
from kvfix.analysis.keyspace import now_ms as _now_ms
from kvfix.codec.errors import CodecError
from kvfix.codec.keys import MetadataKey, decode_internal_key, decode_metadata_key, namespace_prefix, successor
from kvfix.codec.metadata import Metadata, decode_metadata
from kvfix.progress import Progress
from kvfix.storage import Database

SUBKEY_CFS = ("default", "zset_score", "stream")
WALKED_CFS = ("metadata", *SUBKEY_CFS)
PROGRESS_EVERY = 8192
DEFAULT_TOP = 10


# --- Redis-style glob ---------------------------------------------------------------------


def glob_regex(pattern: bytes) -> re.Pattern[bytes]:
    """Compile a Redis glob (``*``, ``?``, ``[abc]``, ``[^a-z]``, ``\\x`` escapes) to a bytes regex."""
    out = bytearray()
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out += b".*"
        elif c == b"?":
            out += b"."
        elif c == b"\\" and i + 1 < n:
            i += 1
            out += re.escape(pattern[i : i + 1])
        elif c == b"[":
            j = i + 1
            negate = j < n and pattern[j : j + 1] == b"^"
            if negate:
                j += 1
            items = bytearray()
            while j < n and pattern[j : j + 1] != b"]":
                if pattern[j : j + 1] == b"\\" and j + 1 < n:
                    j += 1
                    items += re.escape(pattern[j : j + 1])
                elif j + 2 < n and pattern[j + 1 : j + 2] == b"-" and pattern[j + 2 : j + 3] != b"]":
                    lo, hi = sorted((pattern[j], pattern[j + 2]))
                    items += re.escape(bytes([lo])) + b"-" + re.escape(bytes([hi]))
                    j += 2
                else:
                    items += re.escape(pattern[j : j + 1])
                j += 1
            if j >= n:  # no closing bracket: Redis takes the rest literally-ish; so do we
                out += re.escape(pattern[i:])
                break
            if items:
                out += b"[" + (b"^" if negate else b"") + bytes(items) + b"]"
            else:
                out += b"." if negate else b"(?!)"
            i = j
        else:
            out += re.escape(c)
        i += 1
    return re.compile(bytes(out) + rb"\Z", re.DOTALL)


# --- report model -------------------------------------------------------------------------


@dataclass
class TypeCounts:
    keys: int = 0  # live: what SCAN would list
    expired: int = 0
    dead: int = 0
    records: int = 0  # subkey records of the current versions
    bytes: int = 0  # key + value bytes: metadata records plus those subkey records
    metadata_32bit: int = 0
    metadata_64bit: int = 0

    def add(self, other: TypeCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Garbage:
    dead_version_records: int = 0
    dead_version_bytes: int = 0
    orphan_records: int = 0
    orphan_bytes: int = 0
    undecodable_records: int = 0
    undecodable_bytes: int = 0

    @property
    def records(self) -> int:
        return self.dead_version_records + self.orphan_records + self.undecodable_records

    @property
    def bytes(self) -> int:
        return self.dead_version_bytes + self.orphan_bytes + self.undecodable_bytes


@dataclass(frozen=True, order=True)
class TopKey:
    namespace: bytes
    key: bytes
    type_name: str
    records: int
    bytes: int
    state: str  # live, expired, dead
    slot: int | None = None


@dataclass(frozen=True)
class StatsFilter:
    namespace: bytes | None = None
    types: frozenset[str] = frozenset()
    match: bytes | None = None

    def matcher(self):
        return None if self.match is None else glob_regex(self.match).match


@dataclass
class StatsReport:
    path: str
    column_families: tuple[str, ...]
    cluster: bool
    filters: StatsFilter
    top_n: int
    now_ms: int
    namespaces: dict[bytes, dict[str, TypeCounts]] = field(default_factory=dict)
    top_by_bytes: list[TopKey] = field(default_factory=list)
    top_by_records: list[TopKey] = field(default_factory=list)
    garbage: dict[str, Garbage] = field(default_factory=dict)
    #: records and bytes read per column family (only the --namespace range where one was given).
    cf_totals: dict[str, list[int]] = field(default_factory=dict)
    undecodable_metadata: int = 0
    findings: list[Finding] = field(default_factory=list)

    def counts(self, ns: bytes, type_name: str) -> TypeCounts:
        types = self.namespaces.setdefault(ns, {})
        tc = types.get(type_name)
        if tc is None:
            tc = types[type_name] = TypeCounts()
        return tc

    def totals(self) -> TypeCounts:
        out = TypeCounts()
        for types in self.namespaces.values():
            for tc in types.values():
                out.add(tc)
        return out


class TopN:
    """The N largest items by one metric, held in a min-heap (memory O(N))."""

    def __init__(self, n: int, metric: str) -> None:
        self.n = n
        self.metric = metric
        self._heap: list[tuple[int, bytes, bytes, TopKey]] = []

    def push(self, item: TopKey) -> None:
        if self.n <= 0:
            return
        # Ties: the smaller (namespace, key) wins, so invert them for the min-heap.
        entry = (getattr(item, self.metric), _inv(item.namespace), _inv(item.key), item)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:
            heapq.heapreplace(self._heap, entry)

    def result(self) -> list[TopKey]:
        return [e[3] for e in sorted(self._heap, reverse=True)]


def _inv(data: bytes) -> bytes:
    return bytes(255 - b for b in data) + b"\xff"


# --- the passes ---------------------------------------------------------------------------


def _state(meta: Metadata, now: int) -> str:
    if meta.is_dead():
        return "dead"
    if meta.is_expired(now):
        return "expired"
    return "live"


def _walk(db: Database, cf: str, start: bytes | None, stop: bytes | None) -> Iterator[tuple[bytes, str, bytes]]:
    items = db.items(cf, start)
    if items is None:
        return
    for key, value in items:
        if stop is not None and key >= stop:
            return
        yield key, cf, value


def collect_stats(
    db: Database,
    *,
    cluster: bool | None = None,
    filters: StatsFilter = StatsFilter(),
    top_n: int = DEFAULT_TOP,
    now_ms: int | None = None,
    progress: Progress | None = None,
) -> StatsReport:
    progress = progress or Progress()
    now = _now_ms() if now_ms is None else now_ms
    use_cluster, cluster_findings = choose_cluster(db, cluster)
    report = StatsReport(str(db.path), db.column_families, use_cluster, filters, top_n, now)
    report.findings.extend(cluster_findings)
    by_bytes, by_records = TopN(top_n, "bytes"), TopN(top_n, "records")
    start = stop = None
    if filters.namespace is not None:
        start = namespace_prefix(filters.namespace)
        stop = successor(start)
    match = filters.matcher()
    types = filters.types
    seen = [0, 0]  # keys, records (progress)

    def tick() -> None:
        seen[1] += 1
        if seen[1] % PROGRESS_EVERY == 0:
            progress.update(streams=seen[0], records=seen[1])

    def total(cf: str, n: int) -> None:
        t = report.cf_totals.setdefault(cf, [0, 0])
        t[0] += 1
        t[1] += n

    # Pass 1: metadata.
    unknown_types: dict[int, int] = {}
    for raw_key, _, raw_value in _walk(db, "metadata", start, stop):
        tick()
        size = len(raw_key) + len(raw_value)
        total("metadata", size)
        try:
            mkey = decode_metadata_key(raw_key, use_cluster)
        except CodecError:
            report.undecodable_metadata += 1
            continue
        if match is not None and not match(mkey.user_key):
            continue
        try:
            meta = decode_metadata(raw_value)
        except CodecError:
            report.undecodable_metadata += 1
            continue
        name = meta.type_name
        if types and name not in types:
            continue
        seen[0] += 1
        if not meta.known_type:
            unknown_types[meta.type_id] = unknown_types.get(meta.type_id, 0) + 1
        tc = report.counts(mkey.namespace, name)
        state = _state(meta, now)
        if state == "live":
            tc.keys += 1
        elif state == "dead":
            tc.dead += 1
        else:
            tc.expired += 1
        if meta.is_64bit:
            tc.metadata_64bit += 1
        else:
            tc.metadata_32bit += 1
        tc.bytes += size
        if meta.version is None:  # string, JSON, unknown types: the metadata record is the key
            top = TopKey(mkey.namespace, mkey.user_key, name, 0, size, state, mkey.slot)
            by_bytes.push(top)
            by_records.push(top)

    # Pass 2: the subkey families, merged in key order.
    walks = [_walk(db, cf, start, stop) for cf in SUBKEY_CFS if cf in db.column_families]
    cur_prefix: bytes | None = None
    cur_ident: tuple[bytes, int | None, bytes] | None = None
    cur_meta: Metadata | None = None
    cur_meta_size = 0
    cur_wanted = False  # the user key passes --match (and --type where known)
    role = "orphan"  # of the current prefix: live, dead_version, orphan, skip
    key_records = key_bytes = 0

    def finish() -> None:
        if cur_ident is None or cur_meta is None or not cur_wanted or cur_meta.version is None:
            return
        if not cur_meta.known_type or key_records == 0:
            return
        ns, slot, user_key = cur_ident
        top = TopKey(
            ns, user_key, cur_meta.type_name, key_records, key_bytes + cur_meta_size, _state(cur_meta, now), slot
        )
        by_bytes.push(top)
        by_records.push(top)

    for raw_key, cf, value in heapq.merge(*walks):
        tick()
        size = len(raw_key) + len(value)
        total(cf, size)
        if cur_prefix is None or not raw_key.startswith(cur_prefix):
            try:
                ik = decode_internal_key(raw_key, use_cluster)
            except CodecError:
                g = report.garbage.setdefault(cf, Garbage())
                g.undecodable_records += 1
                g.undecodable_bytes += size
                cur_prefix = None
                continue
            cur_prefix = raw_key[: len(raw_key) - len(ik.subkey)]
            ident = (ik.namespace, ik.slot, ik.user_key)
            if ident != cur_ident:
                finish()
                cur_ident = ident
                key_records = key_bytes = 0
                cur_meta, cur_meta_size = _lookup(db, MetadataKey(ik.namespace, ik.user_key, ik.slot))
                cur_wanted = match is None or bool(match(ik.user_key))
                if cur_wanted and types:
                    cur_wanted = cur_meta is not None and cur_meta.type_name in types
            if not cur_wanted:
                role = "skip"
            elif cur_meta is None:
                role = "orphan"
            elif not cur_meta.known_type:
                role = "unknown"
            elif cur_meta.version is None or cur_meta.version != ik.version:
                role = "dead_version"
            else:
                role = "live"
        if role == "live" or role == "unknown":
            assert cur_meta is not None and cur_ident is not None
            tc = report.counts(cur_ident[0], cur_meta.type_name)
            tc.records += 1
            tc.bytes += size
            key_records += 1
            key_bytes += size
        elif role == "dead_version":
            g = report.garbage.setdefault(cf, Garbage())
            g.dead_version_records += 1
            g.dead_version_bytes += size
        elif role == "orphan":
            g = report.garbage.setdefault(cf, Garbage())
            g.orphan_records += 1
            g.orphan_bytes += size
    finish()

    # Everything else: counted, never decoded or shown.
    for cf in db.column_families:
        if cf in WALKED_CFS:
            continue
        for raw_key, _, value in _walk(db, cf, None, None):
            total(cf, len(raw_key) + len(value))
    progress.update(streams=seen[0], records=seen[1])

    report.top_by_bytes = by_bytes.result()
    report.top_by_records = by_records.result()
    for type_id, count in sorted(unknown_types.items()):
        report.findings.append(
            finding(
                "UNKNOWN_TYPE",
                f"{count} keys of unknown type {type_id}: counted, not decoded",
                type_id=type_id,
                count=count,
            )
        )
    if report.undecodable_metadata:
        report.findings.append(
            finding(
                "UNDECODABLE_METADATA",
                f"{report.undecodable_metadata} metadata records do not decode",
                count=report.undecodable_metadata,
            )
        )
    undecodable = sum(g.undecodable_records for g in report.garbage.values())
    if undecodable:
        report.findings.append(
            finding(
                "UNDECODABLE_RECORD",
                f"{undecodable} subkey records are not internal keys under this cluster mode",
                count=undecodable,
            )
        )
    return report


def _lookup(db: Database, mkey: MetadataKey) -> tuple[Metadata | None, int]:
    raw_key = mkey.encode()
    raw = db.get("metadata", raw_key)
    if raw is None:
        return None, 0
    try:
        return decode_metadata(raw), len(raw_key) + len(raw)
    except CodecError:
        return None, 0
