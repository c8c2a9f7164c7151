"""Verifying m001: after a run, each written stream holds exactly the group records it planned.

A run keeps, per stream it writes, four integers (:func:`expectation`): the stream's
prefix hash, the order-free sum (mod 2^64) of record checksums
(kvfix.migrations.layout_records.record_check, the same in every process) of the
target-layout group records it must hold afterwards, how many there are, and a hash of
the metadata it wrote.  Verification walks again, in the same order, and compares: the
walk sums every stream's records as it reads them, so no record is held.  Many streams
are walked in two processes, as scan and check do.

After an upgrade (target: prefixed) a record's checksum is that of its raw subkey and value,
so a stream whose prefixed region sums and counts as planned, with an empty legacy
region, is verified without classifying a record.  Any other stream (a mismatch, entries
at a small id or at ms = 2^64-1, a rollback's legacy records) is read again and
classified, and the problem said from its sides.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from hashlib import blake2b
from typing import Any

from kvfix.analysis.keyspace import Keyspace, prefix_hash, surveyed
from kvfix.analysis.sharded import (
    counter_tick,
    launch,
    remembered,
    shard_point,
    start_worker,
    wait_worker,
    with_counter,
)
from kvfix.analysis.walk import Half, group_record_region
from kvfix.codec.stream import LEGACY, PREFIX_MARK, PREFIXED
from kvfix.migrations import layout_records
from kvfix.migrations.base import Plan, Written
from kvfix.migrations.layout_records import (
    Collected,
    StreamRecords,
    WalkPart,
    collect_chunk,
    live_chunks,
    stream_records,
)
from kvfix.migrations.stream_plan import StreamPlan
from kvfix.progress import Progress, Ticker
from kvfix.store.database import Database
from kvfix.store.opening import open_read_only
from kvfix.textsafe import show

#: Integers per stream in :class:`~kvfix.migrations.base.Written`.
WIDTH = 4
_MASK = (1 << 64) - 1


def _h(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def expectation(sp: StreamPlan) -> tuple[int, int, int, int]:
    """What verification compares for one written stream (see the module doc)."""
    meta = 0 if sp.metadata is None else _h(sp.metadata.new) or 1
    return (prefix_hash(sp.prefix) & _MASK, sp.after_check, sp.records_after, meta)


def verify_plan(
    db: Database, plan: Plan, written: Written | None = None, progress: Progress | None = None
) -> list[str]:
    """Re-read the group records: each written stream holds exactly its planned state, and
    after a complete run (or none) no live stream in scope holds source-layout records.

    Many streams are verified in two processes (:func:`_in_two`), as scan and check walk them.
    """
    ints, n = (array("Q"), 0) if written is None else (written.ints, written.streams_done)
    complete = written is None or written.done is None
    ks = surveyed(db, plan.cluster, progress or Progress())
    half = shard_point(ks, None) if plan.scope.everything else None
    if half is not None:
        both = _in_two(db, plan, _Matcher(ints, n, 0), complete, progress, ks, half)
        if both is not None:
            return both
    m = _Matcher(ints, n, 0)
    problems = _verify_part(db, plan, m, complete, progress, WalkPart(ks))
    return problems + _missing(m.skipped + n - (m.end or 0))


def _missing(n: int) -> list[str]:
    return [f"{n} written streams were not found again in the walk"] if n > 0 else []


class _Matcher:
    """The expectations of the written streams, met in walk order.  A stream that is not the
    next expectation's is looked up further on: the expectations passed over were written
    but not found (``skipped``).  A second process's part (``start`` None) starts at the
    first of its streams found."""

    __slots__ = ("_hashes", "_sorted", "end", "first", "ints", "n", "skipped")

    def __init__(self, ints: array[int], n: int, start: int | None) -> None:
        self.ints, self.n = ints, n
        self.first = self.end = start
        self.skipped = 0
        self._hashes: array[int] | None = None
        self._sorted: array[int] | None = None

    def match(self, h: int) -> tuple[int, ...] | None:
        """The expectation of the stream whose prefix hashes to ``h``, if it was written."""
        i = self.end
        if i is not None and i < self.n and self.ints[i * WIDTH] == h:
            self.end = i + 1
            return tuple(self.ints[i * WIDTH : (i + 1) * WIDTH])
        j = self._find(h, i or 0)
        if j is None:
            return None
        if i is None:
            self.first = j
        else:
            self.skipped += j - i
        self.end = j + 1
        return tuple(self.ints[j * WIDTH : (j + 1) * WIDTH])

    def _find(self, h: int, start: int) -> int | None:
        """Where ``h`` is among the expectations from ``start`` on (a sorted copy answers
        whether it is there at all: most streams looked up were not written)."""
        if self._hashes is None or self._sorted is None:
            self._hashes = self.ints[0 : self.n * WIDTH : WIDTH]
            self._sorted = array("Q", sorted(self._hashes))
        at = bisect_left(self._sorted, h)
        if at == len(self._sorted) or self._sorted[at] != h:
            return None
        try:
            return self._hashes.index(h, start)
        except ValueError:
            return None


def _verify_part(
    db: Database, plan: Plan, m: _Matcher, complete: bool, progress: Progress | None, part: WalkPart
) -> list[str]:
    """The problems of one part of the walk (or all of it), expectations taken from ``m``."""
    problems: list[str] = []
    for sr, raw in _streams(db, plan, progress, part):
        want = m.match(prefix_hash(sr.prefix) & _MASK)
        if want is not None:
            if raw is None or not raw.as_planned(want):
                problems.extend(_stream_problems(plan, _classified(db, sr, raw), want))
            elif want[3] and (_h(sr.metadata) or 1) != want[3]:
                problems.append(_metadata_problem(sr))
        elif complete and (raw is None or raw.legacy):
            left = sum(s.records for s in _classified(db, sr, raw).by_layout(plan.source).values())
            if left:
                problems.append(f"{_where(sr)}: {left} {plan.source} records in a live stream")
    return problems


def _in_two(
    db: Database, plan: Plan, m: _Matcher, complete: bool, progress: Progress | None, ks: Keyspace, half: Half
) -> list[str] | None:
    """This process verifies the streams before ``half.at``, a second one the rest; if that
    one fails, this one verifies them too.  None: no second process could be started (a
    full temporary disk), nothing verified yet."""
    second = Half(half.at, False)
    tick = Ticker(progress or Progress(), ks.streams)
    try:
        workdir = tempfile.TemporaryDirectory(prefix="kvfix-verify-", ignore_cleanup_errors=True)
    except OSError:  # no room for a second process's files
        return None
    with workdir as tmp:
        job = {"verify": plan, "path": str(db.path), "keyspace": ks, "half": second, "ints": m.ints[: m.n * WIDTH]}
        started = launch(
            tmp, {**job, "n": m.n, "complete": complete, "check_key": layout_records.CHECK_KEY}, start_worker
        )
        if started is None:
            return None
        proc, counter, out = started
        try:
            both = with_counter(tick, counter)
            ours, last = remembered(both)
            problems = _verify_part(db, plan, m, complete, progress, WalkPart(ks, half, ours))
            later = wait_worker(proc, out, both, last[0], last[1], {"problems", "first", "end", "skipped"})
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if later is None:  # the second process failed: verify its part here
        problems += _verify_part(db, plan, m, complete, progress, WalkPart(ks, second))
        return problems + _missing(m.skipped + m.n - (m.end or 0))
    return problems + later["problems"] + _joined_missing(m, later)


def _joined_missing(m: _Matcher, later: dict[str, Any]) -> list[str]:
    """The written streams neither part found: passed over in either part, between the parts,
    and after the second part's last."""
    first, end, mine = later["first"], later["end"], m.end or 0
    if first is None:
        return _missing(m.skipped + m.n - mine)
    if first < mine:  # only with two streams of one prefix hash
        return ["the two parts of the verification met the same written stream; verify again with KVFIX_WORKERS=1"]
    return _missing(m.skipped + (first - mine) + later["skipped"] + (m.n - end))


def verify_worker(job: dict[str, Any]) -> dict[str, Any]:
    """The second process's part of :func:`_in_two` (kvfix.analysis.scanworker)."""
    layout_records.set_check_key(job["check_key"])
    m = _Matcher(job["ints"], job["n"], None)
    tick = counter_tick(job["counter"], job["parent"], os.path.dirname(job["counter"]))
    with open_read_only(job["path"], parent_holds_lock=True) as db:
        part = WalkPart(job["keyspace"], job["half"], tick)
        problems = _verify_part(db, job["verify"], m, job["complete"], None, part)
    return {"problems": problems, "first": m.first, "end": m.end, "skipped": m.skipped}


class _Raw:
    """A stream's records as the fast walk read them, summed up unclassified: how many sit in
    the legacy region, and the count and hash sum of those in the prefixed region."""

    __slots__ = ("legacy", "records", "sum")

    def __init__(self) -> None:
        self.legacy = self.records = self.sum = 0

    def add(self, chunk: list[tuple[bytes, bytes]], n: int) -> None:
        mark, b2, num, secret = PREFIX_MARK, blake2b, int.from_bytes, layout_records.CHECK_KEY
        total = 0
        for key, value in chunk:
            if key.startswith(mark, n):
                total += num(b2(key[n:] + value, digest_size=8, key=secret).digest(), "little")
                self.records += 1
            else:
                self.legacy += 1
        self.sum += total

    def as_planned(self, want: tuple[int, ...]) -> bool:
        return not self.legacy and self.records == want[2] and self.sum & _MASK == want[1]


def _streams(
    db: Database, plan: Plan, progress: Progress | None, part: WalkPart
) -> Iterator[tuple[StreamRecords, _Raw | None]]:
    """Each live stream of ``part``: after an upgrade with its raw sums (records not
    classified), after a rollback classified as it is read (raw None)."""
    if plan.target != PREFIXED:
        for sr in stream_records(db, plan.cluster, Collected(False, 0), plan.scope, progress, part):
            yield sr, None
        return
    current: StreamRecords | None = None
    raw = _Raw()
    for sr, chunk, n in live_chunks(db, plan.cluster, Collected(False, 0), plan.scope, progress, part):
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
    if sum(s.check for s in held) & _MASK != want[1] or found != want[2]:
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
