"""migrate's safety rails: live databases, foreign files, pinned write options, Ctrl-C, confirmation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import dump_all, run_cli, run_kvfix, tree_digest, unpack

from kvfix.cli.writing import confirm_or_refuse
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import GroupKey, GroupValue, encode_subkey
from kvfix.errors import WriteRefused
from kvfix.migrations import PlanOptions, for_target, run
from kvfix.migrations.layout import Collected, stream_records
from kvfix.migrations.run import MigrationJob, execute, write_units
from kvfix.progress import Progress
from kvfix.signals import SIGNALS
from kvfix.store.files import ROCKSDB_FILE, fingerprint, foreign_files
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only, open_writable
from kvfix.store.paths import DataDir, backup_target, resolve


def run_plan(d, migration, plan, options):
    """What ``kvfix migrate --yes --no-backup`` runs after its plan (library form)."""
    data = resolve(d)
    with HeldLock(data.db) as lock:
        job = MigrationJob(migration, plan, options)
        return execute(data, lock, job, planned_files=fingerprint(data.db), backup_to=None)


HOLD = """
import sys, time
from rocksdict import Rdict, Options
path = sys.argv[1]
cfs = Rdict.list_cf(path, Options(raw_mode=True))
db = Rdict(path, options=Options(raw_mode=True), column_families={c: Options(raw_mode=True) for c in cfs})
print("open", flush=True)
time.sleep(60)
"""


def test_locked_database_is_refused_and_untouched(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(d / "db")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        # the holder's own info log may still grow: it is RocksDB's, not kvfix's
        before = {k: v for k, v in tree_digest(d / "db").items() if not k.startswith("LOG")}
        for args in ((), ("--dry-run",), ("--list",)):
            proc = run_kvfix("migrate", d, "--yes", *args)
            assert proc.returncode == 2
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and "LOCK" in lines[0] and "stop the server" in lines[0]
            assert str(holder.pid) in lines[0]
        assert {k: v for k, v in tree_digest(d / "db").items() if not k.startswith("LOG")} == before
        assert not list(tmp_path.glob("*.kvfix-backup-*"))
    finally:
        holder.kill()
        holder.wait()


def test_write_leaves_only_rocksdb_files(tmp_path):
    d = unpack("legacy-cluster", tmp_path)
    names = {p.name for p in (d / "db").iterdir()}
    (d / "db" / "rocksdict-config.json").write_text('{"raw_mode":true,"prefix_extractors":{}}')  # a killed run's
    result = run_cli("migrate", d, "--yes")
    assert result.exit_code == 0, result.output
    added = {p.name for p in (d / "db").iterdir()} - names
    assert added and all(ROCKSDB_FILE.match(n) for n in added), added
    assert not [n for n in os.listdir(d / "db") if n.startswith("LOG") or n == "rocksdict-config.json"]
    assert foreign_files(d / "db", names) == []
    # the backup is beside the Kvrocks dir, never inside it
    assert [p.name for p in tmp_path.iterdir() if ".kvfix-backup-" in p.name]
    assert not [p for p in d.iterdir() if ".kvfix-backup-" in p.name]


def test_written_sst_files_use_the_pinned_format(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    names = {p.name for p in (d / "db").iterdir()}
    assert run_cli("migrate", d, "--yes", "--no-backup").exit_code == 0
    new_options = sorted(n for n in os.listdir(d / "db") if n.startswith("OPTIONS-") and n not in names)
    assert new_options
    text = (d / "db" / new_options[-1]).read_text()
    assert "format_version=5" in text
    assert "compression=kNoCompression" in text
    assert "checksum=kCRC32c" in text


def test_migrate_runs_no_compaction_and_keeps_the_servers_sst_files(tmp_path):
    """No compaction while kvfix writes: it would rewrite the server's files with kvfix's options.

    The OPTIONS file of kvfix's session records the setting (what can fail here: a
    compaction of this small database is usually cancelled by the close before it
    replaces a file); every SST file the server wrote is still there, unchanged in size.
    """
    d = unpack("legacy-basic", tmp_path)
    with open_writable(d) as db:  # five level-0 files in one family: RocksDB's default trigger is 4
        for i in range(5):
            db.write([("default", b"filler-%d-%d" % (i, j), b"x" * 100) for j in range(50)])
            db.flush_all()
    before = {p.name: p.stat().st_size for p in (d / "db").glob("*.sst")}
    assert run_cli("migrate", d, "--yes", "--no-backup").exit_code == 0
    after = {p.name: p.stat().st_size for p in (d / "db").glob("*.sst")}
    assert before.items() <= after.items()
    options = max((p for p in (d / "db").glob("OPTIONS-*")), key=lambda p: int(p.name.split("-")[1]))
    assert "disable_auto_compactions=true" in options.read_text()


def test_no_terminal_and_no_yes_refuses(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    before = tree_digest(tmp_path)
    result = run_cli("migrate", d)  # CliRunner's stdin is not a terminal
    assert result.exit_code == 2 and "--yes" in result.stderr
    assert tree_digest(tmp_path) == before
    with pytest.raises(WriteRefused):
        confirm_or_refuse("go?", yes=False)
    confirm_or_refuse("go?", yes=True)


def test_default_backup_path_is_beside_the_data_directory(tmp_path):
    data = DataDir("kv", tmp_path / "kv" / "db")
    p = backup_target(data, None)
    assert p.parent == tmp_path and p.name.startswith("kv.kvfix-backup-") and p.name.endswith("Z")
    p.mkdir()
    assert backup_target(data, None) != p


def test_interrupt_finishes_the_current_batch_and_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "BATCH_RECORDS", 1)  # one stream per batch
    d = unpack("legacy-namespaces", tmp_path)
    migration = for_target("prefixed")
    with open_read_only(d) as db:
        plan = migration.plan(db, PlanOptions())
        planned = list(migration.stream_plans(db, PlanOptions()))
    assert plan.counts["streams_to_migrate"] == len(planned) == 2

    class CtrlCAfterFirst(Progress):
        def update(self, **kw):
            if kw.get("streams") == 1:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)

    written = migration.written()
    with SIGNALS.installed(), open_writable(d) as db:
        applied = write_units(db, migration.units(db, PlanOptions(), written), CtrlCAfterFirst(), 2)
    assert applied.interrupted and applied.done == 1 and applied.total == 2
    written.done = applied.done
    with open_read_only(d) as db:
        assert migration.verify(db, plan, written) == []
        again = list(migration.stream_plans(db, PlanOptions()))
    assert [(s.namespace, s.key) for s in again] == [(planned[1].namespace, planned[1].key)]


def test_apply_units_writes_each_unit_atomically(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    with open_writable(d) as db:
        applied = write_units(
            db, [[("default", b"k1", b"v1"), ("default", b"k1", None)], [("default", b"k2", b"v2")]], Progress(), 2
        )
    assert applied.complete
    rows = dump_all(d)["default"]
    assert b"k1" not in rows and rows[b"k2"] == b"v2"


def test_interrupted_cli_run_says_how_far_it_got(tmp_path):
    from kvfix.synth import SynthDB, SynthStream, group_value

    streams = [SynthStream(b"s%05d" % i, groups=[("legacy", b"g", group_value())]) for i in range(3000)]
    db = SynthDB(streams=streams).write(tmp_path / "db")
    env = {**os.environ, "KVFIX_NO_PROGRESS": "1", "KVFIX_BATCH_RECORDS": "1", "KVFIX_TEST_STOP_AT": "batch:17"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvfix", "migrate", str(db), "--yes", "--backup-dir", str(tmp_path / "bk")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    _, status = os.waitpid(proc.pid, os.WUNTRACED)  # stopped itself after its 17th batch
    assert os.WIFSTOPPED(status)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 130, err
    done = int(err.split("(Ctrl-C): ")[1].split(" of ")[0])
    assert done == 17 and "of 3000 streams written and verified" in err and "run the same command again" in err
    from kvfix.analysis.scan import scan_database

    with open_read_only(db) as opened:
        layouts = [s.layout for s in scan_database(opened).streams]
    assert layouts.count("prefixed") == done and layouts.count("legacy") == 3000 - done


def _migrated(tmp_path):
    """legacy-basic migrated to prefixed: (directory, migration, plan, what was written, the stream plans)."""
    d = unpack("legacy-basic", tmp_path)
    migration = for_target("prefixed")
    with open_read_only(d) as db:
        plan = migration.plan(db, PlanOptions())
        planned = list(migration.stream_plans(db, PlanOptions()))
    written = migration.written()
    with open_writable(d) as db:
        units = migration.units(db, PlanOptions(), written)
        assert write_units(db, units, Progress(), plan.counts["streams_to_migrate"]).complete
    with open_read_only(d) as db:
        assert migration.verify(db, plan, written) == []
    return d, migration, plan, written, planned


def _tamper(d, put: dict[bytes, bytes] | None = None, delete: tuple[bytes, ...] = ()) -> None:
    puts = [("stream", k, v) for k, v in (put or {}).items()]
    with open_writable(d) as db:
        db.write([*puts, *(("stream", k, None) for k in delete)])


@pytest.mark.parametrize("damage", ["value", "missing", "legacy_back", "foreign_group", "other_stream"])
def test_verify_reports_every_kind_of_difference(tmp_path, damage):
    d, migration, plan, written, planned = _migrated(tmp_path)
    sp = planned[0]
    rw = next(sp.rewrites())
    if damage == "value":
        _tamper(d, put={rw.new_key: rw.value + b"x"})
        expect = "group records differ from the plan (0 prefixed records found, 1 planned, 1 undecodable"
    elif damage == "missing":
        _tamper(d, delete=(rw.new_key,))
        expect = "group records differ from the plan (0 prefixed records found, 1 planned, or"
    elif damage == "legacy_back":
        _tamper(d, put={rw.old_key: rw.value})
        expect = "1 legacy records left"
    elif damage == "foreign_group":
        foreign = sp.prefix + encode_subkey(GroupKey("prefixed", b"never-planned"))
        _tamper(d, put={foreign: GroupValue(0, 0, StreamId(0, 0), 0, 0).encode()})
        expect = "group records differ from the plan (2 prefixed records found, 1 planned, or"
    else:  # a legacy record appears in a stream the plan did not touch
        moved = {p.prefix for p in planned}
        with open_read_only(d) as db:
            untouched = [s for s in stream_records(db, None, Collected(False, 0)) if s.prefix not in moved]
        assert untouched, "legacy-basic has streams without group records"
        legacy = untouched[0].prefix + encode_subkey(GroupKey("legacy", b"stray"))
        _tamper(d, put={legacy: GroupValue(0, 0, StreamId(0, 0), 0, 0).encode()})
        expect = "legacy records in a live stream"
    with open_read_only(d) as db:
        problems = migration.verify(db, plan, written)
    assert problems and any(expect in p for p in problems), problems


def test_state_token_is_the_same_read_only_and_read_write(fixture_dir):
    """execute() trusts a plan when the token is unchanged, so it must not move by itself."""
    with open_read_only(fixture_dir) as db:
        first = db.state()
    with open_writable(fixture_dir) as db:
        assert db.state() == first
    with open_read_only(fixture_dir) as db:
        assert db.state() == first
    _tamper(fixture_dir, put={b"\x00unrelated": b"v"})
    with open_read_only(fixture_dir) as db:
        assert db.state() != first


def test_execute_replans_after_an_unrelated_write_and_goes_ahead(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    migration = for_target("prefixed")
    with open_read_only(d) as db:
        plan = migration.plan(db, PlanOptions())
    with open_writable(d) as db:  # a write that leaves the plan as it is
        db.write([("default", b"unrelated", b"v")])
    result = run_plan(d, migration, plan, PlanOptions())
    assert result.verified and result.applied.complete


def test_execute_refuses_a_plan_the_database_no_longer_matches(tmp_path):
    d = unpack("legacy-basic", tmp_path)
    migration = for_target("prefixed")
    with open_read_only(d) as db:
        plan = migration.plan(db, PlanOptions())
    with open_read_only(d) as db:
        sp = next(migration.stream_plans(db, PlanOptions()))
    late = sp.prefix + encode_subkey(GroupKey("legacy", b"created-after-the-plan"))
    _tamper(d, put={late: GroupValue(0, 0, StreamId(0, 0), 0, 0).encode()})
    before = dump_all(d)
    with pytest.raises(WriteRefused, match="changed since it was planned"):
        run_plan(d, migration, plan, PlanOptions())
    assert dump_all(d) == before


def test_small_streams_share_a_synced_batch_and_each_stays_whole(tmp_path, monkeypatch):
    """Many small streams: one sync per batch of whole streams, not one per stream."""
    from kvfix.synth import SynthDB, SynthStream, group_value

    streams = [SynthStream(b"s%04d" % i, groups=[("legacy", b"g", group_value())]) for i in range(500)]
    d = SynthDB(streams=streams).write(tmp_path / "db")
    migration = for_target("prefixed")
    with open_read_only(d) as db:
        plan = migration.plan(db, PlanOptions())
        groups = list(run.batches(migration.units(db, PlanOptions(), migration.written()), 120))
    assert sum(n for _, n in groups) == 500 and len(groups) == 9  # 2 ops a stream: 60 streams a batch
    assert [len(ops) for ops, _ in groups[:-1]] == [120] * 8
    writes = []

    class Counting(Progress):
        def update(self, **kw):
            writes.append(kw["streams"])

    monkeypatch.setattr(run, "BATCH_RECORDS", 120)
    written = migration.written()
    with open_writable(d) as db:
        applied = write_units(db, migration.units(db, PlanOptions(), written), Counting(), 500)
    assert applied.complete and writes == [60 * i for i in range(1, 9)] + [500]
    assert written.sha.hexdigest() == plan.writes_sha256
    with open_read_only(d) as db:
        assert migration.verify(db, plan, written) == []


@pytest.mark.parametrize("damage", [None, "value", "legacy_back"])
def test_verify_reads_again_what_its_sums_cannot_tell(tmp_path, damage):
    """Entries at a small id (the legacy region) and at ms = 2^64-1 (the prefixed one) are no
    group records: the raw sums of an upgrade's verification miss, the stream is read again
    and classified, and only real differences are problems."""
    from kvfix.codec.ints import U64_MAX
    from kvfix.codec.stream import PelValue
    from kvfix.synth import SynthDB, SynthStream, group_value

    s = SynthStream(b"edge", entries=[(StreamId(1, 1), (b"f", b"v")), (StreamId(U64_MAX, 3), (b"f", b"v"))])
    s.groups.append(("legacy", b"g", group_value(StreamId(1, 1), pending=1)))
    s.pel.append(("legacy", b"g", StreamId(1, 1), PelValue(1, 1, b"c")))
    d = SynthDB(streams=[s]).write(tmp_path / "db")
    migration = for_target("prefixed")
    with open_read_only(d) as db:
        plan = migration.plan(db, PlanOptions())
        sp = next(iter(migration.stream_plans(db, PlanOptions())))
    written = migration.written()
    with open_writable(d) as db:
        assert write_units(db, migration.units(db, PlanOptions(), written), Progress(), 1).complete
    rw = next(sp.rewrites())
    if damage == "value":
        _tamper(d, put={rw.new_key: rw.value + b"x"})
    elif damage == "legacy_back":
        _tamper(d, put={rw.old_key: rw.value})
    with open_read_only(d) as db:
        problems = migration.verify(db, plan, written)
    expect = {None: None, "value": "group records differ from the plan", "legacy_back": "1 legacy records left"}
    assert problems == [] if damage is None else any(expect[damage] in p for p in problems), problems
