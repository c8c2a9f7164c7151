"""Crash safety: SIGKILL real ``kvfix migrate`` processes at progress points of a large run.

One WriteBatch (synced) per stream means every stream is wholly in one layout after any
kill, and a re-run finishes the job.  Runs in the normal suite (marked slow).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_kvfix

from kvfix.analysis.scan import scan_database
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import ConsumerValue, PelValue
from kvfix.store.opening import open_read_only
from kvfix.synth import SynthDB, SynthStream, group_value

STREAMS = 1000
KILLS = 22


def build(path: Path, n: int = STREAMS) -> Path:
    streams = []
    for i in range(n):
        base = 1_795_775_557_000 + i
        ids = [StreamId(base, s) for s in range(3)]
        s = SynthStream(f"stream:{i:05d}".encode(), entries=[(x, (b"f", b"v%d" % i)) for x in ids])
        for g in (b"billing", b"audit"):
            s.groups.append(("legacy", g, group_value(ids[-1], consumers=2, pending=2, entries_read=3)))
            s.consumers.append(("legacy", g, b"w1", ConsumerValue(1, base, base)))
            s.consumers.append(("legacy", g, b"w2", ConsumerValue(1, base, base)))
            s.pel.append(("legacy", g, ids[0], PelValue(base, 0, b"w1")))
            s.pel.append(("legacy", g, ids[1], PelValue(base, 1, b"w2")))
        streams.append(s)
    return SynthDB(streams=streams).write(path)


def layouts(path: Path) -> dict[str, int]:
    with open_read_only(path) as db:
        report = scan_database(db)
    out: dict[str, int] = {}
    for s in report.streams:
        out[s.layout] = out.get(s.layout, 0) + 1
        if s.layout == "prefixed":
            assert s.metadata.stream.group_number == 2
            assert sorted(g.name for g in s.groups.values()) == [b"audit", b"billing"]
            assert all(len(g.pel) == 2 and len(g.consumers) == 2 for g in s.groups.values())
    return out


def start(path: Path, to: str, stop_at: str) -> subprocess.Popen:
    """A real ``kvfix migrate`` that stops itself (SIGSTOP) on reaching ``stop_at``."""
    env = {**os.environ, "KVFIX_NO_PROGRESS": "1", "KVFIX_BATCH_RECORDS": "1", "KVFIX_TEST_STOP_AT": stop_at}
    cmd = [sys.executable, "-m", "kvfix", "migrate", str(path), "--yes", "--no-backup", "--to", to, "--format", "json"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def kill_when_stopped(proc: subprocess.Popen) -> None:
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_sigkill_at_progress_points_keeps_every_stream_in_one_layout(tmp_path):
    """Kill points are chosen by progress (after the Nth synced batch, at the flush, before
    verification), never by time, so a slow machine kills at the same points."""
    db = build(tmp_path / "db")
    rng = random.Random(20240716)
    points = sorted(rng.sample(range(1, 46), KILLS - 2))  # at most 890 of the 1,000 streams
    written = 0
    for n in points:  # each run moves n more streams, then dies
        kill_when_stopped(start(db, "prefixed", f"batch:{n}"))
        written += n
        assert layouts(db) == {"prefixed": written, "legacy": STREAMS - written}  # each batch synced, whole
    for phase in ("flush", "verify"):  # every stream written, killed before the flush / verification
        kill_when_stopped(start(db, "legacy" if phase == "flush" else "prefixed", phase))
        assert layouts(db) == {"legacy" if phase == "flush" else "prefixed": STREAMS}
    done = run_kvfix("migrate", db, "--yes", "--no-backup")
    assert done.returncode == 0, done.stderr
    assert "verified" in done.stderr  # nothing left to write: the re-run verifies what the killed run left
    assert layouts(db) == {"prefixed": STREAMS}
    assert not (db / "rocksdict-config.json").exists()  # a killed run's leftover is removed by the next
    again = run_kvfix("migrate", db, "--yes", "--no-backup", "--format", "json")
    assert again.returncode == 0 and '"streams_to_migrate":0' in again.stdout


def build_big(path: Path) -> Path:
    """One stream whose two groups hold 1,500 PEL records each: split over many batches."""
    base = 1_795_775_557_000
    ids = [StreamId(base + i, 0) for i in range(1500)]
    s = SynthStream(b"big", entries=[(x, (b"f", b"v")) for x in ids])
    for g in (b"billing", b"audit"):
        s.groups.append(("legacy", g, group_value(ids[-1], consumers=2, pending=1500, entries_read=1500)))
        s.consumers.append(("legacy", g, b"w1", ConsumerValue(750, base, base)))
        s.consumers.append(("legacy", g, b"w2", ConsumerValue(750, base, base)))
        s.pel.extend(("legacy", g, x, PelValue(base, 1, b"w1" if i % 2 else b"w2")) for i, x in enumerate(ids))
    return SynthDB(streams=[s]).write(path)


def test_sigkill_inside_a_stream_split_over_many_batches(tmp_path):
    """A stream too large for one batch moves in parts, its group records last; a re-run
    finishes a move a killed run left part done, and never calls it a conflict."""
    db = build_big(tmp_path / "db")
    env = {"KVFIX_PART_RECORDS": "400"}  # 200 records moved per part: 16 parts for this stream
    for n in (3, 5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "kvfix", "migrate", str(db), "--yes", "--no-backup", "--format", "json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env, "KVFIX_NO_PROGRESS": "1", "KVFIX_BATCH_RECORDS": "1"}
            | {"KVFIX_TEST_STOP_AT": f"batch:{n}"},
        )
        kill_when_stopped(proc)
        with open_read_only(db) as opened:
            [s] = scan_database(opened).streams
        assert s.layout == "mixed"  # part moved: records in both layouts, the group records still legacy
        assert s.records["legacy_group"] == 2 and s.records["prefixed_group"] == 0
        plan = run_kvfix("migrate", db, "--dry-run", "--format", "json", env=env)
        assert plan.returncode == 0, plan.stderr
        assert '"unresolved_conflicts":0' in plan.stdout and "finishing a move" in plan.stdout
    done = run_kvfix("migrate", db, "--yes", "--no-backup", env=env)
    assert done.returncode == 0, done.stderr
    with open_read_only(db) as opened:
        [s] = scan_database(opened).streams
    assert s.layout == "prefixed" and s.metadata.stream.group_number == 2
    assert sorted(g.name for g in s.groups.values()) == [b"audit", b"billing"]
    assert all(len(g.pel) == 1500 and len(g.consumers) == 2 for g in s.groups.values())
