"""migrate's verification of many streams in two processes finds what one process finds.

This process verifies the streams before a cut point, a second one the rest, each with the
written streams' expectations (the second finds where its part starts).  Wherever the cut,
the problems are the single process's; when the second process fails, this one verifies
its part too.  (kvfix.migrations.layout_verify)
"""

from __future__ import annotations

import subprocess
import sys
from array import array
from pathlib import Path

import pytest
from conftest import run_cli
from test_migrate_streamed import big_stream, small_streams

import kvfix.migrations.layout_verify as layout_verify
from kvfix.analysis.walk import Half
from kvfix.migrations import PlanOptions, for_target
from kvfix.migrations.base import Written, took
from kvfix.migrations.layout_verify import WIDTH, verify_plan
from kvfix.store.opening import open_read_only
from kvfix.synth import SynthDB, SynthStream, group_value


def _db(path: Path) -> Path:
    """Small legacy streams, a large one, streams with no groups and one already prefixed."""
    streams = [*small_streams(24), big_stream(key=b"s010x", pel=40)]
    streams += [SynthStream(b"plain%02d" % i) for i in range(4)]
    streams.append(SynthStream(b"s020p", groups=[("prefixed", b"g", group_value())]))
    return SynthDB(streams=streams).write(path)


def _planned_and_migrated(tmp_path: Path, to: str = "prefixed"):  # type: ignore[no-untyped-def]
    """(path, plan, written): the plan and the expectations of a run, then the CLI's run."""
    d = _db(tmp_path / "db")
    if to == "legacy":
        assert run_cli("migrate", d, "--yes", "--no-backup").exit_code == 0
    migration = for_target(to)
    written = migration.written()
    with open_read_only(d) as db:
        plan = migration.plan(db, PlanOptions(), on_stream=lambda sp: took(written, migration.unit(sp)))
    assert run_cli("migrate", d, "--yes", "--no-backup", "--to", to).exit_code == 0
    return d, plan, written


def _keys(path: Path) -> list[bytes]:
    with open_read_only(path) as db:
        return [k for chunk in db.chunks("metadata") for k, _ in chunk]


def _verify(path: Path, plan, written: Written | None, monkeypatch, cut: bytes | None) -> list[str]:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(layout_verify, "shard_point", lambda ks, w: None if cut is None else Half(cut, True))
    with open_read_only(path) as db:
        return verify_plan(db, plan, written)


def _damaged(written: Written, streams: list[int]) -> Written:
    """The expectations with the checksum of these streams changed: each must be a problem."""
    out = Written(WIDTH, written.ints[:])
    for i in streams:
        out.ints[i * WIDTH + 1] ^= 1
    return out


@pytest.mark.parametrize("to", ["prefixed", "legacy"])
def test_problems_are_the_same_wherever_the_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, to: str) -> None:
    d, plan, written = _planned_and_migrated(tmp_path, to)
    keys = _keys(d)
    n = written.streams
    cases = [written, _damaged(written, [0, n // 2, n - 1]), None]
    one = [_verify(d, plan, w, monkeypatch, None) for w in cases]
    assert one[0] == [] and one[2] == []
    assert len(one[1]) == 3 and all("group records differ from the plan" in p for p in one[1])
    seen: list[dict] = []
    real = layout_verify.wait_worker
    monkeypatch.setattr(layout_verify, "wait_worker", lambda *a: seen.append(real(*a)) or seen[-1])
    for cut in keys[1::4]:
        for w, want in zip(cases, one, strict=True):
            assert _verify(d, plan, w, monkeypatch, cut) == want, (cut, w is None)
    assert seen and all(later is not None for later in seen)  # the second process did its part


def test_streams_written_but_not_found_are_counted_by_both_parts(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Expectations no stream answers (streams written, then gone), early and last, with a
    damaged stream after them: the same problems, wherever the cut."""
    d, plan, written = _planned_and_migrated(tmp_path)
    keys = _keys(d)
    bogus = _damaged(written, [written.streams - 1])
    ints = bogus.ints
    bogus.ints = ints[: 2 * WIDTH] + array("Q", [12345, 0, 1, 0]) + ints[2 * WIDTH :] + array("Q", [999, 0, 1, 0])
    one = _verify(d, plan, bogus, monkeypatch, None)
    assert one[-1] == "2 written streams were not found again in the walk"
    assert len(one) == 2 and "group records differ from the plan" in one[0]
    for cut in keys[1::3]:
        assert _verify(d, plan, bogus, monkeypatch, cut) == one, cut


def test_no_second_process_to_be_had_verifies_in_one(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A second process that cannot be started (EAGAIN, a full temporary disk) is no error."""
    d, plan, written = _planned_and_migrated(tmp_path)
    damaged = _damaged(written, [0, written.streams - 1])
    one = _verify(d, plan, damaged, monkeypatch, None)

    def cannot(*_a):  # type: ignore[no-untyped-def]
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(layout_verify, "start_worker", cannot)
    assert _verify(d, plan, damaged, monkeypatch, _keys(d)[5]) == one and len(one) == 2


def test_streams_not_written_are_looked_up_in_one_sorted_copy() -> None:
    """An interrupted run's second part: most streams miss; each miss is a bisection."""
    ints = array("Q")
    for h in range(1000, 0, -1):
        ints.extend([h * 7, 0, 1, 0])
    m = layout_verify._Matcher(ints, 1000, None)
    assert m.match(5) is None
    copy = m._sorted
    for h in range(1, 5000, 7):
        m.match(h + 1)
    assert m._sorted is copy and m.first is None
    assert m.match(700) == (700, 0, 1, 0) and (m.first, m.end) == (900, 901)


def test_a_failing_second_process_verifies_its_part_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d, plan, written = _planned_and_migrated(tmp_path)
    keys = _keys(d)
    damaged = _damaged(written, [1, written.streams - 2])
    one = _verify(d, plan, damaged, monkeypatch, None)
    assert len(one) == 2

    def failing(job: Path, out: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    monkeypatch.setattr(layout_verify, "start_worker", failing)
    assert _verify(d, plan, damaged, monkeypatch, keys[len(keys) // 2]) == one


@pytest.mark.parametrize("to", ["prefixed", "legacy"])
def test_a_real_run_verified_in_two_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, to: str) -> None:
    """KVFIX_WORKERS=2: the CLI's run, verified in two, as in one; and a second run finds nothing to do."""
    d = _db(tmp_path / "db")
    monkeypatch.setenv("KVFIX_WORKERS", "2")
    if to == "legacy":
        assert run_cli("migrate", d, "--yes", "--no-backup").exit_code == 0
    res = run_cli("migrate", d, "--yes", "--no-backup", "--to", to)
    assert res.exit_code == 0, res.output
    again = run_cli("migrate", d, "--yes", "--no-backup", "--to", to)
    assert again.exit_code == 0 and "nothing to migrate; verified" in again.stderr
