"""A walk over many streams in two processes, each finishing its own streams.

This process walks the streams whose metadata keys sort before a cut point; a second one
(``python -m kvfix.analysis.scanworker``: a fresh interpreter, no fork of a process with
RocksDB threads) walks the rest, opening the database read-only on its own, and finishes
its streams through a copy of the caller's :class:`Stage` (which ends in a
:class:`StreamSink`: what shows them).  Its stage (tallies, sink) and walk result then
join ours; as its streams all sort after ours, the
output is the one process's, byte for byte.  If the second process fails for any reason,
this one walks its part too.  Per-stream work (classifying, findings, a report's rows or
JSON) is most of a scan of many small streams, so on two cores this about halves it.
"""

from __future__ import annotations

import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kvfix import testpoints
from kvfix.analysis.keyspace import Keyspace
from kvfix.analysis.model import StreamReport
from kvfix.analysis.scope import EVERYTHING, Scope
from kvfix.analysis.stream_walk import WalkResult, walk_range
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.analysis.walk import Half
from kvfix.store.database import Database

Tick = Callable[[int, int], None]


class Stage(Protocol):
    """What a walk does with each stream, in one process: makes its analyzer, and once its
    records are read, finishes it (findings, tallies, the report's sink).  ``fork`` gives an
    empty, picklable one for a second process (None: cannot be split), ``join`` takes its
    streams in after ours."""

    def analyzer(self, db: Database, report: StreamReport) -> StreamAnalyzer: ...

    def done(self, db: Database, a: StreamAnalyzer) -> None: ...

    def fork(self, workdir: str) -> Stage | None: ...

    def join(self, later: Stage) -> None: ...


class StreamSink(Protocol):
    """What a scan hands its finished streams to, in key order (a report's rows, its JSON)."""

    def add(self, s: StreamReport) -> None: ...

    def fork(self, workdir: str) -> StreamSink | None:
        """An empty sink like this one, picklable, for a second process's streams (files go
        in ``workdir``); None when this sink cannot be split (then one process walks)."""
        ...

    def join(self, later: StreamSink) -> None:
        """Take in a fork's streams, which all sort after the ones added here."""
        ...


#: Fewer streams than this stay in one process (a second one costs ~0.35 s to start).
SHARD_MIN_STREAMS = 20_000
#: Rough cost of finishing one small stream and of starting the second process, to balance.
_STREAM_SECONDS = 60e-6
_START_SECONDS = 0.35


def shard_point(ks: Keyspace, workers: int | None) -> Half | None:
    """Where the second process's part starts, or None to walk in one process.

    Automatic on a machine with 2+ CPUs from SHARD_MIN_STREAMS streams on; KVFIX_WORKERS=1
    or ``workers=1`` turns it off, KVFIX_WORKERS=2 or ``workers=2`` forces it.
    """
    if not use_two(ks.streams, workers):
        return None
    at = ks.stream_at(first_share(ks.streams))
    return None if at is None else Half(at, True)


def use_two(units: int, workers: int | None) -> bool:
    """Whether ``units`` streams (or keys) are walked in two processes (see :func:`shard_point`)."""
    if workers is None:
        env = os.environ.get("KVFIX_WORKERS")
        if env == "1" or usable_cpus() < 2:
            return False
        return env == "2" or units >= SHARD_MIN_STREAMS
    return workers >= 2


def first_share(units: int) -> float:
    """The share of ``units`` this process walks: a little more than half, for the second's start."""
    return min(0.75, 0.5 + _START_SECONDS / (2 * _STREAM_SECONDS * max(units, 1)))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's or taskset's share,
    where ``os.cpu_count`` counts the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def walk_sharded(db: Database, job: dict[str, Any], stage: Stage, tick: Tick, live_progress: bool) -> WalkResult | None:
    """Walk ``job``'s keyspace in two parts (see the module); None when ``stage`` cannot fork.

    ``job`` holds what both processes walk with (keyspace, half, deep, now, keep_pel).
    """
    half: Half = job["half"]
    second = Half(half.at, False)
    with tempfile.TemporaryDirectory(prefix="kvfix-scan-") as tmp:
        forked = stage.fork(tmp)
        if forked is None:
            return None
        counter = Path(tmp) / "progress" if live_progress else None
        order, out = Path(tmp) / "job.pickle", Path(tmp) / "result.pickle"
        mine = {"path": str(db.path), "salvage": db.salvage, "half": second, "stage": forked, "parent": os.getpid()}
        with open(order, "wb") as f:
            pickle.dump({**job, **mine, "counter": None if counter is None else str(counter)}, f)
        proc = start_worker(order, out)
        try:
            both = with_counter(tick, counter)
            result = walk_part(db, job, stage, half, both)
            later = wait_worker(proc, out, both, result.streams, result.records, {"result", "stage", "read_errors"})
            if later is None:  # the second process failed: walk its part here
                rest = walk_part(db, job, stage, second, lambda n, r: tick(result.streams + n, result.records + r))
                result.absorb(rest)
                return result
            db.read_errors.extend(later["read_errors"])
            stage.join(later["stage"])
            result.absorb(later["result"])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return result


def walk_part(
    db: Database, job: dict[str, Any], stage: Stage, half: Half | None, tick: Tick | None, scope: Scope = EVERYTHING
) -> WalkResult:
    """One process's part of the walk (None: all of it), each stream through ``stage``."""

    def done(a: StreamAnalyzer) -> None:
        stage.done(db, a)

    def analyzer(report: StreamReport) -> StreamAnalyzer:
        return stage.analyzer(db, report)

    ks, deep, now = job["keyspace"], job["deep"], job["now"]
    return walk_range(db, ks, deep, now, done, analyzer, half=half, tick=tick, keep_pel=job["keep_pel"], scope=scope)


def with_counter(tick: Tick, counter: Path | None) -> Tick:
    """``tick`` with the second process's counts added (read at most every 0.1 s)."""
    if counter is None:
        return tick
    theirs = [0, 0]
    due = [0.0]

    def both(streams: int, records: int) -> None:
        now = time.monotonic()
        if now >= due[0]:
            due[0] = now + 0.1
            theirs[:] = read_counter(counter)
        tick(streams + theirs[0], records + theirs[1])

    return both


def remembered(tick: Tick) -> tuple[Tick, list[int]]:
    """``tick`` and the last (streams, records) it was given: what to keep showing for our
    part while the second process finishes."""
    last = [0, 0]

    def ours(streams: int, records: int) -> None:
        last[:] = streams, records
        tick(streams, records)

    return ours, last


_COUNTS = struct.Struct("<qq")


def read_counter(path: Path) -> tuple[int, int]:
    """(streams, records) the second process has finished, (0, 0) before its first write."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0, 0
    return _COUNTS.unpack(data) if len(data) == _COUNTS.size else (0, 0)


def counter_tick(path: str | None, parent: int | None = None, workdir: str | None = None) -> Tick:
    """The second process's tick, at most every 0.1 s: its counts written to ``path``, and
    if its ``parent`` is gone (killed: nobody will read the result), ``workdir`` (the
    parent's temporary directory, its part's JSON included) removed and this process ended."""
    due, checks = [0.0], [0]

    def tick(streams: int, records: int) -> None:
        now = time.monotonic()
        if now < due[0]:
            return
        due[0] = now + 0.1
        checks[0] += 1
        testpoints.reached("worker-tick", checks[0])  # stopped here, the parent check comes next
        if parent is not None and os.getppid() != parent:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            os._exit(3)
        if path is not None:
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(_COUNTS.pack(streams, records))
            os.replace(tmp, path)

    return tick


def wait_worker(
    proc: subprocess.Popen[bytes], out: Path, tick: Tick, streams: int, records: int, keys: set[str]
) -> dict[str, Any] | None:
    """The second process's result (a dict with ``keys``), ticking progress while it
    finishes; None if it failed."""
    while True:
        try:
            code = proc.wait(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            tick(streams, records)
    later = worker_output(code, out)
    if not isinstance(later, dict) or not keys <= later.keys():
        return None
    return later


def launch(
    tmp: str, job: dict[str, Any], start: Callable[[Path, Path], subprocess.Popen[bytes]]
) -> tuple[subprocess.Popen[bytes], Path, Path] | None:
    """Write ``job`` (with the progress counter's path and our pid) into ``tmp`` and start the
    second process with ``start``: (process, counter, result path), or None when it cannot
    be started (a full temporary disk, EAGAIN): then one process does it all."""
    counter, order, out = Path(tmp) / "progress", Path(tmp) / "job.pickle", Path(tmp) / "result.pickle"
    try:
        with open(order, "wb") as f:
            pickle.dump({**job, "counter": str(counter), "parent": os.getpid()}, f)
        return start(order, out), counter, out
    except OSError:
        return None


def start_worker(job: Path, out: Path) -> subprocess.Popen[bytes]:
    """``python -m kvfix.analysis.scanworker JOB OUT`` with this kvfix on its path."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    debug = bool(os.environ.get("KVFIX_DEBUG"))
    return subprocess.Popen(
        [sys.executable, "-m", "kvfix.analysis.scanworker", str(job), str(out)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=None if debug else subprocess.DEVNULL,
        env=env,
    )


def worker_output(code: int, out: Path) -> object:
    """What a second process that exited with ``code`` left in ``out`` (None: nothing usable)."""
    if code != 0:
        return None
    try:
        with open(out, "rb") as f:
            return pickle.load(f)  # our own child's output
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
