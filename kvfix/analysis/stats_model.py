"""What kvfix stats reports: counts per namespace and type, garbage, the top-N heaps.
Filled by kvfix.analysis.stats; ``--match`` globs are kvfix.analysis.glob's."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from kvfix.analysis.findings import Finding
from kvfix.analysis.glob import Glob

DEFAULT_TOP = 10


@dataclass
class TypeCounts:
    keys: int = 0  # live: what SCAN would list
    expired: int = 0
    dead: int = 0
    records: int = 0  # subkey records of the current versions
    bytes: int = 0  # key + value bytes: metadata records plus those subkey records
    metadata_32bit: int = 0
    metadata_64bit: int = 0
    #: Type-specific counts (hash field expiration, TimeSeries chunks and samples, TopK records).
    detail: dict[str, int] = field(default_factory=dict)

    def add(self, other: TypeCounts) -> None:
        for name in self.__dataclass_fields__:
            if name != "detail":
                setattr(self, name, getattr(self, name) + getattr(other, name))
        for name, n in other.detail.items():
            self.detail[name] = self.detail.get(name, 0) + n

    def bump(self, name: str, n: int = 1) -> None:
        self.detail[name] = self.detail.get(name, 0) + n


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
        return None if self.match is None else Glob(self.match).match


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
    #: TimeSeries label index (``index`` CF) entries per namespace: [records, bytes].
    label_index: dict[bytes, list[int]] = field(default_factory=dict)
    label_index_undecodable: int = 0

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
        value = getattr(item, self.metric)
        heap = self._heap
        full = len(heap) >= self.n
        if full and value < heap[0][0]:
            return  # most keys: no inverted names made for them
        # Ties: the smaller (namespace, key) wins, so invert them for the min-heap.
        entry = (value, _inv(item.namespace), _inv(item.key), item)
        if not full:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)

    def result(self) -> list[TopKey]:
        return [e[3] for e in sorted(self._heap, reverse=True)]


def _inv(data: bytes) -> bytes:
    """Bytes that sort in the reverse order of ``data``'s, prefixes included: each byte b as
    (1, 255 - b), then 2, so a name sorts after every longer name it begins."""
    return bytes(x for b in data for x in (1, 255 - b)) + b"\x02"
