"""--live: read-only commands on a running server's directory (a RocksDB secondary instance).

A second process holds the LOCK as a server does and keeps writing, flushing and
compacting a Kvrocks-shaped database while kvfix runs each live command repeatedly.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_kvfix

from kvfix.codec.metadata import StreamId
from kvfix.store.files import ROCKSDB_FILE
from kvfix.synth import SynthDB, SynthStream, group_value

STREAMS = 40
INITIAL = 5


def build(path: Path) -> Path:
    streams = []
    for i in range(STREAMS):
        s = SynthStream(b"s%03d" % i, entries=[(StreamId(1000 + j, 0), (b"f", b"v")) for j in range(INITIAL)])
        if i % 4 == 0:
            s.groups.append(("prefixed", b"g", group_value(StreamId(1000, 0))))
        streams.append(s)
    return SynthDB(streams=streams).write(path)


class Writer:
    def __init__(self, db: Path, tmp: Path) -> None:
        self.stop = tmp / "stop"
        script = Path(__file__).with_name("live_writer.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(db), str(self.stop)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "open"

    def wait_rounds(self, n: int) -> None:
        for line in self.proc.stdout:
            if line.startswith("round ") and int(line.split()[1]) >= n:
                return

    def finish(self) -> None:
        self.stop.touch()
        self.proc.stdout.read()
        self.proc.wait(timeout=120)


def digests(db: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in db.iterdir() if p.is_file()}


def consistent(sizes: list[int]) -> bool:
    """Sizes, in the writer's key order, of some prefix of its history: r+1 rounds for the
    first j streams and r for the rest."""
    return all(a - b in (0, 1) for a, b in itertools.pairwise(sizes)) and sizes[0] - sizes[-1] in (0, 1)


@pytest.fixture
def live(tmp_path):
    db = build(tmp_path / "db")
    w = Writer(db, tmp_path)
    try:
        w.wait_rounds(3)
        yield db, w
    finally:
        w.finish()


def test_live_commands_read_a_consistent_view_and_write_nothing(live):
    db, writer = live
    # the writer's own rocksdict-config.json (written at its open), IDENTITY, OPTIONS: kvfix must change none
    untouched = {
        n: h for n, h in digests(db).items() if n in ("IDENTITY", "rocksdict-config.json") or n.startswith("OPTIONS-")
    }
    assert "rocksdict-config.json" in untouched
    for _ in range(2):
        scan = run_kvfix("scan", db, "--live", "--format", "json")
        assert scan.returncode in (0, 1), scan.stderr
        doc = json.loads(scan.stdout)
        sizes = [s["size"] for s in doc["streams"]]
        assert len(sizes) == STREAMS and min(sizes) >= INITIAL and consistent(sizes), sizes
        live_view = [f for f in doc["findings"] if f["code"] == "LIVE_VIEW"]
        assert len(live_view) == 1 and int(live_view[0]["details"]["sequence"]) > 0
        check = run_kvfix("check", db, "--live", "--format", "json")
        assert check.returncode in (0, 1), check.stderr
        codes = {f["code"] for f in json.loads(check.stdout)["findings"]}
        assert not codes & {"STREAM_SIZE_MISMATCH", "STREAM_LAST_ID_MISMATCH", "STREAM_ID_ORDER"}, codes
        stats = run_kvfix("stats", db, "--live", "--format", "json")
        assert stats.returncode == 0, stats.stderr
        assert json.loads(stats.stdout)["total"]["keys"] == STREAMS
        inspect = run_kvfix("inspect", db, "s007", "--live", "--format", "json")
        assert inspect.returncode == 0, inspect.stderr
        assert json.loads(inspect.stdout)["notes"][0].startswith("taken live, as of sequence number")
        writer.wait_rounds(int(doc["streams"][0]["size"]) - INITIAL + 2)  # let files change between runs
    names = set(os.listdir(db))
    assert all(ROCKSDB_FILE.match(n) or n.startswith("LOG") or n == "rocksdict-config.json" for n in names), names
    now = digests(db)
    assert {n: now.get(n) for n in untouched} == untouched  # what the writer did not change, byte for byte


def test_without_live_a_held_lock_is_refused_naming_live(live):
    db, _ = live
    res = run_kvfix("scan", db)
    assert res.returncode == 2 and "--live" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_writes_never_run_on_a_live_directory(live):
    db, _ = live
    before = set(os.listdir(db))
    migrate = run_kvfix("migrate", db, "--yes", "--to", "legacy")
    assert migrate.returncode == 2 and "LOCK" in migrate.stderr and "--live" not in migrate.stderr
    repair = run_kvfix("check", db, "--repair", "--live", "--yes")
    assert repair.returncode == 2 and "live" in repair.stderr
    assert run_kvfix("migrate", db, "--live").returncode == 2  # no such option
    assert not [n for n in set(os.listdir(db)) - before if ".kvfix" in n or "backup" in n]
