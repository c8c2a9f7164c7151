"""migrate's planning of many streams in two processes plans what one process plans.

The second process plans the streams past a cut point into a tally, a Collected and (in a
real run) a spool of its own; joined, the plan (its summary, digest, skipped list and
conflicts) and the database written are the single process's, wherever the cut, and when
the second process fails.  (kvfix.migrations.plan_parts)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import dump_all, run_cli
from test_migrate_streamed import big_stream, small_streams
from test_scale_walk import adversarial_db

import kvfix.migrations.layout_plan as layout_plan
import kvfix.migrations.plan_parts as plan_parts
from kvfix.analysis.walk import Half
from kvfix.codec.metadata import StreamId
from kvfix.codec.stream import ConsumerValue
from kvfix.migrations import planfile
from kvfix.render.migrate_json import PlanJson
from kvfix.store.opening import open_read_only
from kvfix.synth import SynthDB, SynthStream, group_value


def _conflicts_db(path: Path) -> Path:
    """Small legacy streams, with groups in both layouts (identical, and differing) among them."""
    streams = [*small_streams(12), big_stream(key=b"s005x", pel=30)]
    for i, same in enumerate([True, False, False, True]):
        s = SynthStream(b"s%03dc" % (i * 3), groups=[("legacy", b"g", group_value())])
        s.groups.append(("prefixed", b"g", group_value() if same else group_value(StreamId(9, 9))))
        s.consumers.append(("legacy", b"g", b"w", ConsumerValue(0, 1, 1)))
        streams.append(s)
    return SynthDB(streams=streams).write(path)


def _keys(path: Path) -> list[bytes]:
    with open_read_only(path) as db:
        return [k for chunk in db.chunks("metadata") for k, _ in chunk]


def _cut(monkeypatch: pytest.MonkeyPatch, at: bytes | None) -> None:
    monkeypatch.setattr(layout_plan, "shard_point", lambda ks, w: None if at is None else Half(at, True))


DRY = [
    ("--dry-run", "--format", "plain", "--limit", "2"),
    ("--dry-run", "--format", "plain", "--limit", "0"),
    ("--dry-run", "--format", "json"),
    ("--dry-run", "--format", "json", "--records", "--pretty"),
]


@pytest.mark.parametrize("make", [adversarial_db, _conflicts_db], ids=["adversarial", "conflicts"])
def test_a_plan_cut_at_any_stream_is_the_one_process_plan(tmp_path: Path, monkeypatch, make) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path / "db", False) if make is adversarial_db else make(tmp_path / "db")
    _cut(monkeypatch, None)
    options = [(), ("--on-conflict", "keep-legacy")]
    one = {(a, o): run_cli("migrate", path, *a, *o) for a in DRY for o in options}
    seen: list[object] = []
    real = plan_parts.wait_worker
    monkeypatch.setattr(plan_parts, "wait_worker", lambda *a: seen.append(real(*a)) or seen[-1])
    joined: list[str] = []
    real_join = PlanJson.join
    monkeypatch.setattr(PlanJson, "join", lambda s, later: (joined.append("json"), real_join(s, later))[1])
    keys = _keys(path)
    for at in keys[1 :: max(1, len(keys) // 7)]:
        _cut(monkeypatch, at)
        for (a, o), res in one.items():
            got = run_cli("migrate", path, *a, *o)
            assert (got.exit_code, got.stdout) == (res.exit_code, res.stdout), (at, a, o)
    assert seen and all(later is not None for later in seen)
    assert len(joined) == len(seen) // 2  # half the runs are JSON documents, every one joined


@pytest.mark.parametrize("to", ["prefixed", "legacy"])
@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_a_real_run_planned_in_two_writes_what_one_process_writes(
    tmp_path: Path, monkeypatch, to: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    """The second process's spool is replayed after ours: the same database, verified, and
    the same report (its JSON document's streams written by both processes)."""
    monkeypatch.setattr(layout_plan, "shard_point", lambda ks, w: None)
    a, b = _conflicts_db(tmp_path / "a"), _conflicts_db(tmp_path / "b")
    args = ("--yes", "--no-backup", "--on-conflict", "keep-prefixed", "--format", fmt)
    if to == "legacy":
        assert run_cli("migrate", a, *args).exit_code == 0 and run_cli("migrate", b, *args).exit_code == 0
    args = (*args, "--to", to)
    first = run_cli("migrate", a, *args)
    assert first.exit_code == 0, first.output
    keys = _keys(b)
    _cut(monkeypatch, keys[len(keys) // 2])
    replayed: list[int] = []
    real_join = plan_parts.WriteSpool.join
    monkeypatch.setattr(plan_parts.WriteSpool, "join", lambda s, later: (replayed.append(1), real_join(s, later))[1])
    second = run_cli("migrate", b, *args)
    assert second.exit_code == 0, second.output
    assert replayed and second.stdout.replace(str(b), str(a)) == first.stdout
    assert dump_all(a) == dump_all(b)


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_a_failing_second_process_changes_nothing(tmp_path: Path, monkeypatch, fmt: str) -> None:  # type: ignore[no-untyped-def]
    a, b = _conflicts_db(tmp_path / "a"), _conflicts_db(tmp_path / "b")
    _cut(monkeypatch, None)
    one = run_cli("migrate", a, "--yes", "--no-backup", "--on-conflict", "keep-legacy", "--format", fmt)
    keys = _keys(b)
    _cut(monkeypatch, keys[len(keys) // 3])

    def failing(job: Path, out: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    monkeypatch.setattr(plan_parts, "start_worker", failing)
    two = run_cli("migrate", b, "--yes", "--no-backup", "--on-conflict", "keep-legacy", "--format", fmt)
    assert (two.exit_code, two.stdout.replace(str(b), str(a))) == (one.exit_code, one.stdout)
    assert dump_all(a) == dump_all(b)


def test_records_rows_stay_in_one_process(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = _conflicts_db(tmp_path / "db")
    keys = _keys(path)
    _cut(monkeypatch, keys[3])

    def never(*_a):  # type: ignore[no-untyped-def]
        raise AssertionError("a second process was started")

    monkeypatch.setattr(plan_parts, "start_worker", never)
    res = run_cli("migrate", path, "--dry-run", "--records")
    assert res.exit_code == 0, res.output


def test_a_plan_file_saved_in_two_processes_is_the_one_process_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = _conflicts_db(tmp_path / "db")
    _cut(monkeypatch, None)
    one = tmp_path / "one.jsonl"
    assert run_cli("migrate", path, "--dry-run", "--save-plan", one).exit_code == 0
    keys = _keys(path)
    joined: list[int] = []
    real_raws = planfile.LinesPart.raws
    monkeypatch.setattr(planfile.LinesPart, "raws", lambda s: (joined.append(1), real_raws(s))[1])
    for i, at in enumerate(keys[1 :: max(1, len(keys) // 6)]):
        _cut(monkeypatch, at)
        two = tmp_path / f"two{i}.jsonl"
        res = run_cli("migrate", path, "--dry-run", "--save-plan", two)
        assert res.exit_code == 0, res.output
        assert two.read_bytes() == one.read_bytes(), at
    assert len(joined) == i + 1


def _saved_and_edited(path: Path, tmp: Path) -> tuple[Path, Path]:
    """A plan file of ``path``, and a copy whose second-to-last line is changed."""
    saved, edited = tmp / f"{path.name}.jsonl", tmp / f"{path.name}-edited.jsonl"
    assert run_cli("migrate", path, "--dry-run", "--on-conflict", "keep-legacy", "--save-plan", saved).exit_code == 0
    lines = saved.read_bytes().splitlines(keepends=True)
    edited.write_bytes(b"".join([*lines[:-2], lines[-2].replace(b'"value_len":', b'"value_len":1'), lines[-1]]))
    return saved, edited


def test_a_plan_file_is_compared_and_applied_in_two_processes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """--plan compares the second process's lines after ours: a change in its part refuses the
    run naming the first different line, as one process would; unchanged, the run writes
    what one process writes."""
    a, b = _conflicts_db(tmp_path / "a"), _conflicts_db(tmp_path / "b")
    _cut(monkeypatch, None)
    (saved_a, edited_a), (saved_b, edited_b) = _saved_and_edited(a, tmp_path), _saved_and_edited(b, tmp_path)
    one_refused = run_cli("migrate", a, "--plan", edited_a, "--yes", "--no-backup")
    one = run_cli("migrate", a, "--plan", saved_a, "--yes", "--no-backup")
    assert one_refused.exit_code == 2 and one.exit_code == 0, (one_refused.output, one.output)
    assert "line " in one_refused.output
    keys = _keys(b)
    _cut(monkeypatch, keys[2])  # the last lines are the second process's
    joined: list[int] = []
    real_raws = planfile.LinesPart.raws
    monkeypatch.setattr(planfile.LinesPart, "raws", lambda s: (joined.append(1), real_raws(s))[1])
    before = dump_all(b)
    refused = run_cli("migrate", b, "--plan", edited_b, "--yes", "--no-backup")
    assert (refused.exit_code, refused.output.replace(str(b), str(a))) == (2, one_refused.output)
    assert dump_all(b) == before
    two = run_cli("migrate", b, "--plan", saved_b, "--yes", "--no-backup")
    assert two.exit_code == 0, two.output
    assert dump_all(a) == dump_all(b)
    assert len(joined) >= 2
