"""Planning many streams in two processes: a second one plans the streams past a cut point.

As scan and check split a walk (kvfix.analysis.sharded), so does migrate's planning walk,
unless a plan file or --records rows are written (those stay in one process).  The second
process (``python -m kvfix.analysis.scanworker``, a fresh interpreter opening the database
read-only on its own) plans its streams into a tally and a Collected of its own, writes
each stream's fingerprint to a compressed file (the plan's digest is of every
fingerprint, in walk order, so ours goes on with its), its streams' JSON (with
--format json) to a spool of its own, and in a real run spools its writes to a file of
its own (kvfix.migrations.spool), replayed after ours.  Its streams all sort after ours,
so the plan and the document are the one process's; if it fails, this process plans its
part too.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kvfix.analysis.keyspace import Keyspace
from kvfix.analysis.sharded import counter_tick, launch, remembered, start_worker, wait_worker, with_counter
from kvfix.analysis.walk import Half
from kvfix.migrations import layout_records
from kvfix.migrations.base import Migration, PlanOptions
from kvfix.migrations.layout_plan import OnStream, plan_part, stream_plans
from kvfix.migrations.layout_records import Collected, WalkPart
from kvfix.migrations.spool import WriteSpool
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.migrations.tally import PlanHead, PlanTally
from kvfix.progress import Progress, Ticker
from kvfix.render.scan_report import FORK_BASE
from kvfix.store.database import Database

_FP_CHUNK = 1 << 20


class PlanSink(Protocol):
    """What a run shows of each stream's plan (its JSON), splittable: ``fork`` gives an
    empty, picklable one writing into files of ``workdir`` (None: cannot be split), ``join``
    takes its streams in after ours."""

    def add(self, sp: StreamPlan) -> None: ...

    def fork(self, workdir: str) -> PlanSink | None: ...

    def join(self, later: PlanSink) -> None: ...


@dataclass
class SecondPart:
    """What lets a planning walk go on in a second process: the migration (for its writes),
    the run's spool (None: a dry run), whether this process holds the LOCK, and what the
    run shows per stream (None: nothing)."""

    migration: Migration
    spool: WriteSpool | None
    locked: bool
    shown: PlanSink | None = None


def plan_in_two(
    db: Database,
    head: PlanHead,
    options: PlanOptions,
    into: tuple[Collected, PlanTally, OnStream | None],
    progress: Progress | None,
    ks: Keyspace,
    half: Half,
    second: SecondPart,
) -> None:
    """Our streams before ``half.at`` into ``into``, the second process's after them (see the module doc)."""
    col, tally, on_stream = into
    rest = Half(half.at, False)
    try:
        workdir = tempfile.TemporaryDirectory(prefix="kvfix-plan-", ignore_cleanup_errors=True)
    except OSError:  # no room for a second process's files: plan it all here
        plan_part(db, head, options, col, tally, on_stream, progress, WalkPart(ks))
        return
    with workdir as tmp:
        shown = None if second.shown is None else second.shown.fork(tmp)
        if second.shown is not None and shown is None:
            plan_part(db, head, options, col, tally, on_stream, progress, WalkPart(ks))
            return
        job: dict[str, Any] = {
            "shown": shown,
            "plan": head,
            "options": options,
            "limit": tally.limit,
            "keyspace": ks,
            "half": rest,
        }
        job |= {"path": str(db.path), "locked": second.locked, "migration": second.migration}
        job |= {"check_key": layout_records.CHECK_KEY}
        job |= {"spool": None if second.spool is None else str(Path(tmp) / "spool"), "fps": str(Path(tmp) / "fps")}
        started = launch(tmp, job, start_worker)
        if started is None:  # no second process (a full temporary disk): plan it all here
            plan_part(db, head, options, col, tally, on_stream, progress, WalkPart(ks))
            return
        proc, counter, out = started
        try:
            tick = with_counter(Ticker(progress or Progress(), ks.streams), counter)
            ours, last = remembered(tick)
            plan_part(db, head, options, col, tally, on_stream, progress, WalkPart(ks, half, ours))
            later = wait_worker(proc, out, tick, last[0], last[1], {"tally", "col", "spool", "fps", "shown"})
            digest = None if later is None else _continued(tally, Path(later["fps"]))
            if later is not None and digest is None:
                later = None  # its fingerprints unreadable: plan its part here
            if later is not None:
                tally.absorb(later["tally"], digest)
                col.absorb(later["col"])
                if second.shown is not None:
                    second.shown.join(later["shown"])
                if second.spool is not None:
                    second.spool.join(later["spool"])  # opened (and unlinked) before tmp goes
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if later is None:  # the second process failed: plan its part here
        plan_part(db, head, options, col, tally, on_stream, progress, WalkPart(ks, rest))


def _continued(tally: PlanTally, path: Path) -> Any:
    """Our digest gone on with the second process's fingerprints; None if they can't be read."""
    digest = tally.digest()
    try:
        for chunk in _fingerprints(path):
            digest.update(chunk)
    except (OSError, zlib.error):
        return None
    return digest


def _fingerprints(path: Path) -> Iterator[bytes]:
    """The second process's fingerprints, concatenated: what the digest takes, in chunks of
    at most _FP_CHUNK bytes (they compress tenfold: a whole block would be tens of MB)."""
    inflate = zlib.decompressobj()
    with open(path, "rb") as f:
        while block := f.read(_FP_CHUNK // 16):
            data = inflate.decompress(block, _FP_CHUNK)
            while data:
                yield data
                data = inflate.decompress(inflate.unconsumed_tail, _FP_CHUNK) if inflate.unconsumed_tail else b""
    yield inflate.flush()


def plan_worker(job: dict[str, Any]) -> dict[str, Any]:
    """The second process's part of :func:`plan_in_two` (kvfix.analysis.scanworker)."""
    from kvfix.store.opening import open_read_only

    layout_records.set_check_key(job["check_key"])
    head: PlanHead = job["plan"]
    migration: Migration = job["migration"]
    tick = counter_tick(job["counter"], job["parent"], os.path.dirname(job["counter"]))
    spool = None if job["spool"] is None else WriteSpool(path=Path(job["spool"]))
    col, tally = Collected(False, 0), PlanTally(job["limit"], FORK_BASE)
    deflate = zlib.compressobj(1)
    shown: PlanSink | None = job["shown"]
    part = WalkPart(job["keyspace"], job["half"], tick)
    with open(job["fps"], "wb") as fps, open_read_only(job["path"], parent_holds_lock=job["locked"]) as db:
        for sp in stream_plans(db, head.source, head.target, job["options"], col, None, part):
            tally.add(sp)
            if shown is not None:
                shown.add(sp)
            fps.write(deflate.compress(sp.fingerprint()))
            if spool is not None:
                spool.add(migration.unit(sp))
        fps.write(deflate.flush())
        handed = None if spool is None else spool.handoff()
    return {"tally": tally, "col": col, "spool": handed, "fps": job["fps"], "shown": shown}
