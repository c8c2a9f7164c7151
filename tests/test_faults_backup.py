"""The backup: a byte copy of the files the server left, taken before RocksDB's read-write
open replays (and deletes) the write-ahead log; and where it may go.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import dump_all, run_cli, tree_digest, unpack
from fault_helpers import (
    BACKUP_HINT,
    backups_beside,
    flip,
    fresh_tmp,
    kvfix,
    kvfix_leftovers,
    only_line,
    rocksdb_leftovers,
    wal,
    write_repair_db,
    write_wal_db,
)
from rocksdict import AccessType, DBRecoveryMode, Options, Rdict

STAMP = r"\d{8}T\d{6}Z(-\d+)?"


def originals(db: Path) -> dict[str, bytes]:
    """Every file of db/ but LOCK, by name (legacy-basic's archive/ directory is empty)."""
    return {p.name: p.read_bytes() for p in db.iterdir() if p.is_file() and p.name != "LOCK"}


def test_backup_is_a_byte_copy_of_the_files_before_the_wal_replay(tmp_path):
    root = unpack("legacy-basic", tmp_path)
    db = root / "db"
    files = originals(db)
    assert "000010.log" in files and not list(db.glob("*.sst"))  # the data is only in the WAL
    want = dump_all(root)
    tmpdir = fresh_tmp(tmp_path)
    proc = kvfix(tmpdir, "migrate", root, "--yes", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    hint = BACKUP_HINT.search(proc.stderr)
    assert hint, proc.stderr
    backup = Path(json.loads(proc.stdout)["backup"])
    assert Path(hint.group(1)) == backup
    assert backup.parent == tmp_path and re.fullmatch(rf"legacy-basic\.kvfix-backup-{STAMP}", backup.name)
    assert {p.name for p in backup.iterdir()} == set(files)  # no LOCK, no LOG, no rocksdict-config.json
    for name, data in files.items():
        assert (backup / name).read_bytes() == data, f"{name} differs from the original"
    assert "000010.log" not in os.listdir(db), "the read-write open replays and deletes the original WAL"
    assert dump_all(backup) == want
    assert dump_all(root) != want  # migrated
    assert rocksdb_leftovers(db) == [] and kvfix_leftovers(tmpdir) == []


def test_backup_links_sst_files_and_copies_the_rest(tmp_path):
    root = unpack("legacy-namespaces", tmp_path)
    db = root / "db"
    files = originals(db)
    proc = kvfix(fresh_tmp(tmp_path), "migrate", root, "--yes", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    backup = Path(json.loads(proc.stdout)["backup"])
    assert {p.name for p in backup.iterdir()} == set(files) | {"archive"}  # archived logs: test_restore.py
    for name, data in files.items():
        assert (backup / name).read_bytes() == data, name
        linked = (db / name).exists() and os.path.samefile(db / name, backup / name)
        assert linked == name.endswith(".sst"), f"{name}: {'linked' if linked else 'copied'}"


def _skip_corrupted_read(db: Path, scratch: Path) -> dict[str, dict[bytes, bytes]]:
    """Every record RocksDB can read from a copy of db/ when it skips damaged WAL records."""
    shutil.copytree(db, scratch)
    (scratch / "LOCK").unlink(missing_ok=True)

    def options() -> Options:
        opts = Options(raw_mode=True)
        opts.set_wal_recovery_mode(DBRecoveryMode.skip_any_corrupted_record())
        return opts

    cfs = Rdict.list_cf(str(scratch), options())
    rdb = Rdict(
        str(scratch),
        options=options(),
        column_families={c: options() for c in cfs},
        access_type=AccessType.read_only(),
    )
    try:
        return {c: dict(rdb.get_column_family(c).items()) for c in cfs}
    finally:
        rdb.close()
        shutil.rmtree(scratch)


@pytest.mark.parametrize("source", ["legacy-basic", "synth-wal"])
def test_refused_migrate_keeps_every_record_a_skipping_open_can_read(tmp_path, source):
    root = write_wal_db(tmp_path / "kv" / "db", 100).parent if source == "synth-wal" else unpack(source, tmp_path)
    log = wal(root / "db")
    flip(log, log.stat().st_size // 2)
    before = tree_digest(root)
    readable = _skip_corrupted_read(root / "db", tmp_path / "scratch")
    assert sum(len(rows) for rows in readable.values()) > 0
    tmpdir = fresh_tmp(tmp_path)
    proc = kvfix(tmpdir, "migrate", root, "--yes")
    assert proc.returncode == 2 and "read error" in only_line(proc.stderr), proc.stderr
    assert tree_digest(root) == before
    assert backups_beside(root) == [] and kvfix_leftovers(tmpdir) == []
    assert _skip_corrupted_read(root / "db", tmp_path / "scratch") == readable


# --- where the backup goes ---------------------------------------------------------------------


def test_backup_dir_is_created_and_holds_the_backup(tmp_path):
    root = unpack("legacy-basic", tmp_path)
    target = tmp_path / "backups" / "deeper"
    proc = kvfix(fresh_tmp(tmp_path), "migrate", root, "--yes", "--backup-dir", target)
    assert proc.returncode == 0, proc.stderr
    hint = Path(BACKUP_HINT.search(proc.stderr).group(1))
    assert [p.name for p in target.iterdir()] == [hint.name]
    assert hint.parent == target and re.fullmatch(rf"legacy-basic\.kvfix-backup-{STAMP}", hint.name)
    assert (hint / "CURRENT").is_file()
    assert backups_beside(root) == []


@pytest.fixture
def in_process_tmp(tmp_path, monkeypatch) -> Path:
    d = fresh_tmp(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def _inside_db(root: Path, tmp_path: Path, how: str) -> Path:
    db = root / "db"
    if how == "direct":
        return db / "bk"
    if how == "symlink":
        link = tmp_path / "looks-outside"
        link.symlink_to(db / "archive")
        return link
    if how == "dotdot":
        return db / "archive" / ".."
    if how == "db-itself":
        return db
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["direct", "symlink", "dotdot", "db-itself"])
@pytest.mark.parametrize("command", [("migrate", "--yes"), ("check", "--repair", "--yes")], ids=["migrate", "repair"])
def test_backup_dir_inside_the_database_is_refused(tmp_path, in_process_tmp, how, command):
    if command[0] == "check":  # a database that needs a repair, so a backup is due
        root = write_repair_db(tmp_path / "kv" / "db", 2).parent
        (root / "db" / "archive").mkdir()
    else:
        root = unpack("legacy-basic", tmp_path)
    target = _inside_db(root, tmp_path, how)
    before = tree_digest(root)
    result = run_cli(command[0], root, *command[1:], "--backup-dir", target)
    assert result.exit_code == 2, (result.stdout[-500:], result.stderr)
    line = only_line(result.stderr)
    assert "inside the database" in line and "nothing written" in line, line
    assert tree_digest(root) == before, "refused, but the data directory changed"
    assert backups_beside(root) == [] and kvfix_leftovers(in_process_tmp) == []


def test_operator_path_with_dotdot_puts_the_default_backup_beside_the_kvrocks_dir(tmp_path):
    root = unpack("legacy-basic", tmp_path)
    given = f"{root}/db/archive/.."
    proc = kvfix(fresh_tmp(tmp_path), "migrate", given, "--yes")
    assert proc.returncode == 0, proc.stderr
    hint = Path(BACKUP_HINT.search(proc.stderr).group(1))
    assert hint.parent == tmp_path and hint.name.startswith("legacy-basic.kvfix-backup-"), hint
    assert backups_beside(root) == [hint]
    assert not [p for p in (root / "db").rglob("*") if "kvfix-backup" in p.name]
    assert os.listdir(root / "db" / "archive") == []


@pytest.mark.parametrize("command", [("migrate", "--yes"), ("check", "--repair", "--yes")], ids=["migrate", "repair"])
def test_backup_dir_with_no_backup_is_a_usage_error(tmp_path, in_process_tmp, command):
    root = unpack("legacy-basic", tmp_path)
    before = tree_digest(tmp_path)
    result = run_cli(command[0], root, *command[1:], "--backup-dir", tmp_path / "bk", "--no-backup")
    assert result.exit_code == 2
    assert only_line(result.stderr).startswith("kvfix: usage: "), result.stderr
    assert tree_digest(tmp_path) == before
