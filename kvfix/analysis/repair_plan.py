"""What ``kvfix check --repair`` would write: new counters and ids, computed from the facts.

Pure: a :class:`StreamCheck` in, a :class:`StreamRepair` (encoded puts) out.  Repair only
rewrites metadata, group and consumer values, and adds a consumer record that PEL records
name but that is missing; it never deletes an entry or a record.  Rules:

- metadata: size = live entries; first/last_entry_id = smallest/largest entry (0-0 when
  empty); last_generated_id is raised to the largest entry id and max_deleted_entry_id
  (ids only move forward, so XADD * never reuses an id); group_number = group records.
- group: consumer_number = consumer records, pending_number = PEL records,
  last_delivered_id is lowered to last_generated_id when above it (nothing lies beyond
  it, so the group loses no entry).  A group value of the wrong length is rebuilt the
  same way with last_delivered_id = its largest PEL id (entries after it are delivered
  again: at-least-once, never skipped), entries_read = -1 (unknown), lag = 0.
- consumer: pending_number = PEL records it owns; a value of the wrong length is
  rebuilt with interaction times 0.  A consumer named by PEL records but missing is
  created (as XCLAIM would) with pending_number = its PEL records.
- entry and PEL values that do not decode are not repairable (nothing to recompute them
  from): they stay reported; restore them from a backup.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from kvfix.analysis.check import StreamCheck
from kvfix.analysis.invariants import group_record_count
from kvfix.codec.keys import InternalKey, MetadataKey
from kvfix.codec.metadata import ZERO_ID, StreamId
from kvfix.codec.stream import ConsumerKey, ConsumerValue, GroupKey, GroupValue, encode_subkey
from kvfix.textsafe import show


@dataclass(frozen=True)
class Put:
    cf: str  # "metadata" or "stream"
    key: bytes
    value: bytes
    what: str  # human description of the change


@dataclass
class StreamRepair:
    namespace: bytes
    key: bytes
    puts: list[Put] = field(default_factory=list)
    unrepairable: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.puts


def _changes(old: object, new: object, names: tuple[str, ...]) -> str:
    return ", ".join(f"{n} {getattr(old, n)} -> {getattr(new, n)}" for n in names if getattr(old, n) != getattr(new, n))


def plan_stream_repair(sc: StreamCheck) -> StreamRepair:
    rep, facts = sc.report, sc.facts
    out = StreamRepair(rep.namespace, rep.key)
    meta, tail = rep.metadata, rep.metadata.stream
    if rep.expired or tail is None:
        return out
    first, last = facts.first or ZERO_ID, facts.last or ZERO_ID
    n_groups = group_record_count(rep, facts)
    lgid = max(tail.last_generated_id, last, tail.max_deleted_entry_id)
    new_tail = dataclasses.replace(
        tail,
        first_entry_id=first,
        last_entry_id=last,
        last_generated_id=lgid,
        group_number=n_groups if (tail.group_number is not None or n_groups) else None,
    )
    new_meta = dataclasses.replace(meta, size=facts.entries, stream=new_tail)
    if new_meta != meta:
        what = "; ".join(
            x
            for x in (
                _changes(meta, new_meta, ("size",)),
                _changes(tail, new_tail, ("first_entry_id", "last_entry_id", "last_generated_id", "group_number")),
            )
            if x
        )
        out.puts.append(
            Put(
                "metadata",
                MetadataKey(rep.namespace, rep.key, rep.slot).encode(),
                new_meta.encode(),
                f"metadata: {what}",
            )
        )

    def sub_put(sub: bytes, value: bytes, what: str) -> None:
        key = InternalKey(rep.namespace, rep.key, rep.version, sub, rep.slot).encode()
        out.puts.append(Put("stream", key, value, what))

    for bad in facts.bad_values:
        if bad.kind == "entry" or bad.kind.endswith("_pel"):
            out.unrepairable.append(
                f"{bad.kind} record {bad.subkey.hex()}: value does not decode; restore it from a backup"
            )
    for layout, name in sorted(set(rep.groups) | set(facts.bad_consumers) | facts.bad_groups):
        _plan_group(out, sc, layout, name, lgid, sub_put)
    return out


def _plan_group(out: StreamRepair, sc: StreamCheck, layout, name: bytes, lgid: StreamId, sub_put) -> None:
    rep, facts = sc.report, sc.facts
    g = rep.groups.get((layout, name))
    pel_count = g.pel_count if g else 0
    have = g.consumers if g else {}
    bad_consumers = facts.bad_consumers.get((layout, name), set())
    gname = show(name)
    owned = g.pel_owners() if g else {}
    consumers = set(have) | bad_consumers | set(owned)
    gsub = encode_subkey(GroupKey(layout, name))
    if g is not None and g.value is not None:
        old = g.value
        new = dataclasses.replace(
            old,
            consumer_number=len(consumers),
            pending_number=pel_count,
            last_delivered_id=min(old.last_delivered_id, lgid),
        )
        if new != old:
            what = _changes(old, new, ("consumer_number", "pending_number", "last_delivered_id"))
            sub_put(gsub, new.encode(), f"group {gname} ({layout}): {what}")
    elif (layout, name) in facts.bad_groups:
        last_pel = (g.pel_max_id() if g else None) or ZERO_ID
        new = GroupValue(len(consumers), pel_count, min(last_pel, lgid), -1, 0)
        sub_put(gsub, new.encode(), f"group {gname} ({layout}): undecodable value rebuilt")
    else:
        out.unrepairable.append(
            f"group {gname} ({layout}): no group record; not recreated (it may have been destroyed)"
        )
        return
    for cname in sorted(consumers):
        csub = encode_subkey(ConsumerKey(layout, name, cname))
        n = owned.get(cname, 0)
        who = f"consumer {show(cname)} of {gname} ({layout})"
        if cname in have:
            old_c = have[cname].value
            if old_c.pending_number != n:
                sub_put(
                    csub,
                    dataclasses.replace(old_c, pending_number=n).encode(),
                    f"{who}: pending_number {old_c.pending_number} -> {n}",
                )
        elif cname in bad_consumers:
            sub_put(csub, ConsumerValue(n, 0, 0).encode(), f"{who}: undecodable value rebuilt, pending_number {n}")
        else:
            sub_put(csub, ConsumerValue(n, 0, 0).encode(), f"{who}: created for the {n} PEL records it owns")
