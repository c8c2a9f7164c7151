"""Damaged files: every read is checked, and nothing writes after a failed read.

Each case damages the bytes of a real file of a copy of a real fixture (legacy-namespaces
for the SST and MANIFEST cases, legacy-basic for the WAL cases) and of a generated
database (300 streams with legacy groups: in SST files, or only in the WAL).

A read-only command meeting damage exits 2 with one line naming the operator's database
directory (never the private shadow directory); ``--salvage`` reports what it could read
and exits 1.  Damage that stops RocksDB from opening the database at all (a bad footer or
index block, a MANIFEST checksum) is one line and exit 2 with or without ``--salvage``.
A torn WAL tail (a crash in the middle of the last write) is not an error.  ``migrate``
and ``check --repair`` never write after a failed read: every byte stays, no backup is
left, nothing is left in the temp dir.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import dump_all, run_cli, tree_digest, unpack
from fault_helpers import (
    backups_beside,
    cut_mid_record,
    finish,
    flip,
    fresh_tmp,
    kvfix,
    kvfix_leftovers,
    layouts,
    log_records,
    manifest,
    only_line,
    sst_footer,
    sst_for,
    start_kvfix,
    truncate,
    wal,
    write_sst_db,
    write_wal_db,
)

STREAMS = 300  # the generated SST database
WAL_STREAMS = 100  # the generated WAL-only database: one write-ahead-log record per stream
READ_ERROR, OPEN_FAILS, NORMAL = "read error", "cannot open", "normal"


# --- the damage ------------------------------------------------------------------------------


def sst_data(db: Path) -> None:
    """Bytes of the first data block of the stream family's SST file."""
    flip(sst_for(db, "stream"), 16, 8)


def sst_index(db: Path) -> None:
    """Bytes in the middle of the index block (located from the footer), before the footer."""
    p = sst_for(db, "stream")
    _, _, (offset, size) = sst_footer(p)
    at = offset + size // 2
    assert at + 4 < p.stat().st_size - 53
    flip(p, at, 4)


def sst_footer_magic(db: Path) -> None:
    p = sst_for(db, "stream")
    flip(p, p.stat().st_size - 8, 8)


def manifest_cut(fraction: float):
    def damage(db: Path) -> None:
        cut_mid_record(manifest(db), fraction)

    damage.__doc__ = f"MANIFEST truncated in the middle of the record at {fraction:.0%} of it"
    return damage


def manifest_flip(db: Path) -> None:
    m = manifest(db)
    flip(m, m.stat().st_size // 2)


def wal_flip(db: Path) -> None:
    log = wal(db)
    flip(log, log.stat().st_size // 2)


def wal_torn(db: Path) -> None:
    log = wal(db)
    start, end, _ = log_records(log)[-1]
    assert end - start > 8
    truncate(log, log.stat().st_size - 3)


# (id, source, damage, what a read-only command must do)
CASES = [
    ("fixture-sst-data", "legacy-namespaces", sst_data, READ_ERROR),
    ("fixture-sst-index", "legacy-namespaces", sst_index, OPEN_FAILS),
    ("fixture-sst-footer", "legacy-namespaces", sst_footer_magic, OPEN_FAILS),
    # at 50% the MANIFEST no longer lists the SST files: they are on disk but unreferenced
    ("fixture-manifest-truncated", "legacy-namespaces", manifest_cut(0.5), READ_ERROR),
    # at 60% it lists a file the server had already deleted: RocksDB cannot open it
    ("fixture-manifest-truncated-60", "legacy-namespaces", manifest_cut(0.6), OPEN_FAILS),
    ("fixture-manifest-flip", "legacy-namespaces", manifest_flip, OPEN_FAILS),
    ("fixture-wal-flip", "legacy-basic", wal_flip, READ_ERROR),
    ("synth-sst-data", "synth-sst", sst_data, READ_ERROR),
    ("synth-sst-index", "synth-sst", sst_index, OPEN_FAILS),
    ("synth-sst-footer", "synth-sst", sst_footer_magic, OPEN_FAILS),
    ("synth-manifest-truncated", "synth-sst", manifest_cut(0.6), READ_ERROR),
    ("synth-manifest-flip", "synth-sst", manifest_flip, OPEN_FAILS),
    ("synth-wal-flip", "synth-wal", wal_flip, READ_ERROR),
]
DAMAGED = [pytest.param(src, fn, expect, id=cid) for cid, src, fn, expect in CASES]


@dataclass
class Damaged:
    root: Path  # the Kvrocks dir the operator names
    db: Path  # its db/, fully resolved: what messages must name
    key: str  # a key inspect can look up
    tmpdir: Path  # TMPDIR of every kvfix run here


def make(tmp_path: Path, source: str, name: str = "kv") -> tuple[Path, str]:
    """An undamaged database: (Kvrocks dir, a key of it)."""
    if source == "synth-sst":
        return write_sst_db(tmp_path / name / "db", STREAMS).parent, "stream:00000"
    if source == "synth-wal":
        return write_wal_db(tmp_path / name / "db", WAL_STREAMS).parent, "stream:00000"
    base = tmp_path / name
    base.mkdir()
    return unpack(source, base), "orders"


def damaged(tmp_path: Path, source: str, damage) -> Damaged:
    tmp_path.mkdir(parents=True, exist_ok=True)
    root, key = make(tmp_path, source)
    before = tree_digest(root / "db")
    damage(root / "db")
    assert tree_digest(root / "db") != before, "the damage changed nothing"
    return Damaged(root, Path(os.path.realpath(root / "db")), key, fresh_tmp(tmp_path))


@pytest.fixture
def in_process_tmp(tmp_path, monkeypatch) -> Path:
    """In-process runs make their shadow directories here (what TMPDIR does for a process)."""
    d = fresh_tmp(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def assert_names_the_database(line: str, case: Damaged) -> None:
    assert str(case.db) in line, line
    assert "kvfix-ro-" not in line and str(case.tmpdir) not in line, f"a shadow path leaked: {line}"


READ_ONLY = [("scan",), ("check",), ("stats",), ("inspect", "{key}")]


def _args(cmd: tuple[str, ...], case: Damaged) -> list[str]:
    return [cmd[0], str(case.root), *(a.format(key=case.key) for a in cmd[1:])]


# --- read-only commands ----------------------------------------------------------------------


@pytest.mark.parametrize(("source", "damage", "expect"), DAMAGED)
def test_read_only_commands_stop_with_one_line(tmp_path, in_process_tmp, source, damage, expect):
    case = damaged(tmp_path, source, damage)
    case.tmpdir = in_process_tmp
    before = tree_digest(case.root)
    for cmd in READ_ONLY:
        result = run_cli(*_args(cmd, case))
        assert result.exit_code == 2, (cmd, result.exit_code, result.stderr, result.stdout[:300])
        line = only_line(result.stderr)
        assert_names_the_database(line, case)
        if expect == READ_ERROR:
            assert "read error" in line, (cmd, line)
        assert result.stdout == "", (cmd, "a partial report without --salvage")
    assert tree_digest(case.root) == before
    assert kvfix_leftovers(case.tmpdir) == []


@pytest.mark.parametrize(("source", "damage", "expect"), DAMAGED)
def test_salvage_reports_what_it_could_read(tmp_path, in_process_tmp, source, damage, expect):
    case = damaged(tmp_path, source, damage)
    case.tmpdir = in_process_tmp
    before = tree_digest(case.root)
    if expect == OPEN_FAILS:  # nothing can be read: the same one line as without --salvage
        for cmd in READ_ONLY:
            result = run_cli(*_args(cmd, case), "--salvage", "--format", "json")
            assert result.exit_code == 2, (cmd, result.exit_code, result.stdout[:300])
            assert_names_the_database(only_line(result.stderr), case)
        assert tree_digest(case.root) == before
        return

    def salvaged(*cmd: str) -> dict:
        result = run_cli(*_args(cmd, case), "--salvage", "--format", "json")
        assert result.exit_code == 1, (cmd, result.exit_code, result.stderr)
        return json.loads(result.stdout)

    scan = salvaged("scan")
    assert scan["summary"]["read_errors"] >= 1
    errors = [f for f in scan["findings"] if f["code"] == "READ_ERROR"]
    assert errors and all(f["severity"] == "error" for f in errors)
    assert_names_the_database(errors[0]["message"], case)
    check = salvaged("check")
    assert [f for f in check["findings"] if f["code"] == "READ_ERROR"]
    stats = salvaged("stats")
    assert [f for f in stats["findings"] if f["code"] == "READ_ERROR"]
    assert tree_digest(case.root) == before
    inspect = run_cli(*_args(("inspect", "{key}"), case), "--salvage", "--format", "json")
    assert inspect.exit_code == 1, (inspect.exit_code, inspect.stderr)
    if inspect.stdout:  # the key is in what could be read: the report says the read was partial
        problems = json.loads(inspect.stdout)["problems"]
        assert problems and problems[0].startswith("READ_ERROR"), problems
    else:  # it is not: absent from a partial read is not "no such key"
        err = inspect.stderr.strip().splitlines()
        assert len(err) == 1 and "not found in what could be read" in err[0] and "READ_ERROR" in err[0], err
    assert kvfix_leftovers(case.tmpdir) == []


# --- the commands that write -----------------------------------------------------------------


@pytest.mark.parametrize(("source", "damage", "expect"), DAMAGED)
def test_writers_refuse_and_leave_every_byte(tmp_path, source, damage, expect):
    """migrate and check --repair, each on its own damaged copy (two processes at once)."""
    writers = (("migrate", "--yes"), ("check", "--repair", "--yes"))
    cases = [damaged(tmp_path / f"copy{i}", source, damage) for i in range(len(writers))]
    before = [tree_digest(c.root) for c in cases]
    procs = [start_kvfix(c.tmpdir, w[0], c.root, *w[1:]) for c, w in zip(cases, writers, strict=True)]
    for case, digest, (returncode, err), args in zip(cases, before, map(finish, procs), writers, strict=True):
        assert returncode == 2, (args, returncode, err)
        line = only_line(err)
        assert_names_the_database(line, case)
        if expect == READ_ERROR:
            assert "read error" in line, line
        assert tree_digest(case.root) == digest, f"{args[0]} changed the data directory"
        assert backups_beside(case.root) == [], f"{args[0]} left a backup"
        assert kvfix_leftovers(case.tmpdir) == [], f"{args[0]} left temp files"


def test_repair_with_salvage_is_a_usage_error(tmp_path, in_process_tmp):
    case = damaged(tmp_path, "legacy-basic", wal_flip)
    before = tree_digest(case.root)
    for extra in ((), ("--dry-run",)):
        result = run_cli("check", case.root, "--repair", "--yes", "--salvage", *extra)
        assert result.exit_code == 2, result.stderr
        assert only_line(result.stderr).startswith("kvfix: usage: "), result.stderr
    assert tree_digest(case.root) == before
    assert backups_beside(case.root) == [] and kvfix_leftovers(in_process_tmp) == []


# --- a torn WAL tail is what a crash leaves: not an error ------------------------------------


def _codes(root: Path, key: str) -> dict[str, int]:
    out = {}
    for cmd in ("scan", "check", "stats", "inspect"):
        args = [cmd, str(root), *([key] if cmd == "inspect" else [])]
        out[cmd] = run_cli(*args).exit_code
        out[cmd + " --salvage"] = run_cli(*args, "--salvage").exit_code
    return out


@pytest.mark.parametrize("source", ["legacy-basic", "synth-wal"])
def test_torn_wal_tail_reads_as_the_records_before_it(tmp_path, in_process_tmp, source):
    pristine, key = make(tmp_path, source, "pristine")
    want = _codes(pristine, key)
    assert want["scan"] in (0, 1), want
    # what the log holds without its last record, cut cleanly at a record boundary
    clean, _ = make(tmp_path, source, "clean")
    start, _, kind = log_records(wal(clean / "db"))[-1]
    assert kind == 1, "the last record is a whole write (kFullType)"
    truncate(wal(clean / "db"), start)
    torn = damaged(tmp_path, source, wal_torn)
    torn.tmpdir = in_process_tmp
    before = tree_digest(torn.root)
    assert _codes(torn.root, key) == want
    for cmd in ("scan", "check", "stats"):
        assert run_cli(cmd, torn.root).stderr == "", cmd
    assert tree_digest(torn.root) == before
    got = dump_all(torn.root)
    assert got == dump_all(clean) and got != dump_all(pristine)
    assert sum(len(rows) for rows in got.values()) > 0
    if source == "synth-wal":  # one write per stream: only the last stream is lost
        assert layouts(torn.root) == {"legacy": WAL_STREAMS - 1}
    # the writers run as on the undamaged database
    tmpdir = fresh_tmp(tmp_path)
    for args in (("check", "--repair", "--yes"), ("migrate", "--yes")):
        expect = run_cli(args[0], pristine, *args[1:]).exit_code
        proc = kvfix(tmpdir, args[0], torn.root, *args[1:])
        assert proc.returncode == expect, (args, proc.stderr)
    assert kvfix_leftovers(tmpdir) == []
    assert layouts(torn.root).keys() <= {"prefixed", "none"}


# --- what --salvage cannot see must not look like "no such key" ---------------------------------


def test_inspect_salvage_of_a_key_lost_to_wal_damage_says_the_read_was_partial(tmp_path, in_process_tmp):
    """A key written after the damage is unreadable, not absent: inspect must say so."""
    case = damaged(tmp_path, "synth-wal", wal_flip)
    case.tmpdir = in_process_tmp
    last = f"stream:{WAL_STREAMS - 1:05d}"
    result = run_cli("inspect", case.root, last, "--salvage", "--format", "json")
    assert result.exit_code == 1
    text = result.stderr + result.stdout
    assert "READ_ERROR" in text or "read error" in text, (
        f"inspect --salvage {last} reports a key lost after the WAL damage as absent: {result.stderr.strip()!r}"
    )


def test_damage_helpers_hit_what_they_claim(tmp_path):
    """The index flip lands in the index block, the data flip in the first data block."""
    root, _ = make(tmp_path, "legacy-namespaces")
    p = sst_for(root / "db", "stream")
    assert p.name == "000018.sst"  # tests/fixtures/README.md: the stream family's records
    version, (meta_off, _), (index_off, _) = sst_footer(p)
    assert version == 5 and 0 < index_off < meta_off < p.stat().st_size - 53
    assert index_off > 16 + 8  # the data flip is before the index, in the first data block
    assert sorted(n.name for n in (root / "db").glob("*.sst")) == ["000016.sst", "000018.sst"]
