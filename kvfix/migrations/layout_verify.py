"""Verifying m001: after a run, each written stream holds exactly the group records it planned.

A run keeps, per stream it writes, four integers (:func:`expectation`): the stream's
prefix hash, the low 64 bits of the order-free sum of record hashes
(kvfix.migrations.layout_records.record_hash) of the target-layout group records it
must hold afterwards, how many there are, and a hash of the metadata it wrote.
Verification walks again, in the same order, and compares: the walk sums every stream's
records as it reads them, so no record is held.

After an upgrade (target: prefixed) a record's hash is that of its raw subkey and value,
so a stream whose prefixed region sums and counts as planned, with an empty legacy
region, is verified without classifying a record.  Any other stream (a mismatch, entries
at a small id or at ms = 2^64-1, a rollback's legacy records) is read again and
classified, and the problem said from its sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import blake2b

from kvfix.analysis.keyspace import prefix_hash
from kvfix.analysis.walk import group_record_region
from kvfix.codec.stream import LEGACY, PREFIX_MARK, PREFIXED
from kvfix.migrations.base import Plan, Written
from kvfix.migrations.layout_records import (
    Collected,
    StreamRecords,
    collect_chunk,
    hash128,
    live_chunks,
    stream_records,
)
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
    for sr, raw in _streams(db, plan, progress):
        if want is not None and prefix_hash(sr.prefix) & _MASK == want[0]:
            if raw is None or not raw.as_planned(want):
                problems.extend(_stream_problems(plan, _classified(db, sr, raw), want))
            elif want[3] and (_h(sr.metadata) or 1) != want[3]:
                problems.append(_metadata_problem(sr))
            want = next(expected, None)
        elif complete and (raw is None or raw.legacy):
            left = sum(s.records for s in _classified(db, sr, raw).by_layout(plan.source).values())
            if left:
                problems.append(f"{_where(sr)}: {left} {plan.source} records in a live stream")
    missing = 0 if want is None else 1 + sum(1 for _ in expected)
    if missing:
        problems.append(f"{missing} written streams were not found again in the walk")
    return problems


class _Raw:
    """A stream's records as the fast walk read them, summed up unclassified: how many sit in
    the legacy region, and the count and hash sum of those in the prefixed region."""

    __slots__ = ("legacy", "records", "sum")

    def __init__(self) -> None:
        self.legacy = self.records = self.sum = 0

    def add(self, chunk: list[tuple[bytes, bytes]], n: int) -> None:
        mark, h = PREFIX_MARK, hash128
        total = 0
        for key, value in chunk:
            if key.startswith(mark, n):
                total += h(key[n:] + value)
                self.records += 1
            else:
                self.legacy += 1
        self.sum += total

    def as_planned(self, want: tuple[int, ...]) -> bool:
        return not self.legacy and self.records == want[2] and self.sum & _MASK == want[1]


def _streams(db: Database, plan: Plan, progress: Progress | None) -> Iterator[tuple[StreamRecords, _Raw | None]]:
    """Each live stream: after an upgrade with its raw sums (records not classified), after a
    rollback classified as it is read (raw None)."""
    if plan.target != PREFIXED:
        for sr in stream_records(db, plan.cluster, Collected(False, 0), plan.scope, progress):
            yield sr, None
        return
    current: StreamRecords | None = None
    raw = _Raw()
    for sr, chunk, n in live_chunks(db, plan.cluster, Collected(False, 0), plan.scope, progress):
        if sr is not current:
            if current is not None:
                yield current, raw
            current, raw = sr, _Raw()
        if chunk:
            raw.add(chunk, n)
    if current is not None:
        yield current, raw


def _classified(db: Database, sr: StreamRecords, raw: _Raw | None) -> StreamRecords:
    """The stream's group records classified: read again from its two regions (the fast
    walk's), unless the walk classified them already."""
    if raw is None:
        return sr
    names: dict[bytes, bytes] = {}
    for layout in (LEGACY, PREFIXED):
        for chunk in group_record_region(db, sr.prefix, layout):
            collect_chunk(sr, chunk, len(sr.prefix), names)
    return sr


def _where(sr: StreamRecords) -> str:
    return f"{show(sr.live.key.namespace)}/{show(sr.live.key.user_key)}"


def _stream_problems(plan: Plan, sr: StreamRecords, want: tuple[int, ...]) -> list[str]:
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
        out.append(_metadata_problem(sr))
    return out


def _metadata_problem(sr: StreamRecords) -> str:
    return f"{_where(sr)}: stream metadata is not what the plan wrote"
