"""inspect's compact value per type (like the server's reply) and its cross-checks.

Filled into an InspectReport once every record of the key has been read; the label
index check reads the ``index`` column family by point lookups only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kvfix.codec.hash_ttl import HashFieldExpiryTail, hash_encoding
from kvfix.codec.metadata import KeyType, Metadata
from kvfix.codec.timeseries import TSLabelIndexKey
from kvfix.codec.types import HASH_FIELD_EXPIRE_FLAG, popcount
from kvfix.store.database import Database

if TYPE_CHECKING:
    from kvfix.analysis.inspect import InspectReport

INDEX_CF = "index"
_COUNTED = (KeyType.HASH, KeyType.SET, KeyType.LIST, KeyType.ZSET, KeyType.SORTEDINT)


def hash_mode(meta: Metadata) -> str:
    """legacy, ttl (field expiration, decoded), pr2402 (flag 0x40, never released), odd (other tail)."""
    return hash_encoding(meta.type_id, meta.extra_flags, meta.tail, HASH_FIELD_EXPIRE_FLAG)


def summarise(rep: InspectReport, meta: Metadata) -> None:
    """A compact value like the server's reply, plus cross-checks against the metadata."""
    t = meta.type_id
    fn = _SUMMARIES.get(t)
    if fn is not None:
        fn(rep, meta)
    mode = hash_mode(meta)
    live = sum(c.live for cf, c in rep.counts.items() if cf == ("stream" if t == KeyType.STREAM else "default"))
    if t not in _COUNTED or mode in ("pr2402", "odd") or meta.size is None or live == meta.size:
        return
    if mode == "ttl":
        rep.notes.append(
            f"metadata size {meta.size} but {live} field records: with field expiration the size can lag "
            "behind fields that compaction already dropped (HLEN REPAIR recounts)"
        )
    else:
        rep.problems.append(f"metadata size {meta.size} but {live} live records")


def _hash(rep: InspectReport, meta: Metadata) -> None:
    mode = hash_mode(meta)
    if mode in ("pr2402", "odd"):
        return
    fields = [r for r in rep.records if r.kind == "field"]
    rep.value = {r.data["field"]: r.data["value"] for r in fields if not r.data.get("expired")}
    if mode == "ttl" and isinstance(rep.tail, HashFieldExpiryTail):
        _check_field_expiry(rep, rep.tail, fields)


def _check_field_expiry(rep: InspectReport, tail: HashFieldExpiryTail, fields) -> None:
    expired = sum(1 for r in fields if r.data.get("expired"))
    with_ttl = [r.data["expire_ms"] for r in fields if r.data.get("expire_ms")]
    rep.notes.append(
        f"hash field expiration: {len(with_ttl)} fields with an expiry, {expired} of them expired "
        "(left out of value; on disk until compaction)"
    )
    if rep.truncated:
        return
    persistent = len(fields) - len(with_ttl)
    if persistent != tail.persist:
        rep.problems.append(f"metadata persist {tail.persist} but {persistent} fields without an expiry")
    outside = [e for e in with_ttl if not tail.lower <= e <= tail.upper]
    if outside:
        rep.problems.append(
            f"{len(outside)} field expiries outside the metadata bounds lower..upper ({tail.lower}..{tail.upper})"
        )


def _set(rep: InspectReport, meta: Metadata) -> None:
    rep.value = sorted(r.data["member"] for r in rep.records if r.kind == "member")


def _list(rep: InspectReport, meta: Metadata) -> None:
    items = [r for r in rep.records if r.kind == "item"]
    rep.value = [r.data["item"] for r in items]
    if meta.list is not None and not rep.truncated:
        expected = list(range(meta.list.head, meta.list.tail))
        if [r.data["index"] for r in items] != expected:
            rep.problems.append(f"list indexes do not run head..tail-1 ({meta.list.head}..{meta.list.tail - 1})")
    for pos, r in enumerate(items):
        r.data["position"] = pos


def _zset(rep: InspectReport, meta: Metadata) -> None:
    by_score = [(r.data["member"], r.data["score"]) for r in rep.records if r.kind == "score_member"]
    by_member = {r.data["member"]: r.data["score"] for r in rep.records if r.kind == "member_score"}
    rep.value = [[m, s] for m, s in by_score]
    if rep.truncated:
        rep.notes.append("zset cross-check skipped: more members than --limit")
        return
    a = dict(by_score)
    if a == by_member:
        rep.notes.append(f"zset cross-check: default and zset_score agree on all {len(a)} members")
        return
    only_a = sorted(set(a) - set(by_member))
    only_b = sorted(set(by_member) - set(a))
    differ = sorted(m for m in set(a) & set(by_member) if a[m] != by_member[m])
    rep.problems.append(
        f"zset column families disagree: {len(only_a)} members only in zset_score, "
        f"{len(only_b)} only in default, {len(differ)} with different scores"
    )


def _bitmap(rep: InspectReport, meta: Metadata) -> None:
    frags = [r for r in rep.records if r.kind == "fragment"]
    rep.value = {"bytes": meta.size, "bits_set": sum(popcount(r.data["fragment"]) for r in frags)}


def _sortedint(rep: InspectReport, meta: Metadata) -> None:
    rep.value = [r.data["id"] for r in rep.records if r.kind == "id"]


def _stream(rep: InspectReport, meta: Metadata) -> None:
    entries = sum(1 for r in rep.records if r.kind == "entry")
    rep.value = {"xlen": meta.size, "entries_shown": entries}


def _timeseries(rep: InspectReport, meta: Metadata) -> None:
    chunks = [r for r in rep.records if r.kind == "chunk"]
    rep.value = {
        "chunks": len(chunks),
        "samples": sum(r.data["count"] for r in chunks),
        "labels": {r.data["label"]: r.data["value"] for r in rep.records if r.kind == "label"},
        "rules": [r.data["destination"] for r in rep.records if r.kind == "downstream"],
    }
    if any(r.data["compressed"] for r in chunks):
        rep.notes.append("compressed timeseries chunks (Kvrocks writes none yet): counted, samples not decoded")
    if not rep.truncated and meta.size is not None and len(chunks) != meta.size:
        rep.problems.append(f"metadata chunk count {meta.size} but {len(chunks)} chunk records")


_SUMMARIES: dict[int, Callable[[InspectReport, Metadata], None]] = {
    KeyType.HASH: _hash,
    KeyType.SET: _set,
    KeyType.LIST: _list,
    KeyType.ZSET: _zset,
    KeyType.BITMAP: _bitmap,
    KeyType.SORTEDINT: _sortedint,
    KeyType.STREAM: _stream,
    KeyType.TIMESERIES: _timeseries,
}


def check_label_index(db: Database, rep: InspectReport) -> None:
    """Each label of a series has its reverse entry in the ``index`` column family (TS.MGET filters by it)."""
    labels = [r for r in rep.records if r.kind == "label"]
    if not labels:
        return
    if INDEX_CF not in db.column_families:
        rep.notes.append(f"the database has no {INDEX_CF} column family: the label index was not checked")
        return
    missing = []
    for r in labels:
        key = TSLabelIndexKey(rep.namespace, r.data["label"], r.data["value"], rep.key).encode()
        if db.get(INDEX_CF, key) is None:
            missing.append(r.data["label"])
    if missing:
        rep.problems.append(f"{len(missing)} labels have no entry in the {INDEX_CF} column family (TS.MGET misses)")
    else:
        rep.notes.append(f"label index: all {len(labels)} labels have their {INDEX_CF} entry")
