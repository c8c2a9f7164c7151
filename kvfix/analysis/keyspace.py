"""Reading the metadata column family: cluster-mode detection and the live streams."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from kvfix.analysis.findings import Finding, finding
from kvfix.analysis.walk import Prefix
from kvfix.codec.errors import CodecError
from kvfix.codec.keys import MetadataKey, decode_metadata_key, slot_of
from kvfix.codec.metadata import KeyType, Metadata, decode_metadata
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


def iter_metadata_keys(db: Database) -> Iterator[bytes]:
    it = db.iterator("metadata")
    if it is None:
        return
    it.seek_to_first()
    while it.valid():
        yield it.key()
        it.next()


def detect_cluster(db: Database) -> ClusterDetection:
    """Slot ids are on iff every sampled metadata key's 2 bytes after the namespace are its slot."""
    checked = matching = 0
    for raw in iter_metadata_keys(db):
        checked += 1
        matching += _slot_matches(raw)
        if checked >= CLUSTER_SAMPLE:
            break
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


@dataclass(frozen=True)
class LiveStream:
    key: MetadataKey
    metadata: Metadata


@dataclass
class Keyspace:
    cluster: bool
    streams: dict[tuple[bytes, bytes], LiveStream] = field(default_factory=dict)
    namespaces: set[bytes] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)


def load_keyspace(db: Database, cluster: bool, now_ms: int | None = None) -> Keyspace:
    """One pass over metadata: live streams (held, they are few) and namespace names."""
    ks = Keyspace(cluster)
    unknown: Counter[int] = Counter()
    it = db.iterator("metadata")
    if it is None:
        return ks
    it.seek_to_first()
    while it.valid():
        raw_key, raw_value = it.key(), it.value()
        it.next()
        try:
            mkey = decode_metadata_key(raw_key, cluster)
        except CodecError as exc:
            ks.findings.append(finding("UNDECODABLE_METADATA", f"metadata key {show(raw_key)}: {exc}"))
            continue
        ks.namespaces.add(mkey.namespace)
        try:
            meta = decode_metadata(raw_value)
        except CodecError as exc:
            ks.findings.append(finding("UNDECODABLE_METADATA", f"metadata value: {exc}", mkey.namespace, mkey.user_key))
            continue
        if not meta.known_type:
            unknown[meta.type_id] += 1
        elif meta.type_id == KeyType.STREAM:
            ks.streams[(mkey.namespace, mkey.user_key)] = LiveStream(mkey, meta)
    for type_id, count in sorted(unknown.items()):
        ks.findings.append(
            finding("UNKNOWN_TYPE", f"{count} metadata records of unknown type {type_id}", type_id=type_id, count=count)
        )
    return ks


def owner_of(db: Database, streams: dict[tuple[bytes, bytes], LiveStream], prefix: Prefix) -> LiveStream | str:
    """Whose records a stream column family prefix holds: the live stream's, or "stale"
    (a dead version of a key that exists, as a stream or as another type now) or "orphan"
    (no metadata at all).  scan, check and migrate all file records by this one answer."""
    live = streams.get((prefix.namespace, prefix.user_key))
    if live is not None and live.metadata.version == prefix.version and live.key.slot == prefix.slot:
        return live
    if live is not None or db.get("metadata", MetadataKey(prefix.namespace, prefix.user_key, prefix.slot).encode()):
        return "stale"
    return "orphan"


def now_ms() -> int:
    return int(time.time() * 1000)
