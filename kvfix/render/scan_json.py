"""scan's JSON, one stream at a time (schema 2, documented in README): per stream and per
group, collisions summed up per group and kind; every record only with ``records``."""

from __future__ import annotations

from typing import Any

from kvfix.analysis.model import RECORD_COUNT_KEYS, Collision, GroupInfo, StreamReport
from kvfix.codec.metadata import StreamId
from kvfix.render.jsonout import Lazy, safe_int, text_and_hex

_OVER = "XRANGE/XREVRANGE over "


class Bucket:
    """One group's collisions of one kind: record count, alias range, scans and releases (first seen order)."""

    __slots__ = ("_last", "_seen", "hi", "lo", "records", "releases", "scans")

    def __init__(self, first: StreamId) -> None:
        self.lo = self.hi = first
        self.records = 0
        self.scans: dict[str, None] = {}
        self.releases: dict[str, None] = {}
        self._last: tuple[str, ...] | None = None  # a group's records share one scans tuple
        self._seen: list[tuple[str, ...]] = []  # releases tuples met (one or two)

    def add(self, c: Collision, scans: tuple[str, ...] | None = None) -> None:
        """One collision; ``scans``: its scans without the alias's own XRANGE line, if known."""
        self.records += 1
        if c.alias_id < self.lo:
            self.lo = c.alias_id
        elif c.alias_id > self.hi:
            self.hi = c.alias_id
        if c.scans is not self._last:
            self._last = c.scans
            self.scans.update(dict.fromkeys(_named_scans(c.scans) if scans is None else scans))
        if c.releases not in self._seen:
            self._seen.append(c.releases)
            self.releases.update(dict.fromkeys(c.releases))

    @property
    def span(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}..{self.hi}"

    def json(self, kind: str) -> dict[str, Any]:
        return {
            "kind": kind,
            "records": self.records,
            "first_alias_id": str(self.lo),
            "last_alias_id": str(self.hi),
            "scans": list(self.scans),
            "releases": list(self.releases),
        }


Buckets = dict[bytes, dict[str, Bucket]]


def collision_buckets(s: StreamReport) -> Buckets:
    """The stream's collisions (legacy records) summed up per group name and kind, keeping no Collision.

    A run of one group's records of one kind shares its alias id, scans and releases
    (LegacyRecords.runs): a run is one step, so a PEL of a million costs what one record does.
    """
    buckets: Buckets = {}
    if not s.collision_count:
        return buckets
    last: tuple[str, ...] | None = None
    named: tuple[str, ...] = ()
    for c, count in s.collision_runs():
        if c.scans is not last:  # the runs of one alias id share their scans tuple
            last, named = c.scans, _named_scans(c.scans)
        kinds = buckets.setdefault(c.group, {})
        b = kinds.get(c.kind.value)
        if b is None:
            b = kinds[c.kind.value] = Bucket(c.alias_id)
        b.add(c, named)
        b.records += count - 1
    return buckets


def _named_scans(scans: tuple[str, ...]) -> tuple[str, ...]:
    """The scans a bucket lists: all but the alias's own XRANGE line (its ids are the bucket's range)."""
    return tuple(x for x in scans if not x.startswith(_OVER))


def _pel_json(g: GroupInfo) -> Any:
    return (
        {
            "id": str(p.entry_id),
            **text_and_hex("consumer", p.value.consumer),
            "delivery_count": safe_int(p.value.delivery_count),
            "last_delivery_ms": safe_int(p.value.last_delivery_time_ms),
        }
        for p in g.iter_pel()
    )


def group_json(g: GroupInfo, with_pel: bool, lazy: bool = False, buckets: Buckets | None = None) -> dict[str, Any]:
    """One group; its collisions per kind from ``buckets`` (legacy groups), PEL records with ``with_pel``."""
    v = g.value
    out: dict[str, Any] = {
        **text_and_hex("name", g.name),
        "layout": g.layout,
        "has_group_record": v is not None,
        "pending": None if v is None else safe_int(v.pending_number),
        "last_delivered_id": None if v is None else str(v.last_delivered_id),
        "entries_read": None if v is None else safe_int(v.entries_read),
        "lag": None if v is None else safe_int(v.lag),
        "consumer_number": None if v is None else safe_int(v.consumer_number),
        "pel_records": g.pel_count,
        "consumers": [
            {**text_and_hex("name", c.name), "pending": safe_int(c.pending)}
            for c in sorted(g.consumers.values(), key=lambda c: c.name)
        ],
        "collisions": [b.json(kind) for kind, b in sorted(mine(g, buckets).items())],
    }
    if with_pel:
        out["pel"] = Lazy(_pel_json(g)) if lazy else list(_pel_json(g))
    return out


def mine(g: GroupInfo, buckets: Buckets | None) -> dict[str, Bucket]:
    """The group's collision buckets: legacy records are collisions, prefixed ones never."""
    if not buckets or g.layout != "legacy":
        return {}
    return buckets.get(g.name, {})


def _collision_json(c: Collision) -> dict[str, Any]:
    return {
        "kind": c.kind.value,
        **text_and_hex("group", c.group),
        "alias_id": str(c.alias_id),
        "subkey_hex": c.subkey.hex(),
        "scans": list(c.scans),
        "releases": list(c.releases),
    }


def stream_json(s: StreamReport, with_pel: bool = False, lazy: bool = False, records: bool = False) -> dict[str, Any]:
    """One stream; ``records`` adds every collision, ``lazy`` yields them only while dump() writes them."""
    m = s.metadata
    tail = m.stream
    buckets = collision_buckets(s)
    out: dict[str, Any] = {
        **text_and_hex("namespace", s.namespace),
        **text_and_hex("key", s.key),
        "slot": s.slot,
        "version": str(s.version),
        "size": safe_int(m.size),
        "group_number": None if tail is None else safe_int(tail.group_number),
        "last_generated_id": None if tail is None else str(tail.last_generated_id),
        "expired": s.expired,
        "layout": s.layout,
        "records": {k: s.records[k] for k in RECORD_COUNT_KEYS},
        "collision_count": s.collision_count,
        "groups": [group_json(g, with_pel or records, lazy, buckets) for _, g in sorted(s.groups.items())],
    }
    if records:
        every = (_collision_json(c) for c in s.iter_collisions())
        out["collision_records"] = Lazy(every) if lazy else list(every)
    return out
