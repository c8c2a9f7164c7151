"""001: consumer-group records from the legacy layout to the prefix-delimited one (and back).

Upgrade (legacy -> prefixed) is for data written by Kvrocks development builds between
2023-09 and 2024-07, before starting Kvrocks >= 2.10.1 on it.  Its revert (prefixed ->
legacy) is for rolling a 2.10+ data directory with groups back to a 2.8/2.9 release,
which aborts on prefixed records.  Values never change; only subkeys (and the stream
metadata's group_number, see kvfix.migrations.layout) do.
"""

from __future__ import annotations

from collections.abc import Sequence

from kvfix.codec.stream import LEGACY, PREFIXED, Layout
from kvfix.migrations import layout
from kvfix.migrations.base import Migration, Plan, PlanOptions, Split, Status
from kvfix.store.database import Database, Op


class _LayoutMigration(Migration):
    def status(self, db: Database, cluster: bool | None = None) -> Status:
        counts = layout.live_layouts(db, cluster)
        n = counts[self.source] + counts["mixed"]
        detail = ", ".join(f"{counts[k]} {k}" for k in ("legacy", "prefixed", "mixed", "none")) + " streams"
        return Status(n > 0, n, detail)

    def plan(self, db: Database, options: PlanOptions) -> Plan:
        return layout.build_plan(db, self.id, self.source, self.target, options)

    def units(self, plan: Plan) -> Sequence[Sequence[Op] | Split]:
        if plan.migration_id != self.id:
            raise ValueError(f"plan of {plan.migration_id} given to {self.id}")
        return layout.StreamOps(plan.streams)

    def verify(self, db: Database, plan: Plan, streams_done: int | None = None) -> list[str]:
        return layout.verify_plan(db, plan, streams_done)


class StreamGroupsPrefixed(_LayoutMigration):
    id = "001_stream_groups_prefixed"
    description = "stream consumer-group records: legacy layout -> prefix-delimited layout (Kvrocks >= 2.10.1)"
    source: Layout = LEGACY
    target: Layout = PREFIXED

    def revert(self) -> Migration:
        return StreamGroupsLegacy()


class StreamGroupsLegacy(_LayoutMigration):
    id = "001_stream_groups_prefixed:revert"
    description = (
        "stream consumer-group records: prefix-delimited layout -> legacy layout (roll back to Kvrocks 2.8/2.9)"
    )
    source: Layout = PREFIXED
    target: Layout = LEGACY

    def revert(self) -> Migration:
        return StreamGroupsPrefixed()
