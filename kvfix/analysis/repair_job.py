"""``check --repair`` as the executor runs it (kvfix.migrations.run.Job), never holding a check.

Planning is one streamed check: each stream's repair (:func:`plan_stream_repair`) goes to
a :class:`RepairSpool` (a temporary file, in walk order) and to a bounded
:class:`RepairSummary`; the writes and the verification read the spool back one stream at
a time.  A database with a repair for every one of a million streams costs its repairs'
bytes on disk, not in memory.
"""

from __future__ import annotations

import hashlib
import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from kvfix.analysis.check import CheckReport, StreamCheck, check_streams
from kvfix.analysis.invariants import REPAIRABLE
from kvfix.analysis.model import ScanReport
from kvfix.analysis.repair_plan import StreamRepair, plan_stream_repair
from kvfix.migrations import planfile
from kvfix.progress import Progress
from kvfix.store.database import Database, Op
from kvfix.textsafe import show


class RepairSpool:
    """The streams' repairs (those with writes or with something not repairable), in walk
    order, pickled into a temporary file; read back as often as needed."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.TemporaryFile(prefix="kvfix-repair-")  # noqa: SIM115  (closed by close)
        #: Streams with writes, and their writes.
        self.streams = 0
        self.changes = 0

    def add(self, p: StreamRepair) -> None:
        if not (p.puts or p.unrepairable):
            return
        self._file.seek(0, 2)
        pickle.dump(p, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        if p.puts:
            self.streams += 1
            self.changes += len(p.puts)

    def __iter__(self) -> Iterator[StreamRepair]:
        """Every spooled repair in order (one read at a time: do not interleave two)."""
        f = self._file
        f.seek(0)
        while True:
            try:
                p = pickle.load(f)  # our own temporary file
            except EOFError:
                return
            yield p

    def writing(self) -> Iterator[StreamRepair]:
        return (p for p in self if p.puts)

    def close(self) -> None:
        self._file.close()


@dataclass
class RepairSummary:
    """A repair plan summed up for people: totals, the first ``limit`` rows (None: all)."""

    limit: int | None
    streams: int = 0
    changes: int = 0
    change_rows: list[list[object]] = field(default_factory=list)
    problems: int = 0
    problem_rows: list[list[object]] = field(default_factory=list)

    def add(self, p: StreamRepair) -> None:
        if p.puts:
            self.streams += 1
            self.changes += len(p.puts)
        for w in p.puts:
            if self.limit is None or len(self.change_rows) < self.limit:
                self.change_rows.append([show(p.namespace), show(p.key), w.what])
        for u in p.unrepairable:
            self.problems += 1
            if self.limit is None or len(self.problem_rows) < self.limit:
                self.problem_rows.append([show(p.namespace), show(p.key), u])


class PlanDigest:
    """The SHA-256 of a repair plan's lines (as a plan file holds them), taken as they come."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def add(self, p: StreamRepair) -> None:
        for line in planfile.repair_lines([p]):
            self._sha.update(planfile.encode_line(line))

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def plan_digest(db: Database, cluster: bool | None) -> str:
    """The digest of the repair plan the database gives now (one streamed check)."""
    digest = PlanDigest()
    check_streams(db, lambda sc: digest.add(plan_stream_repair(sc)), cluster=cluster, keep_findings=0)
    return digest.hexdigest()


@dataclass
class RepairJob:
    """A reviewed repair plan (spooled) as the executor runs it.

    ``unchanged``: the database's state token as planned, else the same plan digest from
    a new check.  ``verify`` checks again, streamed, handing each stream to ``on_after``
    (the report's renderers) and keeping the check's totals in ``after``.
    """

    spool: RepairSpool
    cluster: bool | None
    digest: str
    planned_state: tuple[str, int] | None = None
    on_after: Callable[[StreamCheck], None] | None = None
    on_after_begin: Callable[[ScanReport], None] | None = None
    #: Findings the after-check's digest keeps (None: all), as the report shows them.
    keep_findings: int | None = 0
    after: CheckReport | None = None

    def unchanged(self, db: Database) -> bool:
        if self.planned_state is not None and db.state() == self.planned_state:
            return True
        return plan_digest(db, self.cluster) == self.digest

    def total(self) -> int:
        return self.spool.streams

    def units(self, db: Database) -> Iterator[list[Op]]:
        return ([(w.cf, w.key, w.value) for w in p.puts] for p in self.spool.writing())

    def verify(self, db: Database, done: int | None, progress: Progress) -> list[str]:
        """Every repairable finding of the written streams must be gone (the spool and the
        check come in the same order: metadata key order)."""
        written = _Written(self.spool.writing(), self.spool.streams if done is None else done)

        def on_check(sc: StreamCheck) -> None:
            written.check(sc)
            if self.on_after is not None:
                self.on_after(sc)

        self.after = check_streams(
            db,
            on_check,
            cluster=self.cluster,
            progress=progress,
            keep_findings=self.keep_findings,
            on_begin=self.on_after_begin,
        )
        return written.problems()


class _Written:
    """The first ``limit`` spooled repairs, met again one by one as the check comes to their streams."""

    def __init__(self, planned: Iterator[StreamRepair], limit: int) -> None:
        self.planned, self.limit = planned, limit
        self.next = next(planned, None) if limit else None
        self.seen = self.left = 0
        self.first = ""

    def check(self, sc: StreamCheck) -> None:
        p, rep = self.next, sc.report
        if p is None or (p.namespace, p.key) != (rep.namespace, rep.key):
            return
        left = [f for f in sc.findings if f.code in REPAIRABLE]
        if left and not self.left:
            self.first = left[0].message
        self.left += len(left)
        self.seen += 1
        self.next = next(self.planned, None) if self.seen < self.limit else None

    def problems(self) -> list[str]:
        out = []
        if self.left:
            out.append(f"{self.left} repairable findings remain ({self.first})")
        if self.seen < self.limit:
            out.append(f"{self.limit - self.seen} written streams were not found again by the check")
        return out
