"""The second process of a parallel scan: ``python -m kvfix.analysis.scanworker JOB OUT``.

JOB is a pickle written by our parent (database path, the keyspace survey, which half to
walk).  A deep scan of few streams (kvfix.analysis.scan._walk_in_two): OUT receives the
pickled WalkResult of that half, with its streams' analyzers; they count plain entries
and keep every other record as raw bytes for the parent to decode
(StreamAnalyzer.deferred): with many group records, pickling decoded records cost more
than walking them.  A scan of many streams into a sink (JOB's "stage",
kvfix.analysis.sharded): the streams are finished here, through JOB's stage, and OUT
receives the stage (its tallies and sink) and the WalkResult.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from typing import Any

from kvfix.analysis.model import StreamReport
from kvfix.analysis.scan import WalkResult, walk_range
from kvfix.analysis.sharded import counter_tick, walk_part
from kvfix.analysis.streams import StreamAnalyzer
from kvfix.analysis.walk import paused_gc
from kvfix.store.opening import open_read_only


def main(argv: list[str]) -> int:
    job_path, out_path = argv
    # Our temporary files (the read-only shadow above all) go in our parent's temporary
    # directory: it removes them even if this process is killed, as we do if it is.
    tempfile.tempdir = os.path.dirname(os.path.abspath(out_path))
    with open(job_path, "rb") as f:
        job = pickle.load(f)  # written by our parent process
    if "stage" in job:
        return _finish_streams(job, out_path)
    if "plan" in job:
        from kvfix.migrations.plan_parts import plan_worker

        with paused_gc():
            _write(plan_worker(job), out_path)
        return 0
    if "stats" in job:
        from kvfix.analysis.stats_parts import stats_worker

        with paused_gc():
            _write(stats_worker(job), out_path)
        return 0
    if "verify" in job:
        from kvfix.migrations.layout_verify import verify_worker

        with paused_gc():
            _write(verify_worker(job), out_path)
        return 0
    kept: list[StreamAnalyzer] = []
    with open_read_only(job["path"]) as db, paused_gc():
        result: WalkResult = walk_range(
            db, job["keyspace"], job["deep"], job["now"], kept.append, _deferring, half=job["half"]
        )
    result.analyzers = kept
    result.worker_peak_kib = _vm_hwm_kib()
    _write(result, out_path)
    return 0


def _finish_streams(job: dict[str, Any], out_path: str) -> int:
    """Walk our half, each stream through the job's stage (see kvfix.analysis.sharded)."""
    stage = job["stage"]
    with open_read_only(job["path"], salvage=job["salvage"]) as db, paused_gc():
        opened = len(db.read_errors)  # what the open found, our parent's open found too
        tick = counter_tick(job["counter"], job["parent"], os.path.dirname(out_path))
        result = walk_part(db, job, stage, job["half"], tick)
        errors = db.read_errors[opened:]
    result.worker_peak_kib = _vm_hwm_kib()
    _write({"result": result, "stage": stage, "read_errors": errors}, out_path)
    return 0


def _write(result: object, out_path: str) -> None:
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, out_path)


def _deferring(report: StreamReport) -> StreamAnalyzer:
    """Entries counted here; every other record goes back raw for the parent to decode."""
    return StreamAnalyzer(report, defer=True)


def _vm_hwm_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
