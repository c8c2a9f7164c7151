"""Reading the metadata column family: cluster-mode detection and the live streams."""

from __future__ import annotations

import heapq
import time
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import blake2b

from kvfix.analysis.findings import Finding, finding
from kvfix.codec.errors import CodecError
from kvfix.codec.keys import MetadataKey, decode_metadata_key, key_prefix, slot_of
from kvfix.codec.metadata import Metadata, decode_metadata, stream_version
from kvfix.progress import Progress, Ticker
from kvfix.store.database import Database
from kvfix.textsafe import show

#: Keys checked to decide cluster mode; every one must carry its own CRC16 slot.
CLUSTER_SAMPLE = 10_000


def _slot_matches(raw: bytes) -> bool:
    ns_len = raw[0] if raw else 0
    head = 1 + ns_len
    if len(raw) < head + 2:
        return False
    slot = int.from_bytes(raw[head : head + 2], "big")
    return slot == slot_of(raw[head + 2 :])


@dataclass(frozen=True)
class ClusterDetection:
    cluster: bool
    checked: int
    matching: int


def detect_cluster(db: Database) -> ClusterDetection:
    """Slot ids are on iff every sampled metadata key's 2 bytes after the namespace are its slot."""
    checked = matching = 0
    for raw, _ in next(db.chunks("metadata", size=CLUSTER_SAMPLE), []):
        checked += 1
        matching += _slot_matches(raw)
    return ClusterDetection(checked > 0 and matching == checked, checked, matching)


def choose_cluster(db: Database, override: bool | None) -> tuple[bool, list[Finding]]:
    det = detect_cluster(db)
    if override is None or override == det.cluster:
        return det.cluster, []
    if det.checked == 0:
        return override, []
    if override:
        msg = f"--cluster given, but {det.checked - det.matching} of {det.checked} metadata keys carry no valid slot id"
    else:
        msg = f"--no-cluster given, but all {det.checked} metadata keys carry their own slot id"
    return override, [finding("CLUSTER_MODE_MISMATCH", msg + "; results under the override are unreliable")]


@dataclass(frozen=True, slots=True)
class LiveStream:
    key: MetadataKey
    metadata: Metadata


class LivePrefixes:
    """The key prefixes (namespace, slot, key: every version's) of the live streams, as hashes.

    The walk asks it of every key incarnation it meets between live streams: a sorted
    array of 64-bit hashes is 8 bytes a stream where a set of prefixes is ~150.  Two
    different prefixes share a hash with odds of about n^2 / 2^64 (5e-8 for a million
    streams); then the records of a key that is not a stream would go uncounted.
    """

    __slots__ = ("_sorted",)

    def __init__(self, hashes: array[int]) -> None:
        self._sorted = sorted_array(hashes)

    def __contains__(self, raw: bytes) -> bool:
        h = prefix_hash(raw)
        i = bisect_left(self._sorted, h)
        return i < len(self._sorted) and self._sorted[i] == h

    def __len__(self) -> int:
        return len(self._sorted)


#: Values sorted at once by :func:`sorted_array` (a Python int each while sorted).
SORT_RUN = 1 << 16


def sorted_array(values: array[int]) -> array[int]:
    """``values`` sorted, with at most SORT_RUN of them as Python ints at once (sorting a
    million at once held 40 MB of ints): runs sorted one by one, then merged."""
    runs = [array("q", sorted(values[i : i + SORT_RUN])) for i in range(0, len(values), SORT_RUN)]
    if len(runs) <= 1:
        return runs[0] if runs else array("q")
    out = array("q")
    out.extend(heapq.merge(*runs))
    return out


def prefix_hash(raw: bytes) -> int:
    """A 64-bit hash that is the same in every process (a parallel scan's second one)."""
    return int.from_bytes(blake2b(raw, digest_size=8).digest(), "big", signed=True)


#: Metadata keys the survey keeps as cut points, whatever the number of streams.
MARKS = 1024

#: Up to this many streams the survey keeps their metadata records (a parallel deep scan
#: balances its halves with them); beyond it, nothing per stream is kept.
SIZES_KEPT = 10_000


@dataclass
class Keyspace:
    """What one pass over the metadata column family tells before the walk: no record is held."""

    cluster: bool
    live: LivePrefixes = field(default_factory=lambda: LivePrefixes(array("q")))
    streams: int = 0
    namespaces: set[bytes] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    #: The metadata records (key, value) of every stream in key order; None past SIZES_KEPT.
    few: list[tuple[bytes, bytes]] | None = field(default_factory=list)
    #: The metadata key of every ``stride``-th stream (the 0th, the stride-th, ...): where a
    #: walk over many streams can be cut into parts of about known sizes; at most MARKS keys.
    marks: list[bytes] = field(default_factory=list)
    stride: int = 1

    def mark(self, raw_key: bytes) -> None:
        """Offer the next stream's metadata key (in key order) as a mark."""
        if self.streams % self.stride == 0:
            self.marks.append(raw_key)
            if len(self.marks) > MARKS:
                del self.marks[1::2]
                self.stride *= 2
        self.streams += 1

    def stream_at(self, fraction: float) -> bytes | None:
        """The metadata key of a stream about ``fraction`` of the way through (None: the first)."""
        i = int(self.streams * fraction) // self.stride
        return self.marks[i] if 0 < i < len(self.marks) else None


def surveyed(db: Database, cluster: bool, progress: Progress) -> Keyspace:
    """:func:`survey_keyspace` as a phase of its own on the progress bar (streams found,
    metadata records read: the total is not known before), then the caller's phase again."""
    title = progress.description
    progress.phase("surveying metadata")
    ks = survey_keyspace(db, cluster, Ticker(progress, None))
    progress.phase(title)
    return ks


def survey_keyspace(db: Database, cluster: bool, tick: Callable[[int, int], None] | None = None) -> Keyspace:
    """One pass over metadata: namespace names, findings, and the live streams' prefixes;
    ``tick`` gets (streams found, records read) after each chunk."""
    ks = Keyspace(cluster)
    read = 0
    unknown: Counter[int] = Counter()
    hashes: array[int] = array("q")
    few = ks.few
    for chunk in db.chunks("metadata"):
        if tick is not None:
            tick(ks.streams, read)
            read += len(chunk)
        for raw_key, raw_value in chunk:
            try:
                mkey = decode_metadata_key(raw_key, cluster)
            except CodecError as exc:
                ks.findings.append(finding("UNDECODABLE_METADATA", f"metadata key {show(raw_key)}: {exc}"))
                continue
            ks.namespaces.add(mkey.namespace)
            if stream_version(raw_value) is None:
                _other_type(ks, unknown, mkey, raw_value)
                continue
            hashes.append(prefix_hash(key_prefix(mkey.namespace, mkey.user_key, mkey.slot)))
            ks.mark(raw_key)
            if few is not None:
                few.append((raw_key, raw_value))
                if len(few) > SIZES_KEPT:
                    few = ks.few = None
    ks.live = LivePrefixes(hashes)
    for type_id, count in sorted(unknown.items()):
        ks.findings.append(
            finding("UNKNOWN_TYPE", f"{count} metadata records of unknown type {type_id}", type_id=type_id, count=count)
        )
    return ks


def _other_type(ks: Keyspace, unknown: Counter[int], mkey: MetadataKey, raw_value: bytes) -> None:
    """A metadata record that is not a stream's: count unknown types, report what does not decode."""
    try:
        meta = decode_metadata(raw_value)
    except CodecError as exc:
        ks.findings.append(finding("UNDECODABLE_METADATA", f"metadata value: {exc}", mkey.namespace, mkey.user_key))
        return
    if not meta.known_type:
        unknown[meta.type_id] += 1


def decode_live(mkey: MetadataKey, raw_value: bytes) -> LiveStream | None:
    """The live stream a metadata record holds, or None (not a stream, or undecodable: the
    survey reported it)."""
    if stream_version(raw_value) is None:
        return None
    try:
        return LiveStream(mkey, decode_metadata(raw_value))
    except CodecError:
        return None


def now_ms() -> int:
    return int(time.time() * 1000)
