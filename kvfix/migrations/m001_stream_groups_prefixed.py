"""001: consumer-group records from the legacy layout to the prefix-delimited one (and back).

Upgrade (legacy -> prefixed) is for data written by Kvrocks development builds between
2023-09 and 2024-07, before starting Kvrocks >= 2.10.1 on it.  Its revert (prefixed ->
legacy) is for rolling a 2.10+ data directory with groups back to a 2.8/2.9 release,
which aborts on prefixed records.  Values never change; only subkeys (and the stream
metadata's group_number, see kvfix.migrations.layout) do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kvfix.codec.stream import LEGACY, PREFIXED, Layout
from kvfix.migrations import layout, layout_records
from kvfix.migrations.base import Migration, Plan, PlanOptions, Split, Status, Unit, Written
from kvfix.migrations.layout_plan import OnStream
from kvfix.migrations.layout_verify import WIDTH, expectation
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.migrations.tally import PlanHead
from kvfix.progress import Progress
from kvfix.store.database import Database


class _LayoutMigration(Migration):
    def status(self, db: Database, cluster: bool | None = None) -> Status:
        counts = layout.live_layouts(db, cluster)
        n = counts[self.source] + counts["mixed"]
        detail = ", ".join(f"{counts[k]} {k}" for k in ("legacy", "prefixed", "mixed", "none")) + " streams"
        return Status(n > 0, n, detail)

    def stream_plans(self, db: Database, options: PlanOptions) -> Iterator[StreamPlan]:
        return layout.stream_plans(db, self.source, self.target, options, layout.Collected(False, 0))

    def plan(
        self,
        db: Database,
        options: PlanOptions,
        limit: int = 20,
        on_stream: OnStream | None = None,
        progress: Progress | None = None,
        second: Any = None,
    ) -> Plan:
        head = PlanHead(self.id, self.source, self.target, options.on_conflict)
        return layout.build_plan(db, head, options, limit, on_stream, progress, second)

    def written(self) -> Written:
        return Written(WIDTH)

    def unit(self, sp: StreamPlan) -> Unit:
        limit = layout_records.PART_RECORDS
        ops = sp.ops() if sp.op_count <= limit else Split(sp.parts(limit))
        return Unit(sp.fingerprint(), expectation(sp), ops)

    def verify(
        self, db: Database, plan: Plan, written: Written | None = None, progress: Progress | None = None
    ) -> list[str]:
        return layout.verify_plan(db, plan, written, progress)


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
