"""kvfix backups and kvfix restore: the documented way back after migrate or repair."""

from __future__ import annotations

import json

from conftest import dump_all, run_cli, tree_digest, unpack
from test_live import Writer, build


def test_restore_puts_the_original_back_and_keeps_the_replaced_one(tmp_path):
    d = unpack("legacy-namespaces", tmp_path / "data")
    original = dump_all(d)
    assert run_cli("migrate", d, "--yes").exit_code == 0
    migrated = dump_all(d)
    listed = json.loads(run_cli("backups", d, "--format", "json").stdout)["backups"]
    assert len(listed) == 1 and listed[0]["complete"] and listed[0]["files"] > 0
    res = run_cli("restore", listed[0]["path"], d, "--yes")
    assert res.exit_code == 0, res.output
    assert dump_all(d) == original
    [aside] = [p for p in d.iterdir() if ".kvfix-replaced-" in p.name]
    assert dump_all(aside) == migrated  # never deleted
    assert run_cli("scan", d).exit_code == 1  # legacy again, as before the migration


def test_restore_refuses_a_backup_that_does_not_open_and_changes_nothing(tmp_path):
    d = unpack("legacy-basic", tmp_path / "data")
    assert run_cli("migrate", d, "--yes").exit_code == 0
    [backup] = [p for p in (tmp_path / "data").iterdir() if ".kvfix-backup-" in p.name]
    (backup / "CURRENT").write_text("MANIFEST-999999\n")
    before = tree_digest(tmp_path)
    res = run_cli("restore", backup, d, "--yes")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert tree_digest(tmp_path) == before


def test_restore_refuses_a_running_server(tmp_path):
    db = build(tmp_path / "live" / "db")
    backup = tmp_path / "live.kvfix-backup-20260101T000000Z"
    assert run_cli("migrate", tmp_path / "live", "--dry-run").exit_code == 0
    import shutil

    shutil.copytree(db, backup)
    w = Writer(db, tmp_path)
    try:
        res = run_cli("restore", backup, tmp_path / "live", "--yes")
        assert res.exit_code == 2 and "LOCK" in res.stderr
        assert not [p for p in (tmp_path / "live").iterdir() if ".kvfix-" in p.name]
    finally:
        w.finish()


def test_without_yes_and_terminal_restore_refuses(tmp_path):
    d = unpack("legacy-basic", tmp_path / "data")
    assert run_cli("migrate", d, "--yes").exit_code == 0
    [backup] = [p for p in (tmp_path / "data").iterdir() if ".kvfix-backup-" in p.name]
    before = tree_digest(tmp_path)
    assert run_cli("restore", backup, d).exit_code == 2
    assert tree_digest(tmp_path) == before


def test_backup_keeps_the_archived_logs(tmp_path):
    d = unpack("legacy-namespaces", tmp_path / "data")
    archived = {p.name: p.read_bytes() for p in (d / "db" / "archive").iterdir()}
    assert archived, "the fixture keeps an archived write-ahead log"
    assert run_cli("migrate", d, "--yes").exit_code == 0
    [backup] = [p for p in (tmp_path / "data").iterdir() if ".kvfix-backup-" in p.name]
    assert {p.name: p.read_bytes() for p in (backup / "archive").iterdir()} == archived
