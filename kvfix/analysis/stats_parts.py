"""stats of many keys in two processes: the subkey pass split at a user key.

The metadata pass (one process) keeps every k-th metadata key (:class:`Marks`, at most
2 x MARKS of them, k doubling); the subkey families are then read in two parts, cut at
the :func:`~kvfix.codec.keys.key_prefix` of one of those keys (:func:`stats_cut`), which
no other user key's records straddle.  A second process (``python -m
kvfix.analysis.scanworker``, as scan and check use) reads the part from the cut on into
a report of its own; its counts, garbage, family totals and top keys are added to ours
before the other families are counted, so the report is the one process's (the top-N
heaps keep the N largest by a total order, whatever the order of pushes).  If it fails,
this process reads that part too.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

from kvfix.analysis.sharded import counter_tick, first_share, launch, start_worker, use_two, wait_worker, with_counter
from kvfix.analysis.stats_model import Garbage, StatsReport
from kvfix.codec.keys import MetadataKey, key_prefix

if TYPE_CHECKING:
    from kvfix.analysis.stats import _Collector

#: Metadata keys kept as cut points (between MARKS and 2 x MARKS of them).
MARKS = 1024


class Marks:
    """Every ``stride``-th metadata key seen, the stride doubling to keep at most 2 x MARKS."""

    __slots__ = ("_keys", "seen", "stride")

    def __init__(self) -> None:
        self._keys: list[MetadataKey] = []
        self.stride = 1
        self.seen = 0

    def add(self, mkey: MetadataKey) -> None:
        if self.seen % self.stride == 0:
            self._keys.append(mkey)
            if len(self._keys) >= 2 * MARKS:
                self._keys = self._keys[::2]
                self.stride *= 2
        self.seen += 1

    def sample(self) -> list[MetadataKey]:
        return self._keys


def stats_cut(marks: list[MetadataKey], keys: int, workers: int | None = None) -> bytes | None:
    """Where the second process's part of the subkey families starts, or None for one process.

    The marks' key prefixes sorted as the subkey families sort them (by key length first),
    the one at this process's share of them.
    """
    if not use_two(keys, workers) or len(marks) < 2:
        return None
    prefixes = sorted({key_prefix(m.namespace, m.user_key, m.slot) for m in marks})
    at = min(len(prefixes) - 1, max(1, round(first_share(keys) * len(prefixes))))
    return prefixes[at]


def in_two(c: _Collector, cut: bytes) -> bool:
    """The subkey pass of ``c`` in two parts (see the module doc); False when the second
    process could not be started, and nothing was read."""
    report = c.report
    try:
        workdir = tempfile.TemporaryDirectory(prefix="kvfix-stats-", ignore_cleanup_errors=True)
    except OSError:  # no room for a second process's files
        return False
    with workdir as tmp:
        job = {"stats": cut, "path": str(c.db.path), "cluster": report.cluster, "filters": report.filters}
        started = launch(tmp, {**job, "top_n": report.top_n, "now": report.now_ms}, start_worker)
        if started is None:  # no second process: one process reads it all
            return False
        proc, counter, out = started
        try:
            mine = c.tick
            c.tick = with_counter(mine, counter)
            c.subkey_pass(stop=cut)
            later = wait_worker(proc, out, c.tick, c.keys, c.records, {"report", "records"})
            c.tick = mine
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if later is None:  # the second process failed: read its part here
        c.subkey_pass(start=cut)
    else:
        absorb(c, later["report"], later["records"])
    return True


def absorb(c: _Collector, later: StatsReport, records: int) -> None:
    """Add a second process's part (read after ours) to ``c``'s report."""
    report = c.report
    for ns, types in later.namespaces.items():
        for name, tc in types.items():
            report.counts(ns, name).add(tc)
    for cf, g in later.garbage.items():
        mine = report.garbage.setdefault(cf, Garbage())
        for name in Garbage.__dataclass_fields__:
            setattr(mine, name, getattr(mine, name) + getattr(g, name))
    for cf, (n, size) in later.cf_totals.items():
        t = report.cf_totals.setdefault(cf, [0, 0])
        t[0] += n
        t[1] += size
    for top in later.top_by_bytes:
        c.by_bytes.push(top)
    for top in later.top_by_records:
        c.by_records.push(top)
    c.records += records


def stats_worker(job: dict[str, Any]) -> dict[str, Any]:
    """The second process's part: the subkey families from the cut on (kvfix.analysis.scanworker)."""
    from kvfix.analysis.stats import collect_part
    from kvfix.store.opening import open_read_only

    tick = counter_tick(job["counter"], job["parent"], os.path.dirname(job["counter"]))
    with open_read_only(job["path"]) as db:
        report = StatsReport(str(db.path), db.column_families, job["cluster"], job["filters"], job["top_n"], job["now"])
        records = collect_part(db, report, job["stats"], tick)
    return {"report": report, "records": records}
