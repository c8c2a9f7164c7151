"""A real migrate writes what it planned from a spool of its writes, not from a second walk.

The spool (kvfix.migrations.spool) is an optimisation only: these tests check that its
writes are byte for byte those planned again, that it is not used when the database
changed since planning, and that a spool given up (nearly full disk, failed write) or
unreadable never costs data: the writes are planned again, or stop before a write.
"""

from __future__ import annotations

import pytest
from conftest import dump_all, run_cli
from test_migrate_streamed import big_stream, small_streams

from kvfix.errors import ReadError
from kvfix.migrations import PlanOptions, for_target, layout_records, spool
from kvfix.migrations.base import Split
from kvfix.migrations.run import MigrationJob, execute
from kvfix.migrations.spool import WriteSpool
from kvfix.store.database import Database
from kvfix.store.files import fingerprint
from kvfix.store.lock import HeldLock
from kvfix.store.opening import open_read_only, open_read_write
from kvfix.store.paths import resolve
from kvfix.synth import SynthDB


def _no_second_walk(*_args, **_kw):
    raise AssertionError("planned again")


def _planned(d, sp_spool: WriteSpool):
    """(migration, plan, data, files) of a real run's planning, its writes spooled."""
    migration = for_target("prefixed")
    data = resolve(d)
    lock = HeldLock(data.db)
    lock.__enter__()
    files = fingerprint(data.db)
    with open_read_only(data, lock=lock) as db:
        plan = migration.plan(db, PlanOptions(), on_stream=lambda sp: sp_spool.add(migration.unit(sp)))
    sp_spool.finish()
    return migration, plan, data, lock, files


def _run(d, sp_spool: WriteSpool, monkeypatch, replan_allowed: bool):
    migration, plan, data, lock, files = _planned(d, sp_spool)
    try:
        if not replan_allowed:
            monkeypatch.setattr(type(migration), "stream_plans", _no_second_walk)
        job = MigrationJob(migration, plan, PlanOptions(), sp_spool)
        return execute(data, lock, job, planned_files=files, backup_to=None)
    finally:
        lock.__exit__(None, None, None)


@pytest.mark.parametrize("memory", [1, 16 << 20], ids=["on-disk", "in-memory"])
def test_spooled_writes_spare_the_second_walk_and_equal_the_planned_again(tmp_path, monkeypatch, memory):
    """Many small streams and one split over several parts (a Split in the spool)."""
    monkeypatch.setattr(layout_records, "HELD_RECORDS", 10)
    monkeypatch.setattr(layout_records, "PART_RECORDS", 20)
    streams = [*small_streams(300), big_stream(pel=50)]  # 300 streams: more than one frame
    a = SynthDB(streams=streams).write(tmp_path / "a")
    b = SynthDB(streams=streams).write(tmp_path / "b")
    s = WriteSpool(memory=memory)
    result = _run(a, s, monkeypatch, replan_allowed=False)
    assert result.verified and result.applied.complete and result.applied.done == 301
    assert not s.usable  # closed after its replay
    monkeypatch.undo()
    monkeypatch.setattr(layout_records, "HELD_RECORDS", 10)
    monkeypatch.setattr(layout_records, "PART_RECORDS", 20)
    given_up = WriteSpool()
    given_up.give_up("test: planned again")
    result = _run(b, given_up, monkeypatch, replan_allowed=True)
    assert result.verified and result.applied.done == 301
    assert dump_all(a) == dump_all(b)


def test_a_split_stream_is_spooled_as_its_parts(tmp_path, monkeypatch):
    monkeypatch.setattr(layout_records, "HELD_RECORDS", 10)
    monkeypatch.setattr(layout_records, "PART_RECORDS", 20)
    d = SynthDB(streams=[big_stream(pel=50)]).write(tmp_path / "db")
    migration = for_target("prefixed")
    s = WriteSpool(memory=1)
    with open_read_only(d) as db:
        (sp,) = migration.stream_plans(db, PlanOptions())
        s.add(migration.unit(sp))
        want = list(migration.unit(sp).ops.parts)  # type: ignore[union-attr]
    s.finish()
    units = s.replay(migration.written())
    unit = next(units)
    assert isinstance(unit, Split) and list(unit.parts) == want and len(want) > 2
    assert next(units, None) is None


def test_not_replayed_when_the_database_changed_since_planning(tmp_path, monkeypatch):
    """Another state (an unrelated key added): planned again, the spool closed unread."""
    d = SynthDB(streams=small_streams(20)).write(tmp_path / "db")
    migration, plan, data, lock, _files = _planned(d, s := WriteSpool())
    try:
        with open_read_write(data, lock) as db:
            _add_a_string(db)
        monkeypatch.setattr(WriteSpool, "replay", _no_second_walk)
        job = MigrationJob(migration, plan, PlanOptions(), s)
        result = execute(data, lock, job, planned_files=fingerprint(data.db), backup_to=None)
    finally:
        lock.__exit__(None, None, None)
    assert result.verified and result.applied.done == 20 and not s.usable


def _add_a_string(db: Database) -> None:
    """A key the plan does not read (the state token changes, the plan does not)."""
    db.write([("default", b"unrelated-test-key", b"x")], sync=True)


def test_given_up_when_its_disk_is_nearly_full(tmp_path, monkeypatch):
    """A spool on disk that would leave less than its reserve free is dropped; the run plans again."""
    monkeypatch.setattr(spool, "_CHECK_EVERY", 1)
    d = SynthDB(streams=small_streams(20)).write(tmp_path / "db")
    s = WriteSpool(memory=1, reserve=1 << 62)
    result = _run(d, s, monkeypatch, replan_allowed=True)
    assert s.given_up is not None and "nearly full" in s.given_up
    assert result.verified and result.applied.done == 20


def test_an_unreadable_spool_stops_the_writes_before_a_write(tmp_path, monkeypatch):
    """A spool that can't be read back is a failed read: nothing is written on it, and the
    command says so in one line; a re-run finishes the job."""
    d = SynthDB(streams=small_streams(20)).write(tmp_path / "db")
    before = dump_all(d)
    migration, plan, data, lock, files = _planned(d, s := WriteSpool(memory=1))
    try:
        s._file.truncate(20)  # type: ignore[union-attr]
        job = MigrationJob(migration, plan, PlanOptions(), s)
        result = execute(data, lock, job, planned_files=files, backup_to=None)
    finally:
        lock.__exit__(None, None, None)
    assert result.applied.done == 0 and result.applied.stopped is not None
    assert result.applied.stopped.startswith("read failed (the writes kept from planning")
    assert result.problems == () and dump_all(d)["stream"] == before["stream"]
    res = run_cli("migrate", d, "--yes", "--no-backup")
    assert res.exit_code == 0, res.output


def test_a_failing_spool_file_is_given_up_cleanly_and_the_run_plans_again(tmp_path, monkeypatch):
    """ENOSPC on a write of the spool, and again when its buffer is dropped: never an error
    of the run; the writes are planned again, and the command says why."""
    from kvfix.cli import migrate_plan

    class Failing(WriteSpool):
        def __init__(self) -> None:
            super().__init__(memory=1)
            f = self._file

            def no_space(*_a):
                raise OSError(28, "No space left on device")

            close = f.close  # type: ignore[union-attr]

            def close_once(*_a):
                f.close = close  # type: ignore[method-assign,union-attr]
                no_space()

            f.write = no_space  # type: ignore[method-assign,union-attr]
            f.close = close_once  # type: ignore[method-assign,union-attr]

    made: list[WriteSpool] = []
    monkeypatch.setattr(migrate_plan, "WriteSpool", lambda: made.append(Failing()) or made[-1])
    d = SynthDB(streams=small_streams(300)).write(tmp_path / "db")
    res = run_cli("migrate", d, "--yes", "--no-backup")
    assert res.exit_code == 0, res.output
    assert "writes kept from planning were given up (writing it failed: No space left on device)" in res.stderr
    assert made and not made[0].usable
    assert run_cli("migrate", d, "--yes", "--no-backup").exit_code == 0  # nothing left to move


def test_a_frame_holds_about_one_batch_of_ops(tmp_path):
    """Streams of many ops each: the spool flushes by ops, not only by streams."""
    migration = for_target("prefixed")
    d = SynthDB(streams=[big_stream(key=b"b%03d" % i, pel=1000) for i in range(12)]).write(tmp_path / "db")
    s = WriteSpool(memory=1)
    with open_read_only(d) as db:
        for sp in migration.stream_plans(db, PlanOptions()):
            s.add(migration.unit(sp))
            assert s._pending_ops < spool._FRAME_OPS
    s.finish()
    assert s._frames >= 12 // 3  # about 4,000 ops a stream: a frame every three streams at most
    assert sum(1 for _ in s.replay(migration.written())) == 12


def test_a_spool_that_ends_early_is_a_failed_read_not_success(tmp_path, monkeypatch):
    """Fewer units replayed than planned: the run stops as on a failed read and a re-run finishes."""
    d = SynthDB(streams=small_streams(300)).write(tmp_path / "db")
    migration, plan, data, lock, files = _planned(d, s := WriteSpool())
    try:
        s._frames -= 1  # the last frame (44 streams) not read back
        job = MigrationJob(migration, plan, PlanOptions(), s)
        result = execute(data, lock, job, planned_files=files, backup_to=None)
    finally:
        lock.__exit__(None, None, None)
    assert result.applied.done == 256 and result.applied.total == 300
    assert result.applied.stopped == "read failed (the planned writes ended after 256 of 300 units)"
    assert result.problems == ()  # the 256 written are verified
    res = run_cli("migrate", d, "--yes", "--no-backup")
    assert res.exit_code == 0, res.output
    assert "300 records" not in res.stderr


def test_replay_before_finish_is_refused():
    s = WriteSpool()
    with pytest.raises(ReadError):
        next(s.replay(for_target("prefixed").written()))
