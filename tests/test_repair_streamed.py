"""check --repair streams: planning, writing and verifying hold one stream's check at a time.

What the CLI writes equals what the library builds from every stream kept (the plan and
the JSON report), and its memory does not grow with the number of streams to repair.
"""

from __future__ import annotations

import io
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
from conftest import run_cli, unpack

from kvfix.analysis.check import check_database
from kvfix.analysis.invariants import REPAIRABLE
from kvfix.analysis.repair_plan import plan_stream_repair
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import ConsumerValue, PelValue
from kvfix.render.check_report import check_json, repair_json
from kvfix.render.jsonout import dump
from kvfix.store.opening import open_read_only
from kvfix.synth import SynthDB, SynthStream, group_value


def damaged(path: Path, n: int) -> Path:
    """``n`` streams: every third with a wrong size, every fifth with a group whose counters are
    wrong, every seventh with an entry value that does not decode (not repairable)."""
    streams = []
    for i in range(n):
        s = SynthStream(b"s%05d" % i, entries=[(StreamId(1000 + j, 0), (b"f", b"v")) for j in range(3)])
        if i % 3 == 0:
            s.size = 7
        if i % 5 == 0:
            s.groups.append(("prefixed", b"g", group_value(StreamId(1000, 0), pending=4)))
            s.pel.append(("prefixed", b"g", StreamId(1000, 0), PelValue(1, 1, b"c")))
            s.consumers.append(("prefixed", b"g", b"c", ConsumerValue(1, 1, 3)))
        if i % 7 == 0:
            s.raw_records.append((StreamId(1001, 5).encode(), b"\xff\xff"))
        streams.append(s)
    return SynthDB(streams=streams).write(path)


def _library(path: Path, dry_run: bool = True) -> str:
    """The dry run's JSON as the library builds it from a check that kept every stream."""
    with open_read_only(path) as db:
        report = check_database(db)
    plans = [plan_stream_repair(sc) for sc in report.streams]
    info = {"dry_run": dry_run, "planned": repair_json(plans), "written_streams": 0, "backup": None}
    out = io.StringIO()
    dump(check_json(report, info, records=False, lazy=False), out, pretty=False)
    return out.getvalue()


@pytest.mark.parametrize("n", [1, 40, 300])
def test_a_streamed_dry_run_equals_the_kept_one(tmp_path, n):
    path = damaged(tmp_path / "db", n)
    res = run_cli("check", path, "--repair", "--dry-run", "--format", "json")
    assert res.exit_code == 1, res.output
    assert res.stdout == _library(path)
    doc = json.loads(res.stdout)
    assert len(doc["repair"]["planned"]) == len([i for i in range(n) if i % 3 == 0 or i % 5 == 0 or i % 7 == 0])


def test_a_streamed_repair_writes_the_saved_plan_and_reports_the_check_after(tmp_path):
    path = damaged(tmp_path / "db", 300)
    plan = tmp_path / "repair.jsonl"
    assert run_cli("check", path, "--repair", "--dry-run", "--save-plan", plan).exit_code == 1
    lines = [json.loads(line) for line in plan.read_text().splitlines()[1:]]
    puts = {(line["cf"], line["key_hex"], line["value_hex"]) for line in lines}
    res = run_cli("check", path, "--repair", "--plan", plan, "--yes", "--no-backup", "--format", "json")
    assert res.exit_code == 1, res.output  # the undecodable entry values stay
    doc = json.loads(res.stdout)
    assert doc["repair"]["written_streams"] == len({line["stream"] for line in lines}) > 100
    assert doc["repair"]["verified"] is True
    written = {(w["cf"], w["key_hex"], w["value_hex"]) for p in doc["repair"]["planned"] for w in p["writes"]}
    assert written == puts
    with open_read_only(path) as db:
        assert all(db.get(cf, bytes.fromhex(k)) == bytes.fromhex(v) for cf, k, v in puts)
    assert not {f["code"] for f in doc["findings"]} & REPAIRABLE
    assert {f["code"] for f in doc["findings"]} >= {"BAD_VALUE_LENGTH"}
    after = json.loads(run_cli("check", path, "--repair", "--dry-run", "--format", "json").stdout)
    assert all(not p["writes"] for p in after["repair"]["planned"])


def _peak(path: Path, *args: str) -> int:
    tracemalloc.start()
    try:
        res = run_cli("check", path, "--repair", *args)
        assert res.exit_code == 1, res.output
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_streams_to_repair(tmp_path):
    """Ten times the streams to repair, about the same peak: nothing is held per stream (a
    check that kept its streams grew by about 6 KB each, 16 MB more here)."""
    small, large = damaged(tmp_path / "small", 300), damaged(tmp_path / "large", 3000)
    for args in (("--dry-run",), ("--yes", "--no-backup")):
        base = _peak(small, *args)
        grown = _peak(large, *args) - base
        assert grown < 3_000_000, (args, base, grown)


def test_a_fixture_repairs_nothing_and_says_so(tmp_path):
    path = unpack("legacy-basic", tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    res = run_cli("check", copy, "--repair", "--yes", "--no-backup")
    assert "Repair plan: nothing to do" in res.stdout
