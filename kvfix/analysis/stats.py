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

Records of the newer encodings also add type-specific counts (kvfix.analysis.stats_detail:
hash field expiration, TimeSeries chunks and samples, TopK records).

Every other family (pubsub, propagate, search, index, unknown ones) is only counted:
records and bytes, never decoded and never shown (propagate may hold namespace tokens).
The one exception is ``index``, whose keys (TimeSeries label entries) are decoded far
enough to count them per namespace; their label names and values are never shown.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from kvfix.analysis.findings import finding
from kvfix.analysis.keyspace import choose_cluster
from kvfix.analysis.keyspace import now_ms as _now_ms
from kvfix.analysis.stats_detail import Detail, count_key, detail_for
from kvfix.analysis.stats_model import DEFAULT_TOP, Garbage, StatsFilter, StatsReport, TopKey, TopN, TypeCounts
from kvfix.analysis.stats_parts import Marks, in_two, stats_cut
from kvfix.codec.errors import CodecError
from kvfix.codec.keys import MetadataKey, decode_internal_key, decode_metadata_key, namespace_prefix, successor
from kvfix.codec.metadata import Metadata, decode_metadata
from kvfix.codec.timeseries import decode_label_index_key
from kvfix.progress import Progress
from kvfix.store.database import Database
from kvfix.textsafe import show_path

SUBKEY_CFS = ("default", "zset_score", "stream")
WALKED_CFS = ("metadata", *SUBKEY_CFS)
INDEX_CF = "index"
PROGRESS_EVERY = 8192


# --- the passes ---------------------------------------------------------------------------


def _state(meta: Metadata, now: int) -> str:
    if meta.is_dead():
        return "dead"
    if meta.is_expired(now):
        return "expired"
    return "live"


def _walk(db: Database, cf: str, start: bytes | None, stop: bytes | None) -> Iterator[tuple[bytes, str, bytes]]:
    chunks = db.chunks(cf, start) if stop is None else db.range_chunks(cf, start or b"", stop)
    for chunk in chunks:
        for key, value in chunk:
            yield key, cf, value


def collect_stats(
    db: Database,
    *,
    cluster: bool | None = None,
    filters: StatsFilter | None = None,
    top_n: int = DEFAULT_TOP,
    now_ms: int | None = None,
    progress: Progress | None = None,
) -> StatsReport:
    filters = filters or StatsFilter()
    use_cluster, cluster_findings = choose_cluster(db, cluster)
    now = _now_ms() if now_ms is None else now_ms
    report = StatsReport(show_path(db.path), db.column_families, use_cluster, filters, top_n, now)
    report.findings.extend(cluster_findings)
    c = _Collector(db, report, progress or Progress())
    c.metadata_pass()
    cut = stats_cut(c.marks.sample(), c.keys) if not db.live and not db.salvage else None
    if cut is None or not in_two(c, cut):
        c.subkey_pass()
    c.count_other_families()
    c.finish()
    return report


def collect_part(db: Database, report: StatsReport, start: bytes, tick: Callable[[int, int], None]) -> int:
    """A second process's part of the subkey pass (kvfix.analysis.stats_parts): the user keys
    from ``start`` on, into ``report`` (its top keys included); the records read."""
    c = _Collector(db, report, Progress())
    c.tick = tick
    tick(0, 0)  # its first look at the parent: a part too small to tick again still has one
    c.subkey_pass(start=start)
    report.top_by_bytes, report.top_by_records = c.by_bytes.result(), c.by_records.result()
    return c.records


class _Collector:
    """The passes of collect_stats over one database, and what they share."""

    def __init__(self, db: Database, report: StatsReport, progress: Progress) -> None:
        self.db, self.report, self.progress = db, report, progress
        filters = report.filters
        self.cluster, self.now = report.cluster, report.now_ms
        self.start = self.stop = None
        if filters.namespace is not None:
            self.start = namespace_prefix(filters.namespace)
            self.stop = successor(self.start)
        self.match = filters.matcher()
        self.types = filters.types
        self.by_bytes, self.by_records = TopN(report.top_n, "bytes"), TopN(report.top_n, "records")
        self.keys = self.records = 0  # for progress
        self.tick: Callable[[int, int], None] = lambda keys, records: progress.update(streams=keys, records=records)
        self.unknown_types: dict[int, int] = {}
        self.marks = Marks()  # of the metadata keys: where a second process may start

    def _read(self, cf: str, size: int) -> None:
        self.records += 1
        if self.records % PROGRESS_EVERY == 0:
            self.tick(self.keys, self.records)
        t = self.report.cf_totals.setdefault(cf, [0, 0])
        t[0] += 1
        t[1] += size

    def _push(self, top: TopKey) -> None:
        self.by_bytes.push(top)
        self.by_records.push(top)

    def metadata_pass(self) -> None:
        """Pass 1: per (namespace, type) key states and metadata bytes."""
        report = self.report
        for raw_key, _, raw_value in _walk(self.db, "metadata", self.start, self.stop):
            size = len(raw_key) + len(raw_value)
            self._read("metadata", size)
            try:
                mkey = decode_metadata_key(raw_key, self.cluster)
            except CodecError:
                report.undecodable_metadata += 1
                continue
            self.marks.add(mkey)
            if self.match is not None and not self.match(mkey.user_key):
                continue
            try:
                meta = decode_metadata(raw_value)
            except CodecError:
                report.undecodable_metadata += 1
                continue
            name = meta.type_name
            if self.types and name not in self.types:
                continue
            self.keys += 1
            if not meta.known_type:
                self.unknown_types[meta.type_id] = self.unknown_types.get(meta.type_id, 0) + 1
            tc = report.counts(mkey.namespace, name)
            state = _state(meta, self.now)
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
            count_key(tc, meta)
            if meta.version is None:  # string, JSON, unknown types: the metadata record is the key
                self._push(TopKey(mkey.namespace, mkey.user_key, name, 0, size, state, mkey.slot))

    def subkey_pass(self, start: bytes | None = None, stop: bytes | None = None) -> None:
        """Pass 2: the subkey families merged in key order, one user key at a time (those
        from ``start`` and before ``stop``, within the --namespace range: one process's part)."""
        db, report = self.db, self.report
        lo = self.start if start is None or (self.start is not None and self.start > start) else start
        hi = self.stop if stop is None or (self.stop is not None and self.stop < stop) else stop
        walks = [_walk(db, cf, lo, hi) for cf in SUBKEY_CFS if cf in db.column_families]
        key = _KeyInProgress()
        prefix: bytes | None = None
        role = "orphan"  # of the current prefix: live, dead_version, orphan, skip, unknown
        tc: TypeCounts | None = None  # the live key's type counters (looked up once a prefix)
        totals = report.cf_totals
        for raw_key, cf, value in heapq.merge(*walks):
            size = len(raw_key) + len(value)
            t = totals.get(cf) or totals.setdefault(cf, [0, 0])
            t[0] += 1
            t[1] += size
            self.records += 1
            if self.records % PROGRESS_EVERY == 0:
                self.tick(self.keys, self.records)
            if prefix is None or not raw_key.startswith(prefix):
                try:
                    ik = decode_internal_key(raw_key, self.cluster)
                except CodecError:
                    g = report.garbage.setdefault(cf, Garbage())
                    g.undecodable_records += 1
                    g.undecodable_bytes += size
                    prefix = None
                    continue
                prefix = raw_key[: len(raw_key) - len(ik.subkey)]
                ident = (ik.namespace, ik.slot, ik.user_key)
                if ident != key.ident:
                    self._finish_key(key)
                    key = self._start_key(ident, ik.namespace, ik.user_key, ik.slot)
                role = key.role(ik.version)
                tc = None
                if role == "live" or role == "unknown":
                    assert key.meta is not None
                    tc = report.counts(key.ident[0], key.meta.type_name)  # type: ignore[index]
            if tc is not None:
                tc.records += 1
                tc.bytes += size
                key.records += 1
                key.bytes += size
                if key.detail is not None and role == "live":
                    key.detail(tc, raw_key[len(prefix) :], value)
            elif role == "dead_version":
                g = report.garbage.setdefault(cf, Garbage())
                g.dead_version_records += 1
                g.dead_version_bytes += size
            elif role == "orphan":
                g = report.garbage.setdefault(cf, Garbage())
                g.orphan_records += 1
                g.orphan_bytes += size
        self._finish_key(key)

    def _start_key(self, ident, namespace: bytes, user_key: bytes, slot: int | None) -> _KeyInProgress:
        meta, meta_size = _lookup(self.db, MetadataKey(namespace, user_key, slot))
        wanted = self.match is None or bool(self.match(user_key))
        if wanted and self.types:
            wanted = meta is not None and meta.type_name in self.types
        detail = None if meta is None else detail_for(meta, self.now)
        return _KeyInProgress(ident, meta, meta_size, wanted, detail)

    def _finish_key(self, key: _KeyInProgress) -> None:
        meta = key.meta
        if key.ident is None or meta is None or not key.wanted or meta.version is None:
            return
        if not meta.known_type or key.records == 0:
            return
        ns, slot, user_key = key.ident
        state = _state(meta, self.now)
        self._push(TopKey(ns, user_key, meta.type_name, key.records, key.bytes + key.meta_size, state, slot))

    def count_other_families(self) -> None:
        """Everything else: counted, never decoded or shown."""
        for cf in self.db.column_families:
            if cf in WALKED_CFS:
                continue
            for raw_key, _, value in _walk(self.db, cf, None, None):
                t = self.report.cf_totals.setdefault(cf, [0, 0])
                t[0] += 1
                t[1] += len(raw_key) + len(value)
                if cf == INDEX_CF:
                    self._label_index_entry(raw_key, len(raw_key) + len(value))

    def _label_index_entry(self, raw_key: bytes, size: int) -> None:
        """Counted per namespace (of the --namespace filter); labels themselves never shown."""
        try:
            entry = decode_label_index_key(raw_key)
        except CodecError:
            self.report.label_index_undecodable += 1
            return
        wanted = self.report.filters.namespace
        if wanted is not None and entry.namespace != wanted:
            return
        t = self.report.label_index.setdefault(entry.namespace, [0, 0])
        t[0] += 1
        t[1] += size

    def finish(self) -> None:
        report = self.report
        self.progress.update(streams=self.keys, records=self.records)
        report.top_by_bytes = self.by_bytes.result()
        report.top_by_records = self.by_records.result()
        for type_id, count in sorted(self.unknown_types.items()):
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
        self._newer_findings()
        undecodable = sum(g.undecodable_records for g in report.garbage.values())
        if undecodable:
            report.findings.append(
                finding(
                    "UNDECODABLE_RECORD",
                    f"{undecodable} subkey records are not internal keys under this cluster mode",
                    count=undecodable,
                )
            )

    def _newer_findings(self) -> None:
        """Recognised but not decoded: hash field layouts kvfix does not know, odd label index keys."""
        report = self.report
        undecoded = sum(
            types["hash"].detail.get("undecoded_keys", 0) for types in report.namespaces.values() if "hash" in types
        )
        if undecoded:
            report.findings.append(
                finding(
                    "UNDECODED_HASH_ENCODING",
                    f"{undecoded} hash keys carry a field encoding kvfix does not decode (counted, fields raw)",
                    severity="warning",
                    count=undecoded,
                )
            )
        if report.label_index_undecodable:
            report.findings.append(
                finding(
                    "UNDECODABLE_INDEX_KEY",
                    f"{report.label_index_undecodable} index column family keys are not TimeSeries label entries",
                    severity="warning",
                    count=report.label_index_undecodable,
                )
            )


class _KeyInProgress:
    """The user key whose subkey records the merged walk is reading."""

    __slots__ = ("bytes", "detail", "ident", "meta", "meta_size", "records", "wanted")

    def __init__(
        self,
        ident: tuple[bytes, int | None, bytes] | None = None,
        meta: Metadata | None = None,
        meta_size: int = 0,
        wanted: bool = False,
        detail: Detail | None = None,
    ) -> None:
        self.ident, self.meta, self.meta_size = ident, meta, meta_size
        self.detail = detail  # type-specific counts of its live records (stats_detail)
        self.wanted = wanted  # the user key passes --match (and --type where known)
        self.records = self.bytes = 0

    def role(self, version: int) -> str:
        """What a record of this key with ``version`` is: live, unknown, dead_version, orphan, skip."""
        meta = self.meta
        if not self.wanted:
            return "skip"
        if meta is None:
            return "orphan"
        if not meta.known_type:
            return "unknown"
        if meta.version is None or meta.version != version:
            return "dead_version"
        return "live"


def _lookup(db: Database, mkey: MetadataKey) -> tuple[Metadata | None, int]:
    raw_key = mkey.encode()
    raw = db.get("metadata", raw_key)
    if raw is None:
        return None, 0
    try:
        return decode_metadata(raw), len(raw_key) + len(raw)
    except CodecError:
        return None, 0
