"""Planning m001 stream by stream: which group records move, which are dropped, and why.

A group found in one layout moves; a group in both is a conflict, resolved by
``--on-conflict`` or refused, unless its records are identical or are a move an earlier
run left part done.  Each stream's plan also says what its group records must be
afterwards (``StreamPlan.expected``), which is what verification compares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from kvfix.analysis.keyspace import now_ms
from kvfix.analysis.walk import paused_gc
from kvfix.codec.errors import CodecError
from kvfix.codec.metadata import decode_metadata
from kvfix.codec.stream import (
    KIND_LAYOUT,
    KIND_VALUE,
    ConsumerKey,
    GroupKey,
    GroupValue,
    Layout,
    PelKey,
    encode_subkey,
    relocated_subkey,
    with_layout,
)
from kvfix.migrations.base import (
    PART_RECORDS,
    Conflict,
    Drop,
    MetadataChange,
    Plan,
    PlanOptions,
    Rewrite,
    Skipped,
    Split,
    StreamPlan,
    describe,
    hash_ops,
)
from kvfix.migrations.layout_records import GROUP_KINDS, Collected, GroupRecord, StreamRecords, stream_records
from kvfix.migrations.tally import PlanHead, PlanTally
from kvfix.store.database import Database, Op
from kvfix.textsafe import show

OnStream = Callable[[StreamPlan], None]

_GROUP_FIELDS = ("last_delivered_id", "pending_number", "consumer_number", "entries_read", "lag")


def _differences(src: list[GroupRecord], tgt: list[GroupRecord], source: Layout, target: Layout) -> tuple[str, ...]:
    """What differs between a group's records in the two layouts, for people."""
    diffs = _group_record_differences(src, tgt, source, target)

    def names(rs: list[GroupRecord]) -> list[str]:
        return sorted(show(r.key.consumer) for r in rs if isinstance(r.key, ConsumerKey))

    def pel(rs: list[GroupRecord]) -> list[str]:
        return sorted(str(r.key.entry_id) for r in rs if isinstance(r.key, PelKey))

    for label, fn in (("consumers", names), ("pending entries", pel)):
        a, b = fn(src), fn(tgt)
        if a != b:
            diffs.append(f"{label}: {source}=[{', '.join(a)}] {target}=[{', '.join(b)}]")
    mapped = {encode_subkey(with_layout(r.key, target)): r.value for r in src}
    own = {r.sub: r.value for r in tgt}
    changed = sum(1 for k in mapped.keys() & own.keys() if mapped[k] != own[k])
    if changed and not diffs:
        diffs.append(f"{changed} records with the same key differ in value")
    return tuple(diffs)


def _group_record_differences(
    src: list[GroupRecord], tgt: list[GroupRecord], source: Layout, target: Layout
) -> list[str]:
    """The fields of the group record proper that differ, or that only one side has one."""
    diffs: list[str] = []
    sg = next((r.decoded for r in src if isinstance(r.key, GroupKey)), None)
    tg = next((r.decoded for r in tgt if isinstance(r.key, GroupKey)), None)
    if isinstance(sg, GroupValue) and isinstance(tg, GroupValue):
        for name in _GROUP_FIELDS:
            a, b = getattr(sg, name), getattr(tg, name)
            if a != b:
                diffs.append(f"{name}: {source}={a} {target}={b}")
    elif (sg is None) != (tg is None):
        diffs.append(f"group record: {source}={'yes' if sg else 'no'} {target}={'yes' if tg else 'no'}")
    return diffs


def continues_a_move(src: list[GroupRecord], tgt: list[GroupRecord]) -> bool:
    """Whether a group's records in both layouts are a split move that stopped part way.

    A split stream moves its group record last (StreamPlan.parts), and each record's put
    and the delete of its old key are in one batch: so the target side has no group
    record yet, the source side still has it, and no record exists on both sides.  A
    group created again by a server always has its own group record.
    """
    if any(r.kind in GROUP_KINDS for r in tgt) or not any(r.kind in GROUP_KINDS for r in src):
        return False
    moved = {r.sub for r in tgt}
    return not any(relocated_subkey(r.sub, r.kind) in moved for r in src)


@dataclass
class _StreamDraft:
    """One stream's plan while it is made: the writes, conflicts and notes decided so far.

    ``final`` is the target-layout state the plan leaves (subkey -> (value, is a group
    record)): the stream's own target records, less the dropped ones, plus the moved ones.
    """

    prefix: bytes
    final: dict[bytes, tuple[bytes, bool]]
    rewrites: list[Rewrite] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def groups_after(self) -> int:
        return sum(1 for _, is_group in self.final.values() if is_group)

    def expected(self) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(sorted((k, v) for k, (v, _) in self.final.items()))


def plan_stream(
    sr: StreamRecords, source: Layout, target: Layout, options: PlanOptions, meta_raw: bytes
) -> StreamPlan | None:
    """The plan of one stream, None when it holds no group record in the source layout."""
    src, tgt = sr.by_layout(source), sr.by_layout(target)
    if not src:
        return None
    final = {r.sub: (r.value, r.kind in GROUP_KINDS) for r in sr.records if KIND_LAYOUT[r.kind] == target}
    draft = _StreamDraft(sr.prefix, final)
    for group in sorted(src):
        move = src[group]
        if group in tgt and continues_a_move(move, tgt[group]):
            draft.notes.append(
                f"group {show(group)}: finishing a move an earlier kvfix run left part done "
                f"({len(tgt[group])} records already {target})"
            )
        elif group in tgt:
            move = _resolve_conflict(draft, group, move, tgt[group], source, target, options)
        _move_records(draft, group, move)
    draft.notes.extend(_stream_notes(sr))
    meta = _metadata_change(sr, meta_raw, draft.groups_after())
    if isinstance(meta, str):
        draft.notes.append(meta)
        meta = None
    return _stream_plan(sr, draft, meta)


def _resolve_conflict(
    draft: _StreamDraft,
    group: bytes,
    move: list[GroupRecord],
    own: list[GroupRecord],
    source: Layout,
    target: Layout,
    options: PlanOptions,
) -> list[GroupRecord]:
    """Record the conflict of a group in both layouts and drop the losing side's records.

    Returns the source records still to move (none unless the source side wins).
    """
    diffs = _differences(move, own, source, target)
    if not diffs:
        resolution, losers, why = "identical", move, f"duplicate of the identical {target} record"
        move = []
    elif options.on_conflict == f"keep-{target}":
        resolution, losers, why = options.on_conflict, move, f"group in both layouts; --on-conflict keep-{target}"
        move = []
    elif options.on_conflict == f"keep-{source}":
        resolution, losers, why = options.on_conflict, own, f"group in both layouts; --on-conflict keep-{source}"
    else:
        resolution, losers, why = None, [], ""
        move = []
    draft.conflicts.append(Conflict(group, diffs, resolution))
    for r in losers:
        kind = KIND_VALUE[r.kind]
        draft.drops.append(
            Drop(kind, group, describe(kind, group, r.sub), draft.prefix + r.sub, r.value_sha256, len(r.value), why)
        )
        if KIND_LAYOUT[r.kind] == target:
            draft.final.pop(r.sub, None)
    return move


def _move_records(draft: _StreamDraft, group: bytes, move: list[GroupRecord]) -> None:
    """A rewrite to the other layout for each record of ``move`` (the subkeys sliced, not decoded)."""
    prefix, final = draft.prefix, draft.final
    add = draft.rewrites.append
    for r in move:
        sub, kind, value = r.sub, r.kind, r.value
        new_sub = relocated_subkey(sub, kind)
        add(Rewrite(KIND_VALUE[kind], group, prefix, sub, new_sub, value))
        final[new_sub] = (value, kind in GROUP_KINDS)


def _stream_notes(sr: StreamRecords) -> list[str]:
    """What people should know about a stream whose records move anyway."""
    notes: list[str] = []
    if sr.ambiguous:
        notes.append(f"{len(sr.ambiguous)} records also fit another reading (empty names?); moved as group records")
    if sr.live.metadata.is_expired(now_ms()):
        notes.append("stream metadata has expired; its records are migrated anyway")
    return notes


def _stream_plan(sr: StreamRecords, draft: _StreamDraft, meta: MetadataChange | None) -> StreamPlan:
    live = sr.live
    return StreamPlan(
        live.key.namespace,
        live.key.user_key,
        live.key.slot,
        live.metadata.version or 0,
        sr.prefix,
        tuple(draft.rewrites),
        tuple(draft.drops),
        meta,
        tuple(draft.conflicts),
        tuple(draft.notes),
        draft.expected(),
    )


def _metadata_change(sr: StreamRecords, raw: bytes, groups_after: int) -> MetadataChange | str | None:
    """The metadata with group_number = ``groups_after``; None when it already says so, or
    a note when the metadata can't be rewritten safely (it does not re-encode to ``raw``)."""
    meta = sr.live.metadata
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
    db: Database, source: Layout, target: Layout, options: PlanOptions, col: Collected
) -> Iterator[StreamPlan]:
    """Each stream's plan as soon as its records are read (only one stream's are held);
    ``col`` gets what the walk left alone (undecodable, stale, orphan and bad keys)."""
    with paused_gc():  # plans allocate a few objects per record and create no cycles
        for sr in stream_records(db, options.cluster, col, options.scope):
            if sr.undecodable:
                col.skip("undecodable", (sr.live.key.namespace, sr.live.key.user_key), len(sr.undecodable))
            if not sr.records:
                continue
            col.with_records += 1
            meta_raw = db.get("metadata", sr.live.key.encode()) or b""
            sp = plan_stream(sr, source, target, options, meta_raw)
            if sp is None:
                col.in_target += 1
            else:
                yield sp


def build_plan(
    db: Database, head: PlanHead, options: PlanOptions, limit: int, on_stream: OnStream | None = None
) -> Plan:
    """The plan's summary (:class:`~kvfix.migrations.tally.PlanTally`); ``on_stream`` sees each
    stream's plan on the way (a plan file, JSON), none is kept."""
    col = Collected(False, 0)
    tally = PlanTally(limit)
    for sp in stream_plans(db, head.source, head.target, options, col):
        tally.add(sp)
        if on_stream is not None:
            on_stream(sp)
    walked = {
        "streams": col.live,
        "streams_in_target_layout": col.in_target,
        "streams_without_groups": col.live - col.with_records,
    }
    skipped = _skipped(col)
    total = len(skipped) + col.unnamed
    return tally.plan(head, col.cluster, walked, tuple(skipped), total, db.state(), options.scope)


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


def stream_units(plans: Iterable[StreamPlan], on_plan: OnStream, sha: Any) -> Iterator[list[Op] | Split]:
    """Each stream's writes, built when they are written: one atomic part, or a Split of several
    (``sha`` is fed every op, as :class:`~kvfix.migrations.tally.PlanTally` does)."""
    for sp in plans:
        on_plan(sp)
        parts = sp.parts(PART_RECORDS)
        for part in parts:
            hash_ops(sha, part)
        yield parts[0] if len(parts) == 1 else Split(parts)
