"""Verifying m001: after a run, each written stream holds exactly the group records it planned.

A run keeps, per stream it writes, four integers (:func:`expectation`): the stream's
prefix hash, the low 64 bits of the order-free sum of record hashes
(kvfix.migrations.layout_records.record_hash) of the target-layout group records it
must hold afterwards, how many there are, and a hash of the metadata it wrote.
Verification walks again, in the same order, and compares: the walk sums every stream's
records as it reads them, so no record is held.
"""

from __future__ import annotations

from hashlib import blake2b

from kvfix.analysis.keyspace import prefix_hash
from kvfix.migrations.base import Plan, Written
from kvfix.migrations.layout_records import Collected, StreamRecords, stream_records
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.progress import Progress
from kvfix.store.database import Database
from kvfix.textsafe import show

#: Integers per stream in :class:`~kvfix.migrations.base.Written`.
WIDTH = 4
_MASK = (1 << 64) - 1


def _h(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def expectation(sp: StreamPlan) -> tuple[int, int, int, int]:
    """What verification compares for one written stream (see the module doc)."""
    meta = 0 if sp.metadata is None else _h(sp.metadata.new) or 1
    return (prefix_hash(sp.prefix) & _MASK, sp.after_sum & _MASK, sp.records_after, meta)


def verify_plan(
    db: Database, plan: Plan, written: Written | None = None, progress: Progress | None = None
) -> list[str]:
    """Re-read the group records: each written stream holds exactly its planned state, and
    after a complete run (or none) no live stream in scope holds source-layout records."""
    expected = iter(() if written is None else written.written())
    want = next(expected, None)
    complete = written is None or written.done is None
    problems: list[str] = []
    for sr in stream_records(db, plan.cluster, Collected(False, 0), plan.scope, progress):
        if want is not None and prefix_hash(sr.prefix) & _MASK == want[0]:
            problems.extend(_stream_problems(db, plan, sr, want))
            want = next(expected, None)
        elif complete:
            left = sum(s.records for s in sr.by_layout(plan.source).values())
            if left:
                problems.append(f"{_where(sr)}: {left} {plan.source} records in a live stream")
    missing = 0 if want is None else 1 + sum(1 for _ in expected)
    if missing:
        problems.append(f"{missing} written streams were not found again in the walk")
    return problems


def _where(sr: StreamRecords) -> str:
    return f"{show(sr.live.key.namespace)}/{show(sr.live.key.user_key)}"


def _stream_problems(db: Database, plan: Plan, sr: StreamRecords, want: tuple[int, ...]) -> list[str]:
    out: list[str] = []
    left = sum(s.records for s in sr.by_layout(plan.source).values())
    if left:
        out.append(f"{_where(sr)}: {left} {plan.source} records left")
    held = sr.by_layout(plan.target).values()
    found = sum(s.records for s in held)
    if sum(s.sum for s in held) & _MASK != want[1] or found != want[2]:
        bad = f", {sr.undecodable} undecodable" if sr.undecodable else ""
        out.append(
            f"{_where(sr)}: group records differ from the plan ({found} {plan.target} records found, "
            f"{want[2]} planned{bad}, or their bytes differ)"
        )
    if want[3] and (_h(sr.metadata) or 1) != want[3]:
        out.append(f"{_where(sr)}: stream metadata is not what the plan wrote")
    return out
