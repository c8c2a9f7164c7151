"""One stream's migration plan: which groups move or are dropped, and its writes, made when asked.

A plan decides per group and layout (a :class:`~kvfix.migrations.layout_records.Side`)
and holds no record: its rewrites and drops are produced from the stream's records when
they are shown or written (:meth:`StreamPlan.rewrites`, :meth:`StreamPlan.parts`), from
memory for a small stream and read again from the database for a large one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from itertools import chain
from typing import NamedTuple

from kvfix.bounded import chunked
from kvfix.codec.stream import KIND_ROLE, KIND_VALUE, Layout, consumer_name, pel_entry_id_text, relocated_subkey
from kvfix.migrations.layout_records import GroupRecord, Side, StreamRecords
from kvfix.store.database import Op
from kvfix.textsafe import show


class Rewrite(NamedTuple):
    """Move one record: put ``value`` under new_key, delete old_key. The value is not touched.

    It holds the stream's prefix (one object per stream) and the two subkeys: the full
    keys and the detail for people are derived when asked for.
    """

    kind: str  # source record kind, e.g. legacy_pel
    group: bytes
    prefix: bytes  # the stream incarnation's key prefix
    old_sub: bytes
    new_sub: bytes
    value: bytes

    @property
    def old_key(self) -> bytes:
        """Full stream column family key the record leaves."""
        return self.prefix + self.old_sub

    @property
    def new_key(self) -> bytes:
        return self.prefix + self.new_sub

    @property
    def detail(self) -> str:
        """Consumer name or PEL entry id, for people."""
        return describe(self.kind, self.group, self.old_sub)

    @property
    def value_sha256(self) -> str:
        return sha256(self.value).hexdigest()

    @property
    def value_len(self) -> int:
        return len(self.value)


def describe(kind: str, group: bytes, sub: bytes) -> str:
    """A well-formed group record, for people: "group", "consumer NAME" or "pending MS-SEQ"."""
    role = kind.rsplit("_", 1)[-1]
    if role == "pel":  # both layouts end with the entry id
        return f"pending {pel_entry_id_text(sub)}"
    if role == "consumer":  # the sized consumer name follows the sized group name
        layout: Layout = "legacy" if kind.startswith("legacy") else "prefixed"
        return f"consumer {show(consumer_name(sub, layout, group))}"
    return "group"


class Drop(NamedTuple):
    """Delete one record (the losing side of a resolved conflict); the backup keeps it."""

    kind: str
    group: bytes
    detail: str
    key: bytes
    value_sha256: str
    value_len: int
    reason: str


@dataclass(frozen=True)
class Conflict:
    group: bytes
    differences: tuple[str, ...]
    resolution: str | None  # None: refused (blocks the whole run)


@dataclass(frozen=True)
class MetadataChange:
    key: bytes
    old: bytes
    new: bytes
    group_number_old: int | None
    group_number_new: int


@dataclass(frozen=True)
class StreamPlan:
    namespace: bytes
    key: bytes
    slot: int | None
    version: int
    prefix: bytes  # every subkey of this stream incarnation starts with it
    source: Layout
    #: The source-layout sides that move to the target layout.
    moves: tuple[Side, ...]
    #: The sides deleted (the losing side of a resolved conflict), and why.
    dropped: tuple[tuple[Side, str], ...]
    metadata: MetadataChange | None
    conflicts: tuple[Conflict, ...]
    notes: tuple[str, ...]
    #: The target-layout group records the stream holds afterwards: how many, and the sum
    #: of their checksums (kvfix.migrations.layout_records.record_check), for verification.
    records_after: int
    after_check: int
    records: StreamRecords = field(compare=False, repr=False)

    @property
    def blocked(self) -> bool:
        return any(c.resolution is None for c in self.conflicts)

    @property
    def rewrite_count(self) -> int:
        return sum(s.records for s in self.moves)

    @property
    def drop_count(self) -> int:
        return sum(s.records for s, _ in self.dropped)

    def by_group(self) -> list[tuple[bytes, dict[str, int], dict[str, int]]]:
        """(group, rewrites per kind, drops per kind), by group name."""
        groups: dict[bytes, tuple[dict[str, int], dict[str, int]]] = {}
        for side, what in [*((s, 0) for s in self.moves), *((s, 1) for s, _ in self.dropped)]:
            counts = groups.setdefault(side.group, ({}, {}))[what]
            for kind, n in side.kinds.items():
                counts[kind] = counts.get(kind, 0) + n
        return [(g, rw, dr) for g, (rw, dr) in sorted(groups.items())]

    def roles(self) -> dict[str, int]:
        """Records moved per role (group, consumer, pel)."""
        out: dict[str, int] = {}
        for side in self.moves:
            for kind, n in side.kinds.items():
                role = kind.rsplit("_", 1)[-1]
                out[role] = out.get(role, 0) + n
        return out

    def fingerprint(self) -> bytes:
        """What the writes are a function of: the decisions and, per side, its count and keyed
        checksum (the run's key, which its second processes share: the digest of a plan made
        in two processes is the one-process digest)."""
        m = self.metadata
        sides: list[tuple[object, ...]] = [("move", s.group, s.layout, s.records, s.check) for s in self.moves]
        sides += [("drop", s.group, s.layout, s.records, s.check, why) for s, why in self.dropped]
        return repr((self.prefix, None if m is None else (m.key, m.new), sides)).encode()

    def rewrites(self) -> Iterator[Rewrite]:
        """Every record that moves, in key order (the iterator reads the database as of this call)."""
        groups = frozenset(s.group for s in self.moves)
        records = self.records.records(self.source, groups) if groups else iter(())
        prefix = self.prefix
        return (
            Rewrite(KIND_VALUE[r.kind], r.group, prefix, r.sub, relocated_subkey(r.sub, r.kind), r.value)
            for r in records
        )

    def drops(self) -> Iterator[Drop]:
        """Every record that is deleted, side by side (each side's iterator made by this call)."""
        readers = [(self.records.records(s.layout, frozenset((s.group,))), why) for s, why in self.dropped]
        return self._drops(readers)

    def _drops(self, readers: list[tuple[Iterator[GroupRecord], str]]) -> Iterator[Drop]:
        prefix = self.prefix
        for records, why in readers:
            for r in records:
                kind, sub, value = KIND_VALUE[r.kind], r.sub, r.value
                digest = sha256(value).hexdigest()
                yield Drop(kind, r.group, describe(kind, r.group, sub), prefix + sub, digest, len(value), why)

    @property
    def op_count(self) -> int:
        return self.drop_count + 2 * self.rewrite_count + (self.metadata is not None)

    def ops(self) -> list[Op]:
        """The stream's single batch: drops, puts, deletes of the old keys, metadata."""
        out: list[Op] = [("stream", d.key, None) for d in self.drops()]
        moved = list(self.rewrites())
        out += [("stream", r.new_key, r.value) for r in moved]
        out += [("stream", r.prefix + r.old_sub, None) for r in moved]
        if self.metadata is not None:
            out.append(("metadata", self.metadata.key, self.metadata.new))
        return out

    def parts(self, limit: int) -> Iterator[list[Op]]:
        """The stream's writes as atomic parts of about ``limit`` ops (one part when it fits).

        A stream too large for one batch moves record by record (each put with the delete
        of its old key), the group records and the metadata in the last part, and a
        conflict's losing group records last among the drops.  So after a crash between
        parts, the group record still sits in the source layout, and a re-run can tell its
        own half-finished move (target records without a target group record) from a
        group that really exists twice (kvfix.migrations.layout_plan.continues_a_move).
        The records are read through iterators made by this call, before any part is
        written, so writing the parts does not change what is read.
        """
        if self.op_count <= limit:
            return iter([self.ops()])
        return self._split(self.drops(), self.rewrites(), limit)

    def _split(self, drops: Iterator[Drop], rewrites: Iterator[Rewrite], limit: int) -> Iterator[list[Op]]:
        group_drops: list[Op] = []  # few (one per group): after every other drop

        def other_drops() -> Iterator[Op]:
            for d in drops:
                op: Op = ("stream", d.key, None)
                if d.kind.endswith("_group"):
                    group_drops.append(op)
                else:
                    yield op

        yield from chunked(chain(other_drops(), group_drops), max(1, limit))  # chain reads the list when it gets there
        yield from self._moves(rewrites, limit)

    def _moves(self, rewrites: Iterator[Rewrite], limit: int) -> Iterator[list[Op]]:
        last: list[Op] = []

        def records() -> Iterator[Rewrite]:
            for r in rewrites:
                if KIND_ROLE_OF[r.kind] == "group":
                    last.extend((("stream", r.new_key, r.value), ("stream", r.old_key, None)))
                else:
                    yield r

        for batch in chunked(records(), max(1, limit // 2)):
            yield [*(("stream", x.new_key, x.value) for x in batch), *(("stream", x.old_key, None) for x in batch)]
        if self.metadata is not None:
            last.append(("metadata", self.metadata.key, self.metadata.new))
        if last:
            yield last


#: A kind's role by its name ("legacy_pel" -> "pel").
KIND_ROLE_OF = {KIND_VALUE[k]: role for k, role in KIND_ROLE.items()}
