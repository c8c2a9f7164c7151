"""Crash safety: SIGKILL real ``kvfix migrate`` processes at random points of a large run.

One WriteBatch (synced) per stream means every stream is wholly in one layout after any
kill, and a re-run finishes the job.  Runs in the normal suite (marked slow).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_kvfix

from kvfix.analysis.scan import scan_database
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import ConsumerValue, PelValue
from kvfix.store.opening import open_read_only
from kvfix.synth import SynthDB, SynthStream, group_value

STREAMS = 3000
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


def start(path: Path, to: str) -> subprocess.Popen:
    env = {**os.environ, "KVFIX_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "kvfix", "migrate", str(path), "--yes", "--no-backup", "--to", to, "--format", "json"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


@pytest.mark.slow
def test_sigkill_at_random_points_keeps_every_stream_in_one_layout(tmp_path):
    db = build(tmp_path / "db")
    rng = random.Random(20240716)
    t0 = time.monotonic()
    full = start(db, "prefixed")
    assert full.wait(timeout=120) == 0, full.stderr.read()
    span = time.monotonic() - t0
    assert layouts(db) == {"prefixed": STREAMS}
    target, other = "legacy", "prefixed"  # go back and forth, killing each run somewhere
    kills = mixed_progress = 0
    deadline = time.monotonic() + 100
    while kills < KILLS and time.monotonic() < deadline:
        proc = start(db, target)
        time.sleep(rng.uniform(0.2, 0.9 * span))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read()
            target, other = other, target
        seen = layouts(db)
        assert set(seen) <= {"legacy", "prefixed"}, seen  # never mixed, never half-moved
        assert sum(seen.values()) == STREAMS
        mixed_progress += len(seen) == 2
    assert kills >= 20, f"only {kills} kills landed mid-run"
    assert mixed_progress, "no kill landed after some streams were written"
    done = run_kvfix("migrate", db, "--yes", "--no-backup")
    assert done.returncode == 0, done.stderr
    assert layouts(db) == {"prefixed": STREAMS}
    assert not (db / "rocksdict-config.json").exists()  # a killed run's leftover is removed by the next
    again = run_kvfix("migrate", db, "--yes", "--no-backup", "--format", "json")
    assert again.returncode == 0 and '"streams_to_migrate": 0' in again.stdout
