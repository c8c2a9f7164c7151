"""The server bugs check exists for, reproduced on synthetic data; pure invariants; repair safety."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from check_helpers import NS, check_json, codes, read_meta, repair
from conftest import run_cli, tree_digest, unpack

from kvfix.analysis.invariants import CHECK_CODES, StreamFacts, invariant_findings
from kvfix.analysis.model import ConsumerInfo, GroupInfo, PelInfo, StreamReport
from kvfix.codec.metadata import KeyType, Metadata, StreamId, StreamTail
from kvfix.codec.stream import LEGACY, PREFIXED, ConsumerValue, PelValue
from kvfix.store.opening import open_read_only
from kvfix.synth import BASE_VERSION, SynthDB, SynthStream, group_value

T = 1_795_775_557_000


def ids(n: int, ms: int = T) -> list[StreamId]:
    return [StreamId(ms, i) for i in range(n)]


def xgroup_destroy_trace(path):
    """What XGROUP DESTROY's range deletion left on real servers (kvrocks-format.md §8):
    the metadata still says size 5 and group_number 1, no entry and no group record is left."""
    tail = StreamTail(
        last_generated_id=StreamId(T, 4),
        recorded_first_entry_id=StreamId(T, 0),
        first_entry_id=StreamId(T, 0),
        last_entry_id=StreamId(T, 4),
        entries_added=5,
        group_number=1,
    )
    meta = Metadata(KeyType.STREAM, True, 0, BASE_VERSION, 5, stream=tail)
    return SynthDB(keys=[(NS, b"destroyed", meta)]).write(path)


def xclaim_trace(path):
    """XCLAIM moved 1-1 from c1 to c2 but left c1's pending counter at 2."""
    e = ids(3)
    s = SynthStream(
        b"claimed",
        entries=[(i, (b"f", b"v")) for i in e],
        groups=[(PREFIXED, b"g", group_value(e[1], consumers=2, pending=2))],
        consumers=[(PREFIXED, b"g", b"c1", ConsumerValue(2, T, T)), (PREFIXED, b"g", b"c2", ConsumerValue(1, T, T))],
        pel=[(PREFIXED, b"g", e[0], PelValue(T, 1, b"c1")), (PREFIXED, b"g", e[1], PelValue(T, 1, b"c2"))],
    )
    return SynthDB(streams=[s]).write(path)


def test_xgroup_destroy_range_deletion(tmp_path):
    path = xgroup_destroy_trace(tmp_path / "db")
    code, report = check_json(path)
    assert code == 1
    assert codes(report) == {
        "STREAM_SIZE_MISMATCH",
        "STREAM_FIRST_ID_MISMATCH",
        "STREAM_LAST_ID_MISMATCH",
        "GROUP_COUNT_MISMATCH",
    }
    size = next(f for f in report["findings"] if f["code"] == "STREAM_SIZE_MISMATCH")
    assert size["details"]["expected"] == 0 and size["details"]["found"] == 5
    rc, after = repair(path)
    assert rc == 0 and codes(after) == set()
    with open_read_only(path) as db:
        meta = read_meta(db, b"destroyed")
    assert meta.size == 0 and meta.stream.group_number == 0
    assert meta.stream.first_entry_id == meta.stream.last_entry_id == StreamId(0, 0)
    assert meta.stream.last_generated_id == StreamId(T, 4), "ids never move back: XADD * must not reuse them"
    assert repair(path, "--dry-run")[1]["repair"]["planned"] == []


def test_xclaim_leaves_previous_owner_pending_too_high(tmp_path):
    path = xclaim_trace(tmp_path / "db")
    code, report = check_json(path)
    assert code == 1 and codes(report, "warning") == {"CONSUMER_PENDING_MISMATCH"}
    [f] = [f for f in report["findings"] if f["code"] == "CONSUMER_PENDING_MISMATCH"]
    assert f["details"] == {"expected": 1, "found": 2, "consumer": "c1", "group": "g", "layout": "prefixed"}
    rc, after = repair(path)
    assert rc == 0 and codes(after) == {"ROLLBACK_HAZARD"}  # info: prefixed groups, as on 2.10.1
    assert [w["change"] for w in after["repair"]["planned"][0]["writes"]] == [
        "consumer c1 of g (prefixed): pending_number 2 -> 1"
    ]


def test_32bit_metadata_stays_32bit(tmp_path):
    s = SynthStream(b"old", entries=[(i, (b"f", b"v")) for i in ids(2)], is_64bit=False, size=9)
    path = SynthDB(streams=[s]).write(tmp_path / "db")
    assert codes(check_json(path)[1]) == {"STREAM_SIZE_MISMATCH"}
    repair(path)
    with open_read_only(path) as db:
        meta = read_meta(db, b"old")
    assert not meta.is_64bit and meta.size == 2


# --- pure invariants --------------------------------------------------------------------------


Z = StreamId(0, 0)


def report_of(size=0, first=Z, last=Z, lgid=Z, gn=0, max_deleted=Z):
    tail = StreamTail(lgid, first, max_deleted, first, last, size, gn)
    meta = Metadata(KeyType.STREAM, True, 0, 1, size, stream=tail)
    return StreamReport(NS, b"s", None, 1, meta, records=Counter())


def facts_of(n: int, first=None, last=None) -> StreamFacts:
    f = StreamFacts()
    if n:
        f.add_entries(n, first, last)
    return f


def test_group_number_counts_both_layouts():
    """upgraded-mixed: billing in both layouts + audit + late = 4, and Kvrocks says 4."""
    rep = report_of(gn=3)
    for lay, name in ((LEGACY, b"billing"), (PREFIXED, b"billing"), (PREFIXED, b"late")):
        rep.groups[(lay, name)] = GroupInfo(name, lay, group_value())
    assert invariant_findings(rep, facts_of(0)) == []
    rep.groups[(LEGACY, b"gone")] = GroupInfo(b"gone", LEGACY, None, {b"c": ConsumerInfo(b"c", ConsumerValue(0, 0, 0))})
    assert [f.code for f in invariant_findings(rep, facts_of(0))] == ["GROUP_RECORD_MISSING"]


def test_max_deleted_may_equal_last_generated():
    """XDEL of the newest entry makes max_deleted_entry_id == last_generated_id: legal."""
    a, b = StreamId(T, 0), StreamId(T, 1)
    rep = report_of(size=1, first=a, last=a, lgid=b, max_deleted=b)
    assert invariant_findings(rep, facts_of(1, a, a)) == []
    rep = report_of(size=1, first=a, last=a, lgid=b, max_deleted=StreamId(T, 2))
    assert [f.code for f in invariant_findings(rep, facts_of(1, a, a))] == ["STREAM_ID_ORDER"]


def test_expired_streams_are_not_checked():
    rep = report_of(size=5)
    rep.expired = True
    assert invariant_findings(rep, facts_of(0)) == []
    rep.expired = False
    assert [f.code for f in invariant_findings(rep, facts_of(0))] == ["STREAM_SIZE_MISMATCH"]


def test_pel_owner_missing_and_deleted_entry():
    a = StreamId(T, 0)
    rep = report_of(size=1, first=a, last=a, lgid=a, gn=1)
    g = GroupInfo(b"g", PREFIXED, group_value(a, consumers=0, pending=1))
    g.pel.append(PelInfo(a, PelValue(T, 1, b"nobody")))
    rep.groups[(PREFIXED, b"g")] = g
    facts = facts_of(1, a, a)
    facts.deleted_pel_ids[(PREFIXED, b"g")] = [a]
    found = {f.code: f for f in invariant_findings(rep, facts)}
    assert set(found) == {"PEL_OWNER_MISSING", "PEL_ENTRY_DELETED"}
    assert found["PEL_ENTRY_DELETED"].severity == "info"
    assert all(CHECK_CODES[c][0] == f.severity for c, f in found.items())


# --- repair safety -----------------------------------------------------------------------------


def test_repair_refuses_without_confirmation_and_dry_run_writes_nothing(tmp_path):
    path = xclaim_trace(tmp_path / "db")
    before = tree_digest(path)
    res = run_cli("check", path, "--repair", "--format", "json")  # no --yes, no terminal
    assert res.exit_code == 2 and "--yes" in res.output
    res = run_cli("check", path, "--repair", "--dry-run", "--format", "json")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["repair"]["planned"][0]["writes"]
    assert tree_digest(path) == before


def test_repair_takes_a_checkpoint_backup(tmp_path):
    path = xclaim_trace(tmp_path / "db")
    res = run_cli("check", path, "--repair", "--yes", "--backup-dir", tmp_path / "bak", "--format", "json")
    assert res.exit_code == 0, res.output
    [backup] = (tmp_path / "bak").iterdir()  # --backup-dir is where the backup goes
    assert json.loads(res.stdout)["repair"]["backup"] == str(backup)
    _, old = check_json(backup)
    assert codes(old, "warning") == {"CONSUMER_PENDING_MISMATCH"}, "the backup holds the data as it was"
    assert codes(check_json(path)[1], "warning") == set()


HOLD_LOCK = (
    "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.lockf(f, fcntl.LOCK_EX); "
    "print('ok', flush=True); time.sleep(60)"
)


@pytest.mark.parametrize("dry_run", [False, True])
def test_repair_refuses_a_locked_database(tmp_path, dry_run):
    path = unpack("prefixed-basic", tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLD_LOCK,
            str(path / "db" / "LOCK"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        args = ["--dry-run"] if dry_run else ["--yes"]
        res = run_cli("check", path, "--repair", *args)
        assert res.exit_code == 2 and "held by process" in res.output
    finally:
        holder.kill()
        holder.wait()
