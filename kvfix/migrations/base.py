"""What a migration is (Alembic-like: an id, a description, plan / apply / verify / revert).

A plan is a frozen value: computed read-only, printed by ``--dry-run``, re-checked under
the write lock (unchanged database state token, or computed again and compared) before
anything is written, then executed stream by stream (one atomic, synced WriteBatch
each), then verified on a read-only open (kvfix.migrations.run).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Literal, NamedTuple

from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.codec.ints import read_u64
from kvfix.codec.stream import Layout, consumer_name
from kvfix.store.database import Database, Op
from kvfix.textsafe import show

OnConflict = Literal["refuse", "keep-prefixed", "keep-legacy"]
ON_CONFLICT_CHOICES = ("refuse", "keep-prefixed", "keep-legacy")


@dataclass(frozen=True)
class PlanOptions:
    on_conflict: OnConflict = "refuse"
    cluster: bool | None = None
    #: Only these streams (--namespace, --stream, --match); everything by default.
    scope: Scope = EVERYTHING


class Rewrite(NamedTuple):
    """Move one record: put ``value`` under new_key, delete old_key. The value is not touched.

    (A named tuple, not a dataclass: a plan holds one per record, and tuples build 4x
    faster.  It holds the stream's prefix, one object per stream, and the two subkeys:
    the full keys and the detail for people are derived when asked for, so a plan of
    millions of PEL records holds each record's bytes once.  The digest is for people
    and is taken when shown; verification compares the bytes themselves.)
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
        return f"pending {read_u64(sub, len(sub) - 16)}-{read_u64(sub, len(sub) - 8)}"
    if role == "consumer":  # the sized consumer name follows the sized group name
        layout: Layout = "legacy" if kind.startswith("legacy") else "prefixed"
        return f"consumer {show(consumer_name(sub, layout, group))}"
    return "group"


@dataclass(frozen=True)
class Drop:
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
    rewrites: tuple[Rewrite, ...]
    drops: tuple[Drop, ...]
    metadata: MetadataChange | None
    conflicts: tuple[Conflict, ...]
    notes: tuple[str, ...]
    #: (subkey, value) of every group record the stream must hold afterwards (the values
    #: are the plan's and the database's own bytes objects, not copies).
    expected: tuple[tuple[bytes, bytes], ...]

    @property
    def blocked(self) -> bool:
        return any(c.resolution is None for c in self.conflicts)

    def parts(self, limit: int) -> list[list[Op]]:
        """The stream's writes as atomic parts of about ``limit`` ops (one part when it fits).

        A stream too large for one batch moves record by record (each put with the delete
        of its old key), the group records and the metadata in the last part, and a
        conflict's losing group record last among the drops.  So after a crash between
        parts, the group record still sits in the source layout, and a re-run can tell its
        own half-finished move (target records without a target group record) from a
        group that really exists twice (see kvfix.migrations.layout.plan_stream).
        """
        ops = self.ops()
        if len(ops) <= limit:
            return [ops]
        drops = sorted(self.drops, key=lambda d: d.kind.endswith("_group"))
        out = _chunks([("stream", d.key, None) for d in drops], limit)
        pairs = max(1, limit // 2)
        records = [r for r in self.rewrites if not r.kind.endswith("_group")]
        for i in range(0, len(records), pairs):
            moved = records[i : i + pairs]
            out.append(
                [*(("stream", r.new_key, r.value) for r in moved), *(("stream", r.old_key, None) for r in moved)]
            )
        last: list[Op] = []
        for r in self.rewrites:
            if r.kind.endswith("_group"):
                last += [("stream", r.new_key, r.value), ("stream", r.old_key, None)]
        if self.metadata is not None:
            last.append(("metadata", self.metadata.key, self.metadata.new))
        return [*out, last] if last else out

    def ops(self) -> list[Op]:
        """The stream's single batch: drops, puts, deletes of the old keys, metadata."""
        out: list[Op] = [("stream", d.key, None) for d in self.drops]
        out += [("stream", r.new_key, r.value) for r in self.rewrites]
        out += [("stream", r.old_key, None) for r in self.rewrites]
        if self.metadata is not None:
            out.append(("metadata", self.metadata.key, self.metadata.new))
        return out


def _chunks(ops: list[Op], limit: int) -> list[list[Op]]:
    return [ops[i : i + limit] for i in range(0, len(ops), max(1, limit))]


class Split(NamedTuple):
    """A unit written as several atomic parts, in order; done when its last part is."""

    parts: list[list[Op]]


#: Ops of one stream in one atomic part when the stream is too large for one batch
#: (``KVFIX_PART_RECORDS`` for tests of split streams).
PART_RECORDS = int(os.environ.get("KVFIX_PART_RECORDS", "50000"))


@dataclass(frozen=True)
class Skipped:
    namespace: bytes | None
    key: bytes | None
    reason: str
    records: int = 0


class StreamLine(NamedTuple):
    """One stream of a plan as its summary table shows it (a plan keeps the worst few, not all)."""

    namespace: bytes
    key: bytes
    rewrites: int
    by_kind: str
    drops: int
    group_number: str
    conflicts: str
    notes: str


class ConflictLine(NamedTuple):
    namespace: bytes
    key: bytes
    conflict: Conflict


@dataclass(frozen=True)
class Plan:
    """What a migration will do, summarised: counts, the worst streams, the first conflicts.

    It holds no stream's records: the writes are planned again, stream by stream, when
    they are written (:meth:`Migration.stream_plans`), and ``writes_sha256`` (every op's
    bytes, in order) says whether that gives the same writes.  ``top``, ``conflicts`` and
    ``skipped`` are bounded (worst first, up to the limit the plan was made with).
    """

    migration_id: str
    source: Layout
    target: Layout
    on_conflict: OnConflict
    cluster: bool
    counts: dict[str, int]
    writes_sha256: str
    top: tuple[StreamLine, ...] = ()
    conflicts: tuple[ConflictLine, ...] = ()
    #: "stream/group" of the first refused conflicts (the refusal names them).
    refused: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    #: Database.state() when planned; not part of what the plan does (not compared).
    db_state: tuple[str, int] | None = field(default=None, compare=False)
    #: The streams planned for; verification reads the same ones.
    scope: Scope = EVERYTHING

    @property
    def blocked(self) -> bool:
        return self.counts["unresolved_conflicts"] > 0

    @property
    def empty(self) -> bool:
        return self.counts["streams_to_migrate"] == 0

    def summary(self) -> dict[str, int]:
        return dict(self.counts)


def hash_ops(h: Any, ops: Iterable[Op]) -> None:
    """Feed every op's bytes, unambiguously, to a hashlib object (a plan's ``writes_sha256``)."""
    for cf, key, value in ops:
        tail = b"-" if value is None else b"%d:%s" % (len(value), value)
        h.update(b"%s:%d:%s%s" % (cf.encode(), len(key), key, tail))


@dataclass
class Written:
    """What a run's writes were planned to leave, a few integers per stream (never the records),
    and the digest of every op produced; ``done`` units of them were written (None: all)."""

    width: int
    ints: array[int] = field(default_factory=lambda: array("Q"))
    sha: Any = field(default_factory=sha256)
    done: int | None = None

    def add(self, *values: int) -> None:
        assert len(values) == self.width
        self.ints.extend(values)

    @property
    def streams(self) -> int:
        return len(self.ints) // self.width

    def written(self) -> Iterator[tuple[int, ...]]:
        """The entries of the streams written, in order."""
        n = self.streams if self.done is None else min(self.done, self.streams)
        w = self.width
        for i in range(n):
            yield tuple(self.ints[i * w : (i + 1) * w])


@dataclass(frozen=True)
class Status:
    """Whether a migration applies to a database (for ``--list``)."""

    applies: bool
    streams: int  # live streams with records in the migration's source layout
    detail: str


class Migration(ABC):
    id: str
    description: str
    source: Layout
    target: Layout

    @abstractmethod
    def status(self, db: Database, cluster: bool | None = None) -> Status: ...

    @abstractmethod
    def plan(
        self, db: Database, options: PlanOptions, limit: int = 20, on_stream: Callable[[StreamPlan], None] | None = None
    ) -> Plan:
        """The summary of :meth:`stream_plans` (``limit``: worst streams and conflicts kept);
        ``on_stream`` sees each stream's plan on the way."""

    @abstractmethod
    def stream_plans(self, db: Database, options: PlanOptions) -> Iterator[StreamPlan]:
        """Each stream's plan, in walk order, one at a time (what :meth:`plan` summarises)."""

    @abstractmethod
    def written(self) -> Written:
        """An empty record of a run's writes, for :meth:`units` to fill and :meth:`verify` to read."""

    @abstractmethod
    def units(self, db: Database, options: PlanOptions, written: Written) -> Iterator[list[Op] | Split]:
        """The writes, planned again from ``db`` as they are written: one unit per stream."""

    @abstractmethod
    def verify(self, db: Database, plan: Plan, written: Written | None = None) -> list[str]:
        """Problems found re-reading the database (empty list = verified); ``written``: what a run
        wrote (None: nothing written, only that no live stream is left in the source layout)."""

    @abstractmethod
    def revert(self) -> Migration:
        """The inverse migration (target -> source)."""
