"""A migration's plan summarised while it is made: counts, the worst streams, the first conflicts.

Planning hands each stream's plan here and drops it, so a plan over a million streams
costs a comparison per stream and ``limit`` rows; the digest of every write (in the
order they are written) is what a run compares when it plans again under the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from kvfix.analysis.scope import Scope
from kvfix.bounded import TopRows
from kvfix.codec.stream import Layout
from kvfix.migrations.base import ConflictLine, OnConflict, Plan, Skipped, StreamLine
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.textsafe import label

#: Streams of the refusal message (a run refused for unresolved conflicts names the first few).
REFUSED_NAMED = 5
COUNTS = ("rewrites", "drops", "metadata_updates", "conflicts", "unresolved_conflicts")


def by_kind(sp: StreamPlan) -> str:
    """How many group, consumer and PEL records a stream moves: "1 group, 2 consumer, 40 pel"."""
    counts = sp.roles()
    return ", ".join(f"{counts[k]:,} {k}" for k in ("group", "consumer", "pel") if k in counts) or "-"


def stream_line(sp: StreamPlan) -> StreamLine:
    m = sp.metadata
    return StreamLine(
        sp.namespace,
        sp.key,
        sp.rewrite_count,
        by_kind(sp),
        sp.drop_count,
        "-" if m is None else f"{m.group_number_old} -> {m.group_number_new}",
        ", ".join(f"{label(c.group)}: {c.resolution or 'REFUSED'}" for c in sp.conflicts) or "-",
        "; ".join(sp.notes) or "-",
    )


@dataclass(frozen=True)
class PlanHead:
    """The parts of a plan that do not come from its streams."""

    migration_id: str
    source: Layout
    target: Layout
    on_conflict: OnConflict


class PlanTally:
    """Builds a :class:`~kvfix.migrations.base.Plan` from stream plans offered one by one."""

    def __init__(self, limit: int, base: int = 0) -> None:
        self.limit = limit
        #: Added to each stream's position: a second process's streams sort after ours.
        self.base = base
        self.streams = 0
        self.counts = dict.fromkeys(COUNTS, 0)
        self._top: TopRows[StreamLine] = TopRows(limit)
        self._conflicts: TopRows[ConflictLine] = TopRows(limit)
        self._refused: list[str] = []
        self._sha = sha256()

    def add(self, sp: StreamPlan) -> None:
        i = self.base + self.streams
        self.streams += 1
        c = self.counts
        refused = sum(x.resolution is None for x in sp.conflicts)
        rewrites, drops = sp.rewrite_count, sp.drop_count
        c["rewrites"] += rewrites
        c["drops"] += drops
        c["metadata_updates"] += sp.metadata is not None
        c["conflicts"] += len(sp.conflicts)
        c["unresolved_conflicts"] += refused
        key = (-refused, -len(sp.conflicts), -drops, -rewrites, i)
        self._top.offer(key, lambda: stream_line(sp))
        for j, conflict in enumerate(sp.conflicts):
            self._offer_conflict((conflict.resolution is not None, i, j), ConflictLine(sp.namespace, sp.key, conflict))
            if conflict.resolution is None and len(self._refused) < REFUSED_NAMED:
                self._refused.append(f"{label(sp.key)}/{label(conflict.group)}")
        self._sha.update(sp.fingerprint())

    def __getstate__(self) -> dict[str, object]:
        """A second process's tally travels without its digest (the fingerprints go in a file)."""
        return {**self.__dict__, "_sha": None}

    def digest(self) -> Any:
        """A copy of the digest so far, for a second process's fingerprints to go on with."""
        return self._sha.copy()

    def absorb(self, later: PlanTally, digest: Any) -> None:
        """Take in a second process's tally (its streams after ours) and the digest gone on
        with its streams' fingerprints (:meth:`digest`)."""
        self.streams += later.streams
        for name, n in later.counts.items():
            self.counts[name] += n
        self._top.absorb(later._top)
        self._conflicts.absorb(later._conflicts)
        self._refused.extend(later._refused[: max(0, REFUSED_NAMED - len(self._refused))])
        self._sha = digest

    def _offer_conflict(self, key: tuple[int, ...], line: ConflictLine) -> None:
        self._conflicts.offer(key, lambda: line)

    def plan(
        self,
        head: PlanHead,
        cluster: bool,
        streams: dict[str, int],
        skipped: tuple[Skipped, ...],
        skipped_total: int,
        db_state: tuple[str, int] | None,
        scope: Scope,
    ) -> Plan:
        """The finished plan; ``streams``: the totals that come from the walk, not the plans."""
        counts = {**streams, "streams_to_migrate": self.streams, **self.counts, "skipped": skipped_total}
        return Plan(
            head.migration_id,
            head.source,
            head.target,
            head.on_conflict,
            cluster,
            counts,
            self._sha.hexdigest(),
            tuple(self._top.rows()),
            tuple(self._conflicts.rows()),
            tuple(self._refused),
            skipped,
            db_state,
            scope,
        )
