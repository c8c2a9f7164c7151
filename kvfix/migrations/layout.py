"""Moving consumer-group records between the legacy and prefix-delimited layouts.

The migration-agnostic part of m001: collect every live stream's group records (one walk
of the stream column family, skipping entries), plan per stream, apply, verify.

Group number: Kvrocks 2.10.1 counts the groups it created in the stream metadata, the
development build counted the legacy groups it created, so a stream both wrote into
(upgraded-mixed) says 4 for 3 distinct groups.  After a migration the metadata's
group_number is the number of group records the stream holds; it is rewritten only when
it differs (so a consistent legacy stream round-trips byte for byte).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from hashlib import sha256
from typing import overload

from kvfix.analysis.keyspace import LiveStream, choose_cluster, now_ms, survey_keyspace
from kvfix.analysis.walk import BadKey, Garbage, Visit, paused_gc, walk_keyspace
from kvfix.codec.errors import CodecError
from kvfix.codec.metadata import decode_metadata
from kvfix.codec.stream import (
    LEGACY,
    ConsumerKey,
    EntryKey,
    GroupKey,
    GroupRecordKey,
    GroupValue,
    Layout,
    PelKey,
    RecordKind,
    classify,
    encode_subkey,
    group_record_shape,
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
)
from kvfix.store.database import Database, Op
from kvfix.textsafe import show

Ident = tuple[bytes, bytes]
_KIND_VALUE = {k: k.value for k in RecordKind}
_KIND_LAYOUT = {k: k.layout for k in RecordKind}
_KIND_ROLE = {k: k.role for k in RecordKind}
_GROUP_KINDS = frozenset((RecordKind.LEGACY_GROUP, RecordKind.PREFIXED_GROUP))


def sha(value: bytes) -> str:
    return sha256(value).hexdigest()


@dataclass(slots=True)
class GroupRecord:
    """One group record as a migration needs it: bytes, kind, group name, value digest.

    The decoded key and value are built only when asked for (conflicts, details), so
    collecting a record costs a shape check and a digest.
    """

    sub: bytes
    value: bytes
    kind: RecordKind
    group: bytes
    _decoded: tuple[object, object] | None = None

    @property
    def layout(self) -> Layout:
        layout = _KIND_LAYOUT[self.kind]
        assert layout is not None  # a group record's kind always has one
        return layout

    @property
    def value_sha256(self) -> str:
        return sha(self.value)

    @property
    def key(self) -> GroupRecordKey:
        return self._decode()[0]

    @property
    def decoded(self) -> object:
        return self._decode()[1]

    def _decode(self) -> tuple[GroupRecordKey, object]:
        if self._decoded is None:
            c = classify(self.sub, self.value)
            self._decoded = (c.key, c.value)
        return self._decoded  # type: ignore[return-value]


@dataclass
class StreamRecords:
    live: LiveStream
    prefix: bytes
    records: list[GroupRecord] = field(default_factory=list)
    undecodable: list[tuple[bytes, str]] = field(default_factory=list)
    ambiguous: list[bytes] = field(default_factory=list)
    names: dict[bytes, bytes] = field(default_factory=dict)

    def by_layout(self, layout: Layout) -> dict[bytes, list[GroupRecord]]:
        out: dict[bytes, list[GroupRecord]] = defaultdict(list)
        for r in self.records:
            if _KIND_LAYOUT[r.kind] == layout:
                out[r.group].append(r)
        return out


@dataclass
class Collected:
    cluster: bool
    #: How many live streams the walk met.
    live: int
    streams: dict[Ident, StreamRecords] = field(default_factory=dict)
    stale: Counter[Ident] = field(default_factory=Counter)
    orphan: Counter[Ident] = field(default_factory=Counter)
    bad_keys: int = 0


def collect(db: Database, cluster: bool | None) -> Collected:
    """Every live stream's group records in both layouts (entries are sought over, not read)."""
    out = Collected(False, 0)
    for sr in stream_records(db, cluster, out):
        out.streams[(sr.live.key.namespace, sr.live.key.user_key)] = sr
    return out


def stream_records(db: Database, cluster: bool | None, out: Collected) -> Iterator[StreamRecords]:
    """Each live stream's group records, one stream at a time, in key order.

    Only the stream being read is held; ``out`` gets the keyspace and the counts of
    stale, orphan and bad keys (not its ``streams``: that is for the caller to keep).
    """
    current: StreamRecords | None = None
    for sr, chunk, n in _live_chunks(db, cluster, out):
        if sr is not current:
            if current is not None:
                yield current
            current = sr
        _collect_chunk(sr, chunk, n)
    if current is not None:
        yield current


def _live_chunks(
    db: Database, cluster: bool | None, out: Collected
) -> Iterator[tuple[StreamRecords, list[tuple[bytes, bytes]], int]]:
    """(stream, chunk of whole keys and values, prefix length) for each live stream's chunk.

    Every live stream comes first with an empty chunk, then its records' chunks (the fast
    walk of :mod:`kvfix.analysis.walk`, the one scan and check use).  Fills ``out`` with the
    cluster mode, the number of live streams and the records of stale versions, orphans
    and keys that are not internal keys, which it does not yield.
    """
    use_cluster, _ = choose_cluster(db, cluster)
    ks = survey_keyspace(db, use_cluster)
    out.cluster, out.live = use_cluster, ks.streams
    target: StreamRecords | None = None
    n = 0
    with paused_gc():
        for item in walk_keyspace(db, ks, deep=False):
            if isinstance(item, list):
                yield target, item, n  # type: ignore[misc]  # chunks follow their Visit
            elif isinstance(item, Visit):
                target, n = StreamRecords(item.live, item.raw), len(item.raw)
                yield target, [], n
            elif isinstance(item, Garbage):
                garbage = out.stale if item.owner == "stale" else out.orphan
                garbage[(item.prefix.namespace, item.prefix.user_key)] += item.records
            elif isinstance(item, BadKey):
                out.bad_keys += 1


def _collect_chunk(target: StreamRecords, chunk: list[tuple[bytes, bytes]], n: int) -> None:
    records = target.records.append
    name = target.names.setdefault  # one bytes object per group name, not one per record
    for whole, value in chunk:
        sub = whole[n:]
        shape = group_record_shape(sub, value)
        if shape is not None:
            kind, end = shape
            group = sub[8:end] if _KIND_LAYOUT[kind] == LEGACY else sub[17:end]
            records(GroupRecord(sub, value, kind, name(group, group)))
            continue
        c = classify(sub, value)
        key = c.key
        if key is None or c.value is None:
            target.undecodable.append((sub, c.error or "undecodable"))
            continue
        if type(key) is EntryKey:
            continue  # an entry (ms = 2^64-1, or below a small alias): never moved
        if len(c.readings) > 1:
            target.ambiguous.append(sub)
        kind = key.kind
        records(GroupRecord(sub, value, kind, key.group, (key, c.value)))  # type: ignore[union-attr]


def _differences(src: list[GroupRecord], tgt: list[GroupRecord], source: Layout, target: Layout) -> tuple[str, ...]:
    """What differs between a group's records in the two layouts, for people."""
    diffs: list[str] = []
    sg = next((r.decoded for r in src if isinstance(r.key, GroupKey)), None)
    tg = next((r.decoded for r in tgt if isinstance(r.key, GroupKey)), None)
    if isinstance(sg, GroupValue) and isinstance(tg, GroupValue):
        for name in ("last_delivered_id", "pending_number", "consumer_number", "entries_read", "lag"):
            a, b = getattr(sg, name), getattr(tg, name)
            if a != b:
                diffs.append(f"{name}: {source}={a} {target}={b}")
    elif (sg is None) != (tg is None):
        diffs.append(f"group record: {source}={'yes' if sg else 'no'} {target}={'yes' if tg else 'no'}")

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


def continues_a_move(src: list[GroupRecord], tgt: list[GroupRecord]) -> bool:
    """Whether a group's records in both layouts are a split move that stopped part way.

    A split stream moves its group record last (StreamPlan.parts), and each record's put
    and the delete of its old key are in one batch: so the target side has no group
    record yet, the source side still has it, and no record exists on both sides.  A
    group created again by a server always has its own group record.
    """
    if any(r.kind in _GROUP_KINDS for r in tgt) or not any(r.kind in _GROUP_KINDS for r in src):
        return False
    moved = {r.sub for r in tgt}
    return not any(relocated_subkey(r.sub, r.kind) in moved for r in src)


def plan_stream(
    sr: StreamRecords, source: Layout, target: Layout, options: PlanOptions, meta_raw: bytes
) -> StreamPlan | None:
    src, tgt = sr.by_layout(source), sr.by_layout(target)
    if not src:
        return None
    prefix = sr.prefix
    full = prefix.__add__
    rewrites: list[Rewrite] = []
    drops: list[Drop] = []
    conflicts: list[Conflict] = []
    notes: list[str] = []
    final = {r.sub: (r.value, r.kind in _GROUP_KINDS) for r in sr.records if _KIND_LAYOUT[r.kind] == target}
    for group in sorted(src):
        move = src[group]
        if group in tgt and continues_a_move(move, tgt[group]):
            notes.append(
                f"group {show(group)}: finishing a move an earlier kvfix run left part done "
                f"({len(tgt[group])} records already {target})"
            )
        elif group in tgt:
            diffs = _differences(move, tgt[group], source, target)
            if not diffs:
                resolution, losers, why = "identical", move, f"duplicate of the identical {target} record"
                move = []
            elif options.on_conflict == f"keep-{target}":
                resolution, losers, why = (
                    options.on_conflict,
                    move,
                    f"group in both layouts; --on-conflict keep-{target}",
                )
                move = []
            elif options.on_conflict == f"keep-{source}":
                resolution, losers, why = (
                    options.on_conflict,
                    tgt[group],
                    f"group in both layouts; --on-conflict keep-{source}",
                )
            else:
                resolution, losers, why = None, [], ""
                move = []
            conflicts.append(Conflict(group, diffs, resolution))
            for r in losers:
                drops.append(
                    Drop(
                        _KIND_VALUE[r.kind],
                        group,
                        describe(_KIND_VALUE[r.kind], group, r.sub),
                        full(r.sub),
                        r.value_sha256,
                        len(r.value),
                        why,
                    )
                )
                if _KIND_LAYOUT[r.kind] == target:
                    final.pop(r.sub, None)
        add = rewrites.append
        for r in move:
            sub, kind, value = r.sub, r.kind, r.value
            new_sub = relocated_subkey(sub, kind)
            add(Rewrite(_KIND_VALUE[kind], group, prefix, sub, new_sub, value))
            final[new_sub] = (value, kind in _GROUP_KINDS)
    if sr.ambiguous:
        notes.append(f"{len(sr.ambiguous)} records also fit another reading (empty names?); moved as group records")
    if sr.live.metadata.is_expired(now_ms()):
        notes.append("stream metadata has expired; its records are migrated anyway")
    meta = _metadata_change(sr, meta_raw, sum(1 for _, is_group in final.values() if is_group))
    if isinstance(meta, str):
        notes.append(meta)
        meta = None
    expected = tuple(sorted((k, v) for k, (v, _) in final.items()))
    live = sr.live
    return StreamPlan(
        live.key.namespace,
        live.key.user_key,
        live.key.slot,
        live.metadata.version or 0,
        sr.prefix,
        tuple(rewrites),
        tuple(drops),
        meta,
        tuple(conflicts),
        tuple(notes),
        expected,
    )


def _metadata_change(sr: StreamRecords, raw: bytes, groups_after: int) -> MetadataChange | str | None:
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


def build_plan(db: Database, migration_id: str, source: Layout, target: Layout, options: PlanOptions) -> Plan:
    with paused_gc():  # plans allocate a few objects per record and create no cycles
        return _build_plan(db, migration_id, source, target, options)


def _build_plan(db: Database, migration_id: str, source: Layout, target: Layout, options: PlanOptions) -> Plan:
    """Plan each stream as soon as its records are read, so only one stream's records are held."""
    col = Collected(False, 0)
    planned: dict[Ident, StreamPlan] = {}
    undecodable: dict[Ident, int] = {}
    with_records = in_target = 0
    for sr in stream_records(db, options.cluster, col):
        ident = (sr.live.key.namespace, sr.live.key.user_key)
        if sr.undecodable:
            undecodable[ident] = len(sr.undecodable)
        if not sr.records:
            continue
        with_records += 1
        meta_raw = db.get("metadata", sr.live.key.encode()) or b""
        sp = plan_stream(sr, source, target, options, meta_raw)
        if sp is None:
            in_target += 1
        else:
            planned[ident] = sp
    without = col.live - with_records
    streams = [planned[ident] for ident in sorted(planned)]
    skipped = [
        Skipped(*ident, "records that decode as nothing known; left as they are", n)
        for ident, n in sorted(undecodable.items())
    ]
    for ident, n in sorted(col.stale.items()):
        skipped.append(Skipped(*ident, "records of dead versions of this key (stale, left for compaction)", n))
    for ident, n in sorted(col.orphan.items()):
        skipped.append(Skipped(*ident, "records of a key with no stream metadata (orphans, left alone)", n))
    if col.bad_keys:
        skipped.append(Skipped(None, None, "stream column family keys that are not internal keys", col.bad_keys))
    return Plan(
        migration_id,
        source,
        target,
        options.on_conflict,
        col.cluster,
        tuple(streams),
        tuple(skipped),
        col.live,
        in_target,
        without,
        db.state(),
    )


class StreamOps(Sequence[list[Op] | Split]):
    """Each stream's writes, built only when they are written (a plan's ops are never all held)."""

    def __init__(self, streams: tuple[StreamPlan, ...]) -> None:
        self._streams = streams

    def __len__(self) -> int:
        return len(self._streams)

    @overload
    def __getitem__(self, i: int) -> list[Op] | Split: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[list[Op] | Split]: ...
    def __getitem__(self, i: int | slice) -> list[Op] | Split | Sequence[list[Op] | Split]:
        if isinstance(i, slice):
            return StreamOps(self._streams[i])
        parts = self._streams[i].parts(PART_RECORDS)
        return parts[0] if len(parts) == 1 else Split(parts)


def verify_plan(db: Database, plan: Plan, streams_done: int | None = None) -> list[str]:
    """Re-read the group-record regions: each migrated stream holds exactly its planned state.

    Records are compared by subkey and value bytes; only a record the plan does not
    expect is classified (an entry at a small id is fine, a group record is not), so a
    verification costs a read and a comparison per record, and holds one stream's group
    records at a time.  With ``streams_done`` None every live stream is also checked for
    records left in the source layout.
    """
    done = plan.streams[: len(plan.streams) if streams_done is None else streams_done]
    planned = {(sp.namespace, sp.key): sp for sp in done}
    blocked = {(s.namespace, s.key) for s in plan.streams if s.blocked}
    problems: list[str] = []
    checked: set[Ident] = set()

    def check(ident: Ident, n: int, held: dict[bytes, bytes]) -> None:
        sp = planned.get(ident)
        if sp is not None:
            checked.add(ident)
            problems.extend(_stream_problems(db, plan, sp, n, held))
            return
        if streams_done is not None or ident in blocked:
            return
        if any(_group_layout(whole[n:], value) == plan.source for whole, value in held.items()):
            problems.append(f"{show(ident[0])}/{show(ident[1])}: {plan.source} records in a live stream")

    current: Ident | None = None
    held: dict[bytes, bytes] = {}  # whole key -> value, of the current stream
    n = 0
    for sr, chunk, prefix_len in _live_chunks(db, plan.cluster, Collected(False, 0)):
        ident = (sr.live.key.namespace, sr.live.key.user_key)
        if ident != current:  # a stream's records come together, in key order
            if current is not None:
                check(current, n, held)
            current, n, held = ident, prefix_len, {}
        held.update(chunk)
    if current is not None:
        check(current, n, held)
    for ident, sp in planned.items():
        if ident not in checked:  # no group record left at all
            problems.extend(_stream_problems(db, plan, sp, len(sp.prefix), {}))
    return problems


def _stream_problems(db: Database, plan: Plan, sp: StreamPlan, n: int, held: dict[bytes, bytes]) -> list[str]:
    where = f"{show(sp.namespace)}/{show(sp.key)}"
    out: list[str] = []
    prefix = sp.prefix
    expected = {prefix + sub: value for sub, value in sp.expected}
    layouts = [_group_layout(whole[n:], held[whole]) for whole in held.keys() - expected.keys()]
    left = layouts.count(plan.source)
    unplanned = len(layouts) - layouts.count(None)
    if left:
        out.append(f"{where}: {left} {plan.source} records left")
    missing = changed = 0
    for whole, want in expected.items():
        value = held.get(whole)
        if value is None:
            missing += 1
        elif value != want:
            changed += 1
    if missing or changed or unplanned > left:
        out.append(
            f"{where}: group records differ from the plan ({missing} missing, {changed} with another value, "
            f"{unplanned} not planned)"
        )
    if sp.metadata is not None and db.get("metadata", sp.metadata.key) != sp.metadata.new:
        out.append(f"{where}: stream metadata is not what the plan wrote")
    return out


def _group_layout(sub: bytes, value: bytes) -> Layout | None:
    """The layout of a group record, None for an entry or a record that decodes as nothing."""
    c = classify(sub, value)
    if c.key is None or c.value is None:
        return None
    return c.key.kind.layout


def live_layouts(db: Database, cluster: bool | None = None) -> Counter[str]:
    """How many live streams hold group records in legacy, prefixed, both (mixed) or none."""
    col = collect(db, cluster)
    out: Counter[str] = Counter()
    for sr in col.streams.values():
        layouts = {r.layout for r in sr.records}
        out["mixed" if len(layouts) == 2 else layouts.pop() if layouts else "none"] += 1
    return out
