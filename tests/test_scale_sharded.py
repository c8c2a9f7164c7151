"""A scan of many streams in two processes prints exactly what one process prints.

The second process finishes the streams from a cut point on into a copy of the report's
sink (the tables' top rows, the JSON's stream elements and findings); joined, the output
is byte for byte the single process's, wherever the cut, in every format, and when the
second process fails.  (kvfix.analysis.sharded)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, run_kvfix
from hypothesis import given, settings
from hypothesis import strategies as st
from test_scale_walk import adversarial_db

import kvfix.analysis.scan as scan_module
import kvfix.analysis.sharded as sharded
from kvfix.analysis.keyspace import MARKS, Keyspace
from kvfix.analysis.model import ScanTally
from kvfix.analysis.walk import Half
from kvfix.codec.errors import CodecError
from kvfix.codec.metadata import StreamId
from kvfix.render.jsonout import DocumentWriter, ElementSpool
from kvfix.store.opening import open_read_only
from kvfix.synth import BulkSpec, SynthDB, SynthStream, bulk_load

FORMATS = [
    ("--format", "plain", "--limit", "3"),
    ("--format", "plain", "--limit", "0"),
    ("--format", "json"),
    ("--format", "json", "--pretty"),
    ("--deep",),
]
CHECK_FORMATS = [("--format", "plain", "--limit", "3"), ("--format", "plain", "--limit", "0"), ("--format", "json")]


def _metadata_keys(path: Path) -> list[bytes]:
    with open_read_only(path) as db:
        return [k for chunk in db.chunks("metadata") for k, _ in chunk]


@pytest.mark.parametrize("cluster", [False, True])
def test_a_scan_cut_at_any_stream_prints_what_one_process_prints(
    tmp_path: Path, cluster: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stale versions, orphans, namespaces and cluster slots on both sides of every cut."""
    path = adversarial_db(tmp_path / "db", cluster)
    keys = _metadata_keys(path)
    monkeypatch.setenv("KVFIX_WORKERS", "1")
    one = {args: run_cli("scan", path, *args) for args in FORMATS}
    cuts = keys[1 :: max(1, len(keys) // 4)]
    assert len(cuts) >= 3
    for at in cuts:
        monkeypatch.setattr(scan_module, "shard_point", lambda ks, workers, at=at: Half(at, True))
        for args in FORMATS:
            res = run_cli("scan", path, *args)
            assert (res.exit_code, res.stdout) == (one[args].exit_code, one[args].stdout), (at, args)


@pytest.mark.parametrize("cluster", [False, True])
def test_a_check_cut_at_any_stream_prints_what_one_process_prints(
    tmp_path: Path, cluster: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wrong counters, deleted PEL entries and undecodable values on both sides of every cut,
    in the report and in a --summary-file."""
    path = adversarial_db(tmp_path / "db", cluster)
    _damage_every_other_stream(path, cluster)
    keys = _metadata_keys(path)
    monkeypatch.setenv("KVFIX_WORKERS", "1")
    summary = tmp_path / "summary.md"
    args_one = {args: (*args, "--summary-file", str(summary)) for args in CHECK_FORMATS}

    def run(args: tuple[str, ...]) -> tuple[int, str, str]:
        summary.write_text("")
        res = run_cli("check", path, *args_one[args])
        return res.exit_code, res.stdout, summary.read_text()

    one = {args: run(args) for args in CHECK_FORMATS}
    assert all(code == 1 for code, _, _ in one.values())
    for at in keys[1 :: max(1, len(keys) // 4)]:
        monkeypatch.setattr(scan_module, "shard_point", lambda ks, workers, at=at: Half(at, True))
        for args in CHECK_FORMATS:
            assert run(args) == one[args], (at, args)


def _damage_every_other_stream(path: Path, cluster: bool) -> None:
    """A wrong size in every other live stream's metadata, and one entry deleted in each."""
    from dataclasses import replace

    from check_helpers import damage, put

    from kvfix.codec.metadata import decode_metadata

    with open_read_only(path) as db:
        metas = [(k, v) for chunk in db.chunks("metadata") for k, v in chunk]
        entries = [k for chunk in db.chunks("stream") for k, _ in chunk if len(k) > 16 and k[-16] not in (0, 255)]
    changes: list[tuple[str, bytes, bytes | None]] = []
    for i, (k, v) in enumerate(metas):
        try:
            meta = decode_metadata(v)
        except CodecError:
            continue
        if meta.stream is not None and i % 2 == 0:
            changes.append(("metadata", k, replace(meta, size=(meta.size or 0) + 3).encode()))
    changes += [("stream", k, None) for k in entries[::7]]
    damage(path, lambda db: [put(db, cf, k, v) for cf, k, v in changes])


def test_the_second_process_really_walks_its_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The join is used (not the fallback), with the second process's streams in it."""
    path = tmp_path / "db"
    bulk_load(path, BulkSpec(streams=40, entries=5, groups=2, consumers=1, pel=2))
    keys = _metadata_keys(path)
    monkeypatch.setenv("KVFIX_WORKERS", "1")
    one = run_cli("scan", path, "--format", "json").stdout
    seen: list[int] = []
    real = ScanTally.absorb

    def noting(self, later):  # type: ignore[no-untyped-def]
        seen.append(later.streams)
        return real(self, later)

    monkeypatch.setattr(ScanTally, "absorb", noting)
    monkeypatch.setattr(scan_module, "shard_point", lambda ks, workers: Half(keys[10], True))
    assert run_cli("scan", path, "--format", "json").stdout == one
    assert seen == [30]


def test_a_failing_second_process_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = adversarial_db(tmp_path / "db", False)
    keys = _metadata_keys(path)
    monkeypatch.setenv("KVFIX_WORKERS", "1")
    one = {args: run_cli("scan", path, *args).stdout for args in FORMATS}
    monkeypatch.setattr(scan_module, "shard_point", lambda ks, workers: Half(keys[len(keys) // 2], True))

    def failing(job: Path, out: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])

    monkeypatch.setattr(sharded, "start_worker", failing)
    for args in FORMATS:
        assert run_cli("scan", path, *args).stdout == one[args], args


def _damaged_second_half(tmp_path: Path) -> Path:
    """Two streams of large entries; four bytes flipped among the second one's."""
    streams = [
        SynthStream(
            b"s%d" % s,
            entries=[
                (StreamId(1_795_775_557_000 + i, 0), (b"f", b"e%d-%06d:" % (s, i) + b"x" * 120)) for i in range(800)
            ],
        )
        for s in range(2)
    ]
    path = SynthDB(streams=streams).write(tmp_path / "db")
    sst = max(path.glob("*.sst"), key=lambda p: p.stat().st_size)
    data = bytearray(sst.read_bytes())
    at = data.find(b"e1-000400:")
    assert at > 0
    data[at : at + 4] = bytes(b ^ 0xFF for b in data[at : at + 4])
    sst.write_bytes(bytes(data))
    return path


def test_read_errors_of_the_second_part_are_reported_as_one_process_reports_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _damaged_second_half(tmp_path)
    keys = _metadata_keys(path)
    monkeypatch.setenv("KVFIX_WORKERS", "1")
    one = run_cli("scan", path, "--deep", "--salvage", "--format", "json")
    assert "READ_ERROR" in one.stdout
    monkeypatch.setattr(scan_module, "shard_point", lambda ks, workers: Half(keys[1], True))
    two = run_cli("scan", path, "--deep", "--salvage", "--format", "json")
    assert (two.exit_code, two.stdout) == (one.exit_code, one.stdout)
    without = run_cli("scan", path, "--deep")
    assert without.exit_code == 2 and "read error" in without.stderr  # and without --salvage it stops


def test_kvfix_processes_agree_with_and_without_a_second_one(tmp_path: Path) -> None:
    """As operators run it (KVFIX_WORKERS=2 forces the split on a small database)."""
    path = tmp_path / "db"
    bulk_load(path, BulkSpec(streams=30, entries=5, groups=2, consumers=1, pel=2))
    for args in (("scan",), ("scan", "--format", "json")):
        one = run_kvfix(*args, path, env={"KVFIX_WORKERS": "1"})
        two = run_kvfix(*args, path, env={"KVFIX_WORKERS": "2"})
        assert (two.returncode, two.stdout, two.stderr) == (one.returncode, one.stdout, one.stderr)
        assert one.stdout


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 6 * MARKS), fraction=st.floats(0, 1))
def test_the_survey_marks_every_strideth_stream_in_bounded_space(n: int, fraction: float) -> None:
    ks = Keyspace(False)
    for i in range(n):
        ks.mark(i.to_bytes(4, "big"))
    assert ks.streams == n and len(ks.marks) <= MARKS
    assert [int.from_bytes(k, "big") for k in ks.marks] == list(range(0, n, ks.stride))
    at = ks.stream_at(fraction)
    if at is not None:
        i = int.from_bytes(at, "big")
        assert 0 < i <= n * fraction < i + ks.stride


def test_an_element_spool_with_a_path_travels_by_pickle(tmp_path: Path) -> None:
    import io
    import pickle

    for pretty in (False, True):
        spool = ElementSpool(pretty, tmp_path / f"s{pretty}")
        there = pickle.loads(pickle.dumps(spool))  # empty: opened for writing there
        for v in ({"a": [1, "\x00"]}, [2], "x"):
            there.add(v)
        back = pickle.loads(pickle.dumps(there))  # filled: read here
        out = io.StringIO()
        doc = DocumentWriter(out, pretty)
        doc.open_array("e")
        back.copy_to(doc)
        doc.close_array()
        doc.close()
        expected = io.StringIO()
        ref = DocumentWriter(expected, pretty)
        ref.open_array("e")
        for v in ({"a": [1, "\x00"]}, [2], "x"):
            ref.element(v)
        ref.close_array()
        ref.close()
        assert out.getvalue() == expected.getvalue()


def test_progress_counts_both_processes(tmp_path: Path) -> None:
    counter = tmp_path / "progress"
    assert sharded.read_counter(counter) == (0, 0)
    write = sharded.counter_tick(str(counter))
    assert write is not None
    write(7, 70)
    assert sharded.read_counter(counter) == (7, 70)
    seen: list[tuple[int, int]] = []
    both = sharded.with_counter(lambda s, r: seen.append((s, r)), counter)
    both(3, 30)
    assert seen == [(10, 100)]


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300), run=st.integers(1, 40))
def test_live_prefixes_are_sorted_in_runs_as_a_whole_sort_would(values: list[int], run: int) -> None:
    from array import array

    import kvfix.analysis.keyspace as keyspace

    saved = keyspace.SORT_RUN
    keyspace.SORT_RUN = run
    try:
        assert list(keyspace.sorted_array(array("q", values))) == sorted(values)
    finally:
        keyspace.SORT_RUN = saved


def test_the_survey_is_a_phase_of_its_own_on_the_progress_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A million streams take seconds to survey: the bar counts them then (never 0/?), and
    the walk's phase comes back under the command's own description, counting from zero."""
    import kvfix.analysis.keyspace as keyspace
    from kvfix.analysis.scan import scan_streams
    from kvfix.progress import Progress, Ticker

    monkeypatch.setattr(keyspace, "Ticker", lambda progress, total: Ticker(progress, total, interval=0))

    class Recording(Progress):
        live = True

        def __init__(self) -> None:
            self.description = "scanning"
            self.seen: list[tuple[str, int | None, int | None]] = []

        def phase(self, description: str) -> None:
            self.description = description

        def update(self, *, streams=None, records=None, total_streams=None) -> None:  # type: ignore[no-untyped-def]
            self.seen.append((self.description, streams, total_streams))

    path = tmp_path / "db"
    bulk_load(path, BulkSpec(streams=9_000, entries=1, groups=0, consumers=0, pel=0))
    progress = Recording()
    with open_read_only(path) as db:
        scan_streams(db, progress=progress, workers=1)
    phases = [d for d, _, _ in progress.seen]
    assert phases[0] == "surveying metadata" and phases[-1] == "scanning"
    survey = [(n, total) for d, n, total in progress.seen if d == "surveying metadata"]
    assert survey == [(0, None), (4_096, None), (8_192, None)]  # before each chunk of 4,096
    assert progress.seen[-1] == ("scanning", 9_000, 9_000)


@pytest.mark.parametrize("command", ["scan", "check"])
def test_read_errors_of_the_open_are_reported_once(tmp_path: Path, command: str) -> None:
    """--salvage: what the open itself records (here an SST file the MANIFEST does not
    reference) the second process's open finds too; it sends back only its walk's errors."""
    import json
    import shutil

    path = tmp_path / "db"
    bulk_load(path, BulkSpec(streams=40, entries=5, groups=2, consumers=1, pel=2))
    shutil.copy(sorted(path.glob("*.sst"))[0], path / "999999.sst")
    one = run_kvfix(command, path, "--salvage", "--format", "json", env={"KVFIX_WORKERS": "1"})
    two = run_kvfix(command, path, "--salvage", "--format", "json", env={"KVFIX_WORKERS": "2"})
    assert one.returncode == 1, one.stderr
    assert [f["code"] for f in json.loads(one.stdout)["findings"]].count("READ_ERROR") == 1
    assert (two.returncode, two.stdout) == (one.returncode, one.stdout)


@pytest.mark.parametrize("command", ["scan", "check"])
def test_a_database_without_a_stream_family_keeps_its_streams(tmp_path: Path, command: str) -> None:
    """Its streams have no records; a part of the walk finds live streams by their records'
    family, so such a database stays in one process whatever KVFIX_WORKERS says."""
    import json

    from kvfix.codec import KeyType, Metadata, MetadataKey, StreamTail
    from kvfix.store.opening import create_database
    from kvfix.synth import BASE_VERSION, DEFAULT_NS

    path = tmp_path / "db"
    meta = Metadata(KeyType.STREAM, True, 0, BASE_VERSION, 0, stream=StreamTail())
    with create_database(path, column_families=("default", "metadata")) as db:
        db.write([("metadata", MetadataKey(DEFAULT_NS, b"s%d" % i).encode(), meta.encode()) for i in range(4)])
    one = run_kvfix(command, path, "--format", "json", env={"KVFIX_WORKERS": "1"})
    two = run_kvfix(command, path, "--format", "json", env={"KVFIX_WORKERS": "2"})
    assert len(json.loads(one.stdout)["streams"]) == 4
    assert (two.returncode, two.stdout) == (one.returncode, one.stdout)


def test_a_second_process_only_with_a_second_usable_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPUs counted are the process's own (taskset, a container's cpuset), not the host's."""
    ks = Keyspace(False)
    for i in range(sharded.SHARD_MIN_STREAMS + 1):
        ks.mark(i.to_bytes(4, "big"))
    monkeypatch.delenv("KVFIX_WORKERS", raising=False)
    monkeypatch.setattr(sharded.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert sharded.shard_point(ks, None) is None
    monkeypatch.setattr(sharded.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    half = sharded.shard_point(ks, None)
    assert half is not None and half.first
    few = Keyspace(False)
    for i in range(sharded.SHARD_MIN_STREAMS - 1):
        few.mark(i.to_bytes(4, "big"))
    assert sharded.shard_point(few, None) is None  # too few streams to pay for a second process


def test_a_second_process_whose_parent_is_gone_cleans_up_and_ends(tmp_path: Path) -> None:
    """Killed with SIGKILL, the first process can neither read the second's result nor
    remove its temporary directory (the second part's JSON): the second does both."""
    workdir = tmp_path / "kvfix-scan-x"
    workdir.mkdir()
    (workdir / "streams.json").write_text("{}")
    code = (
        "import os, sys; from kvfix.analysis.sharded import counter_tick; "
        "tick = counter_tick(None, os.getppid() + 1, sys.argv[1]); tick(1, 1); sys.exit(0)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(workdir)], timeout=120)
    assert done.returncode == 3 and not workdir.exists()
    workdir.mkdir()
    alive = subprocess.run([sys.executable, "-c", code.replace("os.getppid() + 1", "os.getppid()"), str(workdir)])
    assert alive.returncode == 0 and workdir.exists()  # its parent still there: it goes on
