"""What kvfix stats reports: counts per namespace and type, garbage, the top-N heaps,
and the Redis-style glob of ``--match``.  Filled by kvfix.analysis.stats."""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field

from kvfix.analysis.findings import Finding

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
