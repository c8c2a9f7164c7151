"""What a migration is (Alembic-like: an id, a description, plan / apply / verify / revert).

A plan is a frozen, bounded summary: computed read-only, printed by ``--dry-run``,
re-checked under the write lock (unchanged database state token, or computed again and
compared) before anything is written; its writes are then made stream by stream, whole
streams in synced batches, and verified on a read-only open (kvfix.migrations.run).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Literal, NamedTuple

from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.codec.stream import Layout
from kvfix.migrations.stream_plan import Conflict, StreamPlan
from kvfix.progress import Progress
from kvfix.store.database import Database, Op

OnConflict = Literal["refuse", "keep-prefixed", "keep-legacy"]
ON_CONFLICT_CHOICES = ("refuse", "keep-prefixed", "keep-legacy")


@dataclass(frozen=True)
class PlanOptions:
    on_conflict: OnConflict = "refuse"
    cluster: bool | None = None
    #: Only these streams (--namespace, --stream, --match); everything by default.
    scope: Scope = EVERYTHING


class Split(NamedTuple):
    """A unit written as several atomic parts, in order; done when its last part is."""

    parts: Iterable[list[Op]]


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

    @property
    def streams_done(self) -> int:
        """How many of the streams were written (all of them, unless the run stopped)."""
        return self.streams if self.done is None else min(self.done, self.streams)

    def written(self) -> Iterator[tuple[int, ...]]:
        """The entries of the streams written, in order."""
        n = self.streams_done
        w = self.width
        for i in range(n):
            yield tuple(self.ints[i * w : (i + 1) * w])


class Unit(NamedTuple):
    """One stream's writes: what the plan's digest takes, what verification compares, the ops."""

    fingerprint: bytes
    expectation: tuple[int, ...]
    ops: list[Op] | Split


def took(written: Written, unit: Unit) -> list[Op] | Split:
    """The unit's ops, its fingerprint and expectation recorded in ``written`` (as it is written)."""
    written.add(*unit.expectation)
    written.sha.update(unit.fingerprint)
    return unit.ops


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
        self,
        db: Database,
        options: PlanOptions,
        limit: int = 20,
        on_stream: Callable[[StreamPlan], None] | None = None,
        progress: Progress | None = None,
        second: Any = None,
    ) -> Plan:
        """The summary of :meth:`stream_plans` (``limit``: worst streams and conflicts kept);
        ``on_stream`` sees each stream's plan on the way; ``second``: a
        :class:`~kvfix.migrations.plan_parts.SecondPart`, to plan many streams in two processes."""

    @abstractmethod
    def stream_plans(self, db: Database, options: PlanOptions) -> Iterator[StreamPlan]:
        """Each stream's plan, in walk order, one at a time (what :meth:`plan` summarises)."""

    @abstractmethod
    def written(self) -> Written:
        """An empty record of a run's writes, for :meth:`units` to fill and :meth:`verify` to read."""

    @abstractmethod
    def unit(self, sp: StreamPlan) -> Unit:
        """One stream's writes (its ops read through ``sp``'s records as of this call)."""

    def units(self, db: Database, options: PlanOptions, written: Written) -> Iterator[list[Op] | Split]:
        """The writes, one unit per stream, planned again from ``db`` as they are written."""
        for sp in self.stream_plans(db, options):
            yield took(written, self.unit(sp))

    @abstractmethod
    def verify(
        self, db: Database, plan: Plan, written: Written | None = None, progress: Progress | None = None
    ) -> list[str]:
        """Problems found re-reading the database (empty list = verified); ``written``: what a run
        wrote (None: nothing written, only that no live stream is left in the source layout)."""

    @abstractmethod
    def revert(self) -> Migration:
        """The inverse migration (target -> source)."""
