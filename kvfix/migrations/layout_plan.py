"""Planning m001 stream by stream: which group records move, which are dropped, and why.

A group found in one layout moves; a group in both is a conflict, resolved by
``--on-conflict`` or refused, unless its records are identical or are a move an earlier
run left part done.  Decisions are per group and layout (a Side), never per record;
each stream's plan also says what its group records must be afterwards (how many, and
the sum of their hashes), which is what verification compares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from kvfix.analysis.keyspace import choose_cluster, now_ms, surveyed
from kvfix.analysis.sharded import shard_point
from kvfix.analysis.walk import paused_gc
from kvfix.codec.errors import CodecError
from kvfix.codec.metadata import decode_metadata
from kvfix.codec.stream import GroupValue, Layout, relocated_subkey
from kvfix.migrations.base import Plan, PlanOptions, Skipped
from kvfix.migrations.layout_records import (
    PEL_IDS_KEPT,
    Collected,
    Side,
    StreamRecords,
    WalkPart,
    stream_records,
)
from kvfix.migrations.stream_plan import Conflict, MetadataChange, StreamPlan
from kvfix.migrations.tally import PlanHead, PlanTally
from kvfix.progress import Progress
from kvfix.store.database import Database
from kvfix.textsafe import show

if TYPE_CHECKING:
    from kvfix.migrations.plan_parts import SecondPart

OnStream = Callable[[StreamPlan], None]

_GROUP_FIELDS = ("last_delivered_id", "pending_number", "consumer_number", "entries_read", "lag")
#: Consumer names a conflict's differences list before it only counts them.
NAMES_SHOWN = 20


def _differences(src: Side, tgt: Side, source: Layout, target: Layout) -> tuple[str, ...]:
    """What differs between a group's records in the two layouts, for people (empty: identical)."""
    diffs = _group_record_differences(src, tgt, source, target)
    a, b = sorted(src.consumers), sorted(tgt.consumers)
    if a != b:
        diffs.append(f"consumers: {source}=[{_names(a)}] {target}=[{_names(b)}]")
    if src.pel <= PEL_IDS_KEPT and tgt.pel <= PEL_IDS_KEPT:
        ids_a, ids_b = sorted(src.pel_ids), sorted(tgt.pel_ids)
        if ids_a != ids_b:
            diffs.append(f"pending entries: {source}=[{', '.join(ids_a)}] {target}=[{', '.join(ids_b)}]")
    elif src.pel != tgt.pel:
        diffs.append(f"pending entries: {source}={src.pel:,} {target}={tgt.pel:,}")
    if not diffs and (src.records != tgt.records or src.sum != tgt.sum):
        diffs.append(f"records differ in keys or values ({src.records:,} {source}, {tgt.records:,} {target})")
    return tuple(diffs)


def _names(names: list[bytes]) -> str:
    shown = ", ".join(show(n) for n in names[:NAMES_SHOWN])
    return shown + (f", … {len(names) - NAMES_SHOWN:,} more" if len(names) > NAMES_SHOWN else "")


def _group_record_differences(src: Side, tgt: Side, source: Layout, target: Layout) -> list[str]:
    """The fields of the group record proper that differ, or that only one side has one."""
    diffs: list[str] = []
    sg = None if src.group_record is None else src.group_record.decoded
    tg = None if tgt.group_record is None else tgt.group_record.decoded
    if isinstance(sg, GroupValue) and isinstance(tg, GroupValue):
        for name in _GROUP_FIELDS:
            a, b = getattr(sg, name), getattr(tg, name)
            if a != b:
                diffs.append(f"{name}: {source}={a} {target}={b}")
    elif (sg is None) != (tg is None):
        diffs.append(f"group record: {source}={'yes' if sg else 'no'} {target}={'yes' if tg else 'no'}")
    return diffs


def continues_a_move(sr: StreamRecords, src: Side, tgt: Side) -> bool:
    """Whether a group's records in both layouts are a split move that stopped part way.

    A split stream moves its group record last (StreamPlan.parts), and each record's put
    and the delete of its old key are in one batch: so the target side has no group
    record yet, the source side still has it, and no record exists on both sides.  A
    group created again by a server always has its own group record.
    """
    if tgt.group_record is not None or src.group_record is None:
        return False
    moved = sr.records(tgt.layout, frozenset((tgt.group,)))
    return not any(sr.exists(relocated_subkey(r.sub, r.kind)) for r in moved)


@dataclass
class _StreamDraft:
    """One stream's plan while it is made: the sides that move or are dropped, the conflicts and notes."""

    moves: list[Side] = field(default_factory=list)
    dropped: list[tuple[Side, str]] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def after(self, targets: dict[bytes, Side]) -> list[Side]:
        """The sides the stream holds in the target layout afterwards."""
        gone = {id(s) for s, _ in self.dropped}
        return [s for s in targets.values() if id(s) not in gone] + self.moves


def plan_stream(sr: StreamRecords, source: Layout, target: Layout, options: PlanOptions) -> StreamPlan | None:
    """The plan of one stream, None when it holds no group record in the source layout."""
    src, tgt = sr.by_layout(source), sr.by_layout(target)
    if not src:
        return None
    draft = _StreamDraft()
    for group in sorted(src):
        side, own = src[group], tgt.get(group)
        if own is not None and continues_a_move(sr, side, own):
            draft.notes.append(
                f"group {show(group)}: finishing a move an earlier kvfix run left part done "
                f"({own.records:,} records already {target})"
            )
            draft.moves.append(side)
        elif own is not None:
            _resolve_conflict(draft, side, own, source, target, options)
        else:
            draft.moves.append(side)
    draft.notes.extend(_stream_notes(sr))
    after = draft.after(tgt)
    meta = _metadata_change(sr, sum(s.group_record is not None for s in after))
    if isinstance(meta, str):
        draft.notes.append(meta)
        meta = None
    return _stream_plan(sr, source, draft, meta, after)


def _resolve_conflict(
    draft: _StreamDraft, side: Side, own: Side, source: Layout, target: Layout, options: PlanOptions
) -> None:
    """Record the conflict of a group in both layouts: the winning side stays (or moves), the other is dropped."""
    diffs = _differences(side, own, source, target)
    if not diffs:
        resolution, why = "identical", f"duplicate of the identical {target} record"
        draft.dropped.append((side, why))
    elif options.on_conflict == f"keep-{target}":
        resolution = options.on_conflict
        draft.dropped.append((side, f"group in both layouts; --on-conflict keep-{target}"))
    elif options.on_conflict == f"keep-{source}":
        resolution = options.on_conflict
        draft.dropped.append((own, f"group in both layouts; --on-conflict keep-{source}"))
        draft.moves.append(side)
    else:
        resolution = None
    draft.conflicts.append(Conflict(side.group, diffs, resolution))


def _stream_notes(sr: StreamRecords) -> list[str]:
    """What people should know about a stream whose records move anyway."""
    notes: list[str] = []
    if sr.ambiguous:
        notes.append(f"{sr.ambiguous} records also fit another reading (empty names?); moved as group records")
    if sr.live.metadata.is_expired(now_ms()):
        notes.append("stream metadata has expired; its records are migrated anyway")
    return notes


def _stream_plan(
    sr: StreamRecords, source: Layout, draft: _StreamDraft, meta: MetadataChange | None, after: list[Side]
) -> StreamPlan:
    live = sr.live
    return StreamPlan(
        live.key.namespace,
        live.key.user_key,
        live.key.slot,
        live.metadata.version or 0,
        sr.prefix,
        source,
        tuple(draft.moves),
        tuple(draft.dropped),
        meta,
        tuple(draft.conflicts),
        tuple(draft.notes),
        sum(s.records for s in after),
        sum(s.check for s in after) & ((1 << 64) - 1),
        sr,
    )


def _metadata_change(sr: StreamRecords, groups_after: int) -> MetadataChange | str | None:
    """The metadata with group_number = ``groups_after``; None when it already says so, or
    a note when the metadata can't be rewritten safely (it does not re-encode to ``raw``)."""
    meta, raw = sr.live.metadata, sr.metadata
    tail = meta.stream
    if tail is None:
        return None
    if tail.group_number == groups_after or (tail.group_number is None and groups_after == 0):
        return None
    try:
        if decode_metadata(raw).encode() != raw:
            return "metadata does not re-encode byte for byte; group_number left as it is"
    except CodecError as exc:
        return f"metadata undecodable ({exc}); group_number left as it is"
    new = replace(meta, stream=replace(tail, group_number=groups_after)).encode()
    return MetadataChange(sr.live.key.encode(), raw, new, tail.group_number, groups_after)


def stream_plans(
    db: Database,
    source: Layout,
    target: Layout,
    options: PlanOptions,
    col: Collected,
    progress: Progress | None = None,
    part: WalkPart | None = None,
) -> Iterator[StreamPlan]:
    """Each stream's plan as soon as its records are read (only one stream's are held);
    ``col`` gets what the walk left alone (undecodable, stale, orphan and bad keys).
    ``part``: one process's part of a walk in two (options.cluster then says the mode)."""
    with paused_gc():  # plans allocate a few objects per record and create no cycles
        for sr in stream_records(db, options.cluster, col, options.scope, progress, part):
            if sr.undecodable:
                col.skip("undecodable", (sr.live.key.namespace, sr.live.key.user_key), sr.undecodable)
            if not sr.count:
                continue
            col.with_records += 1
            sp = plan_stream(sr, source, target, options)
            if sp is None:
                col.in_target += 1
            else:
                yield sp


def build_plan(
    db: Database,
    head: PlanHead,
    options: PlanOptions,
    limit: int,
    on_stream: OnStream | None = None,
    progress: Progress | None = None,
    second: SecondPart | None = None,
) -> Plan:
    """The plan's summary (:class:`~kvfix.migrations.tally.PlanTally`); ``on_stream`` sees each
    stream's plan on the way (a plan file, JSON), none is kept.  With ``second``, many
    streams are planned in two processes (kvfix.migrations.plan_parts)."""
    col = Collected(False, 0)
    tally = PlanTally(limit)
    use_cluster, _ = choose_cluster(db, options.cluster)
    options = replace(options, cluster=use_cluster)
    ks = surveyed(db, use_cluster, progress or Progress())
    half = shard_point(ks, None) if second is not None and options.scope.everything and not db.salvage else None
    if half is None or second is None:
        plan_part(db, head, options, col, tally, on_stream, progress, WalkPart(ks))
    else:
        from kvfix.migrations.plan_parts import plan_in_two

        plan_in_two(db, head, options, (col, tally, on_stream), progress, ks, half, second)
    walked = {
        "streams": col.live,
        "streams_in_target_layout": col.in_target,
        "streams_without_groups": col.live - col.with_records,
    }
    skipped = _skipped(col)
    total = len(skipped) + col.unnamed
    return tally.plan(head, use_cluster, walked, tuple(skipped), total, db.state(), options.scope)


def plan_part(
    db: Database,
    head: PlanHead,
    options: PlanOptions,
    col: Collected,
    tally: PlanTally,
    on_stream: OnStream | None,
    progress: Progress | None,
    part: WalkPart,
) -> None:
    """One process's part of the planning walk (or all of it) into ``col`` and ``tally``."""
    for sp in stream_plans(db, head.source, head.target, options, col, progress, part):
        tally.add(sp)
        if on_stream is not None:
            on_stream(sp)


def _skipped(col: Collected) -> list[Skipped]:
    """What the plan leaves alone, stream by stream: undecodable records, then stale, orphan, bad keys."""
    skipped = [
        Skipped(*ident, "records that decode as nothing known; left as they are", n)
        for ident, n in sorted(col.undecodable.items())
    ]
    for ident, n in sorted(col.stale.items()):
        skipped.append(Skipped(*ident, "records of dead versions of this key (stale, left for compaction)", n))
    for ident, n in sorted(col.orphan.items()):
        skipped.append(Skipped(*ident, "records of a key with no stream metadata (orphans, left alone)", n))
    if col.bad_keys:
        skipped.append(Skipped(None, None, "stream column family keys that are not internal keys", col.bad_keys))
    return skipped
