"""``check --repair`` as the executor runs it (kvfix.migrations.run.Job): plan, units, verify."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kvfix.analysis.check import CheckReport, check_database
from kvfix.analysis.invariants import REPAIRABLE
from kvfix.analysis.repair_plan import StreamRepair, plan_stream_repair
from kvfix.progress import Progress
from kvfix.store.database import Database, Op


def all_repair_plans(report: CheckReport) -> list[StreamRepair]:
    """Every stream's repair (writes, and what cannot be repaired), in the report's order."""
    return [plan_stream_repair(sc) for sc in report.streams]


def repair_plans(report: CheckReport) -> list[StreamRepair]:
    """The streams that need writes."""
    return [p for p in all_repair_plans(report) if p.puts]


@dataclass
class RepairJob:
    plans: list[StreamRepair]
    cluster: bool | None
    #: The check taken by the verification (what the report shows afterwards).
    after: CheckReport | None = None

    def unchanged(self, db: Database) -> bool:
        return [p.puts for p in repair_plans(check_database(db, cluster=self.cluster))] == [p.puts for p in self.plans]

    def total(self) -> int:
        return len(self.plans)

    def units(self, db: Database) -> Sequence[Sequence[Op]]:
        return [[(w.cf, w.key, w.value) for w in p.puts] for p in self.plans]

    def verify(self, db: Database, done: int | None, progress: Progress) -> list[str]:
        """Every repairable finding of the written streams must be gone."""
        self.after = after = check_database(db, cluster=self.cluster)
        written = {(p.namespace, p.key) for p in self.plans[: len(self.plans) if done is None else done]}
        left = [f for f in after.invariant_findings() if f.code in REPAIRABLE and (f.namespace, f.key) in written]
        return [f"{len(left)} repairable findings remain ({left[0].message})"] if left else []
